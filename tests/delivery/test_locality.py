"""Locality-aware routing in the endpoint pool, on the injected clock: levels by preference,
the Envoy load split with its overprovisioning factor, spill-over as a zone loses healthy
endpoints and return as they come back, the node's own locality as the default preference,
and the power of two choices within a level."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from conveyor.clock import FakeClock
from conveyor.delivery.endpoints import EndpointPool, EndpointState
from conveyor.delivery.health import HealthPolicy
from conveyor.delivery.locality import (
    level_loads,
    levels,
    matches,
    pick_level,
    plan_levels,
    preferences_of,
)

LAMBDA = "worker"
ZONE_A = "aws/us-east-1/us-east-1a"
ZONE_B = "aws/us-east-1/us-east-1b"
OTHER_REGION = "aws/eu-west-1/eu-west-1a"
PREFER = [ZONE_A, "aws/us-east-1"]


def pool_with(clock: FakeClock, places: list[str], **kwargs: list[str]) -> EndpointPool:
    pool = EndpointPool(clock, preference=kwargs.get("preference", []))
    pool._rng = random.Random(7)  # a fixed draw: the shares below are measured, not flaky
    for i, place in enumerate(places):
        pool.register(LAMBDA, f"e{i}", f"http://127.0.0.1:{9000 + i}/push", 3600, 8, locality=place)
    return pool


def picks(pool: EndpointPool, preference: list[str] | None, n: int = 2000) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        endpoint = pool.choose(LAMBDA, preference)
        assert endpoint is not None
        out[endpoint.locality] += 1
    return out


def eject(pool: EndpointPool, endpoint_id: str, clock: FakeClock) -> EndpointState:
    state = next(e for e in pool.endpoints(LAMBDA) if e.id == endpoint_id)
    state.ejected_until = clock.now() + 30
    return state


@pytest.mark.parametrize(
    ("preference", "locality", "expected"),
    [
        (ZONE_A, ZONE_A, True),
        ("aws/us-east-1", ZONE_A, True),
        ("aws", ZONE_A, True),
        ("aws/us-east", ZONE_A, False),  # a prefix of a segment is not a place
        (ZONE_A, "aws/us-east-1", False),  # a region label is not in a zone
        (ZONE_A, "", False),
        ("gcp", ZONE_A, False),
    ],
)
def test_a_preference_matches_its_place_and_everything_inside_it(
    preference: str, locality: str, expected: bool
) -> None:
    assert matches(preference, locality) is expected


def test_a_node_prefers_its_zone_then_its_region_then_its_cloud() -> None:
    assert preferences_of(ZONE_A) == [ZONE_A, "aws/us-east-1", "aws"]
    assert preferences_of("aws") == ["aws"]
    assert preferences_of("") == []


def test_endpoints_sort_into_levels_by_their_first_matching_preference() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_B, ZONE_A, OTHER_REGION, ""])
    by_level = levels(pool.endpoints(LAMBDA), PREFER)
    assert [[e.locality for e in level] for level in by_level] == [
        [ZONE_A],
        [ZONE_B],
        [OTHER_REGION, ""],
    ]
    # No preference: one level, every endpoint
    assert len(levels(pool.endpoints(LAMBDA), [])) == 1


@pytest.mark.parametrize(
    ("healthy", "total", "loads"),
    [
        ([2, 2], [2, 2], [1.0, 0.0]),
        # 1.4 * 3/4 > 1: the zone keeps everything while at least 1/1.4 of it is healthy
        ([3, 2], [4, 2], [1.0, 0.0]),
        ([1, 2], [2, 2], [0.7, 0.3]),
        ([0, 2], [2, 2], [0.0, 1.0]),
        # The first short, the second takes what is left up to its own health
        ([1, 1], [2, 4], [0.7, 0.3]),
        # Both short (0.35 each): what they can take, normalised
        ([1, 1], [4, 4], [0.5, 0.5]),
        ([0, 0], [2, 2], [0.0, 0.0]),
    ],
)
def test_level_loads_follow_envoys_priority_levels(
    healthy: list[int], total: list[int], loads: list[float]
) -> None:
    assert level_loads(healthy, total) == pytest.approx(loads)


def test_a_level_is_drawn_by_its_load() -> None:
    rng = random.Random(1)
    drawn = Counter(pick_level([0.7, 0.3], rng) for _ in range(10_000))
    assert drawn[0] / 10_000 == pytest.approx(0.7, abs=0.02)
    assert pick_level([0.0, 0.0], rng) == 0


def test_the_preferred_zone_takes_every_push_while_it_is_healthy() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_A, ZONE_B, ZONE_B])
    assert picks(pool, PREFER) == Counter({ZONE_A: 2000})


def test_pushes_spill_over_in_proportion_and_return_when_the_zone_recovers() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_A, ZONE_B, ZONE_B])

    # Half of zone A ejected: it takes 1.4 * 50% = 70%, the rest spills to zone B
    eject(pool, "e0", clock)
    share = picks(pool, PREFER)[ZONE_A] / 2000
    assert share == pytest.approx(0.7, abs=0.04)

    # All of zone A gone (its workers' connections fail): everything goes to zone B
    for state in pool.endpoints(LAMBDA)[:2]:
        pool.connect_failed(state)
    assert picks(pool, PREFER) == Counter({ZONE_B: 2000})

    # Zone A back (cool-down and ejection over): it has every push again
    clock.advance(31)
    assert picks(pool, PREFER) == Counter({ZONE_A: 2000})


def test_endpoints_outside_every_preferred_place_are_the_last_resort() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, OTHER_REGION])
    assert picks(pool, PREFER) == Counter({ZONE_A: 2000})
    pool.deregister(LAMBDA, "e0")
    assert picks(pool, PREFER) == Counter({OTHER_REGION: 2000})


def test_without_a_preference_the_nodes_own_locality_is_preferred() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_B, OTHER_REGION], preference=preferences_of(ZONE_B))
    assert picks(pool, None) == Counter({ZONE_B: 2000})
    assert picks(pool, []) == Counter({ZONE_B: 2000})
    # A subscription's own preference wins over the node's
    assert picks(pool, [OTHER_REGION]) == Counter({OTHER_REGION: 2000})


def test_within_a_level_the_less_loaded_of_two_random_endpoints_is_chosen() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_A, ZONE_A])
    busy = pool.endpoints(LAMBDA)[0]
    busy.in_flight = 100
    chosen = Counter(pool.choose(LAMBDA, PREFER).id for _ in range(900))  # type: ignore[union-attr]
    # The busy one wins a pair only against... nothing: it always loses its comparisons
    assert chosen["e0"] == 0
    assert chosen["e1"] > 300
    assert chosen["e2"] > 300


def test_load_is_compared_relative_to_each_workers_concurrency() -> None:
    clock = FakeClock()
    pool = EndpointPool(clock)
    big = pool.register(LAMBDA, "big", "http://127.0.0.1:9000/push", 3600, 100)
    small = pool.register(LAMBDA, "small", "http://127.0.0.1:9001/push", 3600, 10)
    big.in_flight, small.in_flight = 50, 6  # 50% and 60% busy
    assert {pool.choose(LAMBDA).id for _ in range(50)} == {"big"}  # type: ignore[union-attr]


# -- panic is per level (Envoy), and spill-over follows health however an endpoint fails ------
@pytest.mark.parametrize(
    ("healthy", "total", "loads", "panic"),
    [
        # The preferred level dead, the next one whole: 100% health in all, so no panic, and
        # everything goes to the healthy level (the dead zone is not used in panic)
        ([0, 1], [2, 1], [0.0, 1.0], [False, False]),
        ([1, 4], [3, 4], [0.467, 0.533], [False, False]),
        # Short in total: a level under the threshold panics, the others do not
        ([1, 1], [5, 2], [0.286, 0.714], [True, False]),
        # Every level panics (total panic): the load goes by each level's size
        ([1, 1], [4, 4], [0.5, 0.5], [True, True]),
        ([0, 0], [2, 1], [0.667, 0.333], [True, True]),
        # One level: the classic threshold on the whole pool
        ([1], [3], [1.0], [True]),
        ([2], [4], [1.0], [False]),
    ],
)
def test_panic_is_decided_per_level_over_the_levels_overprovisioned_health(
    healthy: list[int], total: list[int], loads: list[float], panic: list[bool]
) -> None:
    plan = plan_levels(healthy, total, 0.5)
    assert plan.loads == pytest.approx(loads, abs=1e-3)
    assert plan.panic == panic


def zones(clock: FakeClock, **policy: float) -> EndpointPool:
    """Two endpoints in zone A (preferred), one in zone B, as in the hang probe."""
    pool = EndpointPool(clock, health=HealthPolicy(**policy))  # type: ignore[arg-type]
    pool._rng = random.Random(7)
    for i, place in enumerate([ZONE_A, ZONE_A, ZONE_B]):
        pool.register(LAMBDA, f"e{i}", f"http://127.0.0.1:{9000 + i}/push", 3600, 8, locality=place)
    return pool


def probe_fails(pool: EndpointPool, state: EndpointState) -> None:
    pool.probed(state, ok=False, error="no answer in time")
    pool.probed(state, ok=False, error="no answer in time")


@pytest.mark.parametrize("failure", ["probes", "ejected", "refused", "mixed"])
def test_a_dead_preferred_zone_spills_everything_to_the_healthy_one_whatever_the_failure(
    failure: str,
) -> None:
    # Given zone A's two endpoints down (a hang or a stopped process fails its probes, a
    # black hole gets ejected, a killed one refuses), and zone B's one endpoint healthy
    clock = FakeClock()
    pool = zones(clock)
    a1, a2 = pool.endpoints(LAMBDA)[:2]
    for i, state in enumerate((a1, a2)):
        how = failure if failure != "mixed" else ("probes", "refused")[i]
        if how == "probes":
            probe_fails(pool, state)
        elif how == "ejected":
            eject(pool, state.id, clock)
        else:
            pool.connect_failed(state)

    # Then zone B takes every push: 1 of 3 healthy is under the panic threshold, but the
    # levels' health adds up to 100%, so no level panics and A is not used
    assert picks(pool, PREFER) == Counter({ZONE_B: 2000})


def test_a_panicking_level_uses_its_unhealthy_endpoints_but_never_refusing_ones() -> None:
    # Given every endpoint unhealthy by its probes, and one of zone A refusing connections
    clock = FakeClock()
    pool = zones(clock)
    states = pool.endpoints(LAMBDA)
    for state in states:
        probe_fails(pool, state)
    pool.connect_failed(states[0])

    # Then all levels panic: the load goes by the levels' sizes (2:1), and within zone A
    # only the endpoint a push can reach gets it
    chosen = Counter(pool.choose(LAMBDA, PREFER).id for _ in range(3000))  # type: ignore[union-attr]
    assert chosen["e0"] == 0
    assert chosen["e1"] / 3000 == pytest.approx(2 / 3, abs=0.04)
    assert chosen["e2"] / 3000 == pytest.approx(1 / 3, abs=0.04)

    # And when nothing can be reached, nothing is chosen
    for state in states:
        pool.connect_failed(state)
    assert pool.choose(LAMBDA, PREFER) is None


def test_a_panic_threshold_of_zero_never_sends_to_unhealthy_endpoints() -> None:
    clock = FakeClock()
    pool = zones(clock, panic_threshold=0.0)
    for state in pool.endpoints(LAMBDA):
        probe_fails(pool, state)
    assert pool.choose(LAMBDA, PREFER) is None
