"""Passive outlier detection in the endpoint pool, on the injected clock: ejection after
consecutive failures, for a time that grows, re-admission, the cap on the share ejected, and
panic when too few endpoints are healthy."""

from __future__ import annotations

from collections import Counter

from conveyor.clock import FakeClock
from conveyor.delivery.endpoints import EndpointPool, EndpointState
from conveyor.delivery.health import HealthPolicy

POLICY = HealthPolicy()
BASE_EJECTION = POLICY.ejection_time
CONSECUTIVE_FAILURES = POLICY.consecutive_failures
MAX_EJECTION = POLICY.max_ejection_time

LAMBDA = "worker"


def pool_of(clock: FakeClock, n: int) -> tuple[EndpointPool, list[EndpointState]]:
    pool = EndpointPool(clock)
    states = [
        pool.register(LAMBDA, f"e{i}", f"http://127.0.0.1:{9000 + i}/push", 3600, 8)
        for i in range(n)
    ]
    return pool, states


def fail(pool: EndpointPool, endpoint: EndpointState, times: int) -> None:
    for _ in range(times):
        pool.report(endpoint, ok=False)


def chosen(pool: EndpointPool, picks: int = 400) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(picks):
        endpoint = pool.choose(LAMBDA)
        assert endpoint is not None
        out[endpoint.id] += 1
    return out


def test_consecutive_failures_eject_an_endpoint_until_its_time_is_up() -> None:
    clock = FakeClock()
    pool, (bad, _, _) = pool_of(clock, 3)

    # Four failures, a success, four more: never five in a row, so no ejection
    fail(pool, bad, CONSECUTIVE_FAILURES - 1)
    pool.report(bad, ok=True)
    fail(pool, bad, CONSECUTIVE_FAILURES - 1)
    assert bad.ejections == 0
    assert "e0" in chosen(pool)

    # The fifth in a row ejects it for the base time
    pool.report(bad, ok=False)
    assert bad.ejections == 1
    assert "e0" not in chosen(pool)
    assert pool.next_change(LAMBDA) == clock.now() + BASE_EJECTION

    # And it comes back by itself when the time is up
    clock.advance(BASE_EJECTION)
    assert "e0" in chosen(pool)


def test_each_ejection_lasts_longer_up_to_the_maximum() -> None:
    clock = FakeClock()
    pool, (bad, _, _) = pool_of(clock, 3)
    lengths = []
    for _ in range(12):
        fail(pool, bad, CONSECUTIVE_FAILURES)
        lengths.append(bad.ejected_until - clock.now())
        clock.advance(bad.ejected_until - clock.now())
    assert lengths[:3] == [BASE_EJECTION, 2 * BASE_EJECTION, 3 * BASE_EJECTION]
    assert max(lengths) == MAX_EJECTION


def test_at_most_half_the_endpoints_are_ejected_at_once() -> None:
    clock = FakeClock()
    pool, states = pool_of(clock, 4)
    for state in states:
        fail(pool, state, CONSECUTIVE_FAILURES)
    assert sum(1 for s in states if s.ejected_until > clock.now()) == 2
    assert len(chosen(pool)) == 2


def test_too_few_healthy_endpoints_means_panic_every_live_one_is_used() -> None:
    clock = FakeClock()
    pool, (only,) = pool_of(clock, 1)
    fail(pool, only, CONSECUTIVE_FAILURES)
    assert only.ejected_until > clock.now()
    # One endpoint, ejected: below the panic threshold, so it is still used
    assert pool.choose(LAMBDA) is only
