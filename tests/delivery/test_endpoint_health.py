"""Host health beyond consecutive failures, on the injected clock: the failure rate over a
window, active probe thresholds, probe results in the choice, static endpoints, the version
split that releases ask for, and the prober against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from conveyor.clock import FakeClock, to_ms
from conveyor.delivery.endpoints import EndpointPool, EndpointState, VersionSplit
from conveyor.delivery.health import HealthPolicy
from conveyor.delivery.prober import Prober
from conveyor.store.base import Endpoint

LAMBDA = "worker"


def pool_of(clock: FakeClock, n: int, policy: HealthPolicy | None = None) -> EndpointPool:
    pool = EndpointPool(clock, health=policy)
    for i in range(n):
        pool.register(LAMBDA, f"e{i}", f"http://127.0.0.1:{9000 + i}/push", 3600, 8)
    return pool


def state(pool: EndpointPool, endpoint_id: str) -> EndpointState:
    return next(e for e in pool.endpoints(LAMBDA) if e.id == endpoint_id)


def chosen(pool: EndpointPool, picks: int = 300) -> Counter[str]:
    return Counter(pool.choose(LAMBDA).id for _ in range(picks))  # type: ignore[union-attr]


# -- failure rate -----------------------------------------------------------------------------
def test_a_high_failure_rate_ejects_without_a_long_streak() -> None:
    # Given a policy where streaks never eject (1,000 in a row) but 50% of 10 pushes does
    policy = HealthPolicy(consecutive_failures=1000, failure_rate=0.5, min_requests=10)
    clock = FakeClock()
    pool = pool_of(clock, 3, policy)
    flaky = state(pool, "e0")

    # When it fails every other push: 9 pushes are not enough to judge
    for i in range(9):
        pool.report(flaky, ok=i % 2 == 1)
    assert flaky.ejections == 0

    # The 10th push, a failure: 5 of 10 failed
    pool.report(flaky, ok=False)
    assert flaky.ejections == 1
    assert "e0" not in chosen(pool)


def test_the_failure_rate_window_starts_over_when_it_ends() -> None:
    policy = HealthPolicy(
        consecutive_failures=1000, failure_rate=0.5, min_requests=10, failure_window=10.0
    )
    clock = FakeClock()
    pool = pool_of(clock, 3, policy)
    flaky = state(pool, "e0")
    for _ in range(6):
        pool.report(flaky, ok=False)
    # The window ends before it has 10 pushes: its failures are forgotten
    clock.advance(10.0)
    for i in range(9):
        pool.report(flaky, ok=i >= 4)  # 4 failures, then 5 successes: 4 of 9
    pool.report(flaky, ok=True)
    assert flaky.ejections == 0


# -- active probes ----------------------------------------------------------------------------
def test_probes_mark_an_endpoint_unhealthy_after_the_threshold_and_healthy_again() -> None:
    policy = HealthPolicy(unhealthy_threshold=2, healthy_threshold=2)
    clock = FakeClock()
    pool = pool_of(clock, 3, policy)
    sick = state(pool, "e0")

    pool.probed(sick, ok=False, error="HTTP 503")
    assert state(pool, "e0").probe_healthy  # one failed probe is not enough
    pool.probed(sick, ok=False, error="HTTP 503")
    assert not state(pool, "e0").probe_healthy
    assert sick.last_probe_error == "HTTP 503"
    assert "e0" not in chosen(pool)

    pool.probed(sick, ok=True)
    assert not state(pool, "e0").probe_healthy  # one good probe is not enough either
    pool.probed(sick, ok=False, error="no answer in time")
    pool.probed(sick, ok=True)
    pool.probed(sick, ok=True)
    assert state(pool, "e0").probe_healthy
    assert sick.last_probe_error == ""
    assert "e0" in chosen(pool)


def test_when_probes_fail_everywhere_the_pool_panics_and_uses_every_endpoint() -> None:
    clock = FakeClock()
    pool = pool_of(clock, 2, HealthPolicy(unhealthy_threshold=1))
    for e in pool.endpoints(LAMBDA):
        pool.probed(e, ok=False, error="HTTP 500")
    assert set(chosen(pool)) == {"e0", "e1"}


# -- static endpoints -------------------------------------------------------------------------
def test_a_static_endpoint_never_expires_and_survives_a_sync() -> None:
    clock = FakeClock()
    pool = EndpointPool(clock)
    pool.register(LAMBDA, "svc", "http://127.0.0.1:9100/push", 1, 8, static=True)
    pool.register(LAMBDA, "w1", "http://127.0.0.1:9101/push", 1, 8)
    clock.advance(3600)
    assert [e.id for e in pool.endpoints(LAMBDA)] == ["svc"]
    assert pool.choose(LAMBDA).id == "svc"  # type: ignore[union-attr]

    pool.sync([Endpoint(LAMBDA, "svc", "http://127.0.0.1:9100/push", 0, 8, static=True)])
    assert [e.id for e in pool.endpoints(LAMBDA)] == ["svc"]


def test_a_sync_keeps_live_figures_and_learns_locality_and_version_changes() -> None:
    clock = FakeClock()
    pool = EndpointPool(clock)
    first = pool.register(LAMBDA, "w1", "http://127.0.0.1:9101/push", 10, 8, locality="a")
    first.ejections = 2
    later = to_ms(clock.now() + 60)
    pool.sync([Endpoint(LAMBDA, "w1", "http://127.0.0.1:9101/push", later, 8, "a")])
    assert state(pool, "w1") is first
    assert first.expires_at == later / 1000
    assert first.ejections == 2
    # A new version on the same id is a new endpoint (a restarted worker)
    pool.sync([Endpoint(LAMBDA, "w1", "http://127.0.0.1:9101/push", later, 8, "a", "v2")])
    renewed = state(pool, "w1")
    assert renewed.version == "v2"
    assert renewed.ejections == 0


# -- versions ---------------------------------------------------------------------------------
class Router:
    """A fixed split, and the pushes recorded per version."""

    def __init__(self, split: VersionSplit) -> None:
        self.current = split
        self.recorded: list[tuple[str, bool]] = []

    def split(self, lambda_name: str) -> VersionSplit:
        return self.current

    def record(self, lambda_name: str, version: str, ok: bool, latency: float, events: int) -> None:
        self.recorded.append((version, ok))


def versioned_pool(clock: FakeClock, router: Router) -> EndpointPool:
    pool = EndpointPool(clock)
    pool._rng.seed(3)
    for i, version in enumerate(["v1", "v1", "v2", "v0"]):
        pool.register(LAMBDA, f"e{i}", f"http://127.0.0.1:{9000 + i}/push", 60, 8, version=version)
    pool.set_router(router)
    return pool


def by_version(pool: EndpointPool, picks: int = 4000) -> Counter[str]:
    return Counter(pool.choose(LAMBDA).version for _ in range(picks))  # type: ignore[union-attr]


def test_a_canary_gets_its_share_and_excluded_versions_get_nothing() -> None:
    clock = FakeClock()
    router = Router(VersionSplit(canary="v2", share=0.1, excluded=frozenset({"v0"})))
    pool = versioned_pool(clock, router)
    counts = by_version(pool)
    assert counts["v0"] == 0
    assert counts["v2"] / 4000 == pytest.approx(0.1, abs=0.02)
    assert pool.is_canary(state(pool, "e2"))
    assert not pool.is_canary(state(pool, "e0"))

    # Rolled back: share 0 and excluded
    router.current = VersionSplit(excluded=frozenset({"v0", "v2"}))
    assert set(by_version(pool)) == {"v1"}


def test_when_only_the_canary_is_up_it_takes_everything() -> None:
    clock = FakeClock()
    router = Router(VersionSplit(canary="v2", share=0.1, excluded=frozenset({"v0"})))
    pool = versioned_pool(clock, router)
    pool.deregister(LAMBDA, "e0")
    pool.deregister(LAMBDA, "e1")
    assert set(by_version(pool, 100)) == {"v2"}
    # And when only excluded versions are up, nothing is pushed
    pool.deregister(LAMBDA, "e2")
    assert pool.choose(LAMBDA) is None


def test_every_push_outcome_reaches_the_router_with_its_version() -> None:
    clock = FakeClock()
    router = Router(VersionSplit())
    pool = versioned_pool(clock, router)
    pool.report_release(state(pool, "e2"), False, 0.2, 10)
    pool.report_release(state(pool, "e0"), True, 0.01, 10)
    assert router.recorded == [("v2", False), ("v1", True)]


# -- the prober, over real HTTP ---------------------------------------------------------------
@pytest.fixture
async def health_server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A server on 127.0.0.1 with /ok (200), /draining (503) and /hang (never answers)."""
    hits: dict[str, int] = Counter()

    async def ok(request: web.Request) -> web.Response:
        hits["ok"] += 1
        return web.json_response({"status": "ok"})

    async def draining(request: web.Request) -> web.Response:
        hits["draining"] += 1
        return web.json_response({"status": "draining"}, status=503)

    async def hang(request: web.Request) -> web.Response:
        hits["hang"] += 1
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/draining", draining)
    app.router.add_get("/hang", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


async def test_the_prober_judges_answers_statuses_and_silence(
    health_server: tuple[str, dict[str, int]],
) -> None:
    base, hits = health_server
    clock = FakeClock()
    pool = EndpointPool(clock, health=HealthPolicy(unhealthy_threshold=1, probe_timeout=0.3))
    for name in ("ok", "draining", "hang"):
        pool.register(LAMBDA, name, f"{base}/push", 60, 8, health_url=f"{base}/{name}")
    pool.register(
        LAMBDA, "gone", "http://127.0.0.1:9/push", 60, 8, health_url="http://127.0.0.1:9/"
    )
    pool.register(LAMBDA, "unprobed", f"{base}/push", 60, 8)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        await Prober(pool, clock).round(session)

    health = {e.id: (e.probe_healthy, e.last_probe_error) for e in pool.endpoints(LAMBDA)}
    assert health["ok"] == (True, "")
    assert health["draining"] == (False, "HTTP 503")
    assert health["hang"] == (False, "no answer in time")
    assert not health["gone"][0]
    assert health["gone"][1].startswith("cannot connect")
    assert health["unprobed"] == (True, "")
    assert hits == {"ok": 1, "draining": 1, "hang": 1}


async def test_the_prober_runs_every_interval_on_the_clock_until_stopped(
    health_server: tuple[str, dict[str, int]],
) -> None:
    base, hits = health_server
    clock = FakeClock()
    pool = EndpointPool(clock, health=HealthPolicy(probe_interval=5.0))
    pool.register(LAMBDA, "ok", f"{base}/push", 3600, 8, health_url=f"{base}/ok")
    stop = asyncio.Event()
    task = asyncio.create_task(Prober(pool, clock).run(stop))

    async def probes(n: int) -> None:
        for _ in range(500):
            if hits["ok"] >= n:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(probes(1), 5)
    await asyncio.sleep(0.1)
    assert hits["ok"] == 1  # the next round waits for the clock
    clock.advance(5.0)
    await asyncio.wait_for(probes(2), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
