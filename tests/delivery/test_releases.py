"""Releases on the injected clock, over every store: a canary is promoted when healthy after
its window, rolled back on its failure rate or latency (never before enough pushes), decided
by hand, kept out once rolled back; decisions are compare-and-set, and survive a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from conveyor.clock import FakeClock
from conveyor.delivery.endpoints import NO_SPLIT, VersionSplit
from conveyor.delivery.releases import LambdaView, Releases
from conveyor.errors import Conflict, NotFound
from conveyor.metrics import Metrics
from conveyor.node import open_store
from conveyor.store.base import Store
from conveyor.wire.releases import ReleasePolicy, ReleaseState

LAMBDA = "worker"
POLICY = ReleasePolicy()  # share 0.1, window 60 s, 20 pushes, +10 points, 2x + 50 ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def releases(store: Store, clock: FakeClock) -> Releases:
    return Releases(store, clock, Metrics())


async def on_trial(releases: Releases, canary: str = "v2") -> None:
    """v1 stable, ``canary`` on trial."""
    await releases.seen(LAMBDA, "v1")
    await releases.seen(LAMBDA, canary)


def push(
    releases: Releases,
    version: str,
    times: int,
    *,
    failing: int = 0,
    latency: float = 0.01,
) -> None:
    """Record ``times`` pushes to ``version``, the first ``failing`` of them failed."""
    for n in range(times):
        releases.record(LAMBDA, version, n >= failing, latency, 1)


def state(view: LambdaView, version: str) -> ReleaseState:
    (found,) = [r for r in view.releases if r.version == version]
    return found.state


def reason(view: LambdaView, version: str) -> str:
    (found,) = [r for r in view.releases if r.version == version]
    return found.reason


# -- lifecycle ----------------------------------------------------------------------------------
async def test_the_first_version_is_stable_at_once_and_the_next_is_a_canary(
    releases: Releases,
) -> None:
    # When v1, then v2 is seen
    await releases.seen(LAMBDA, "v1")
    first = releases.split(LAMBDA)
    await releases.seen(LAMBDA, "v2")

    # Then v1 was stable at once (no split), and v2 is on trial with the default share
    assert first == NO_SPLIT
    assert state(releases.view(LAMBDA), "v1") is ReleaseState.STABLE
    assert releases.split(LAMBDA) == VersionSplit("v2", POLICY.share, frozenset())


async def test_a_version_seen_during_a_trial_waits_and_is_tried_next(
    releases: Releases, clock: FakeClock
) -> None:
    # Given v2 on trial, and v3 seen meanwhile
    await on_trial(releases)
    await releases.seen(LAMBDA, "v3")
    assert state(releases.view(LAMBDA), "v3") is ReleaseState.PENDING
    assert releases.split(LAMBDA).excluded == {"v3"}

    # When v2 fails its trial
    push(releases, "v2", POLICY.min_pushes, failing=POLICY.min_pushes)
    await releases.evaluate()

    # Then v3 is on trial against v1, and v2 is out
    assert releases.split(LAMBDA) == VersionSplit("v3", POLICY.share, frozenset({"v2"}))


async def test_unversioned_endpoints_are_outside_releases(releases: Releases) -> None:
    await releases.seen(LAMBDA, "")
    assert releases.view(LAMBDA).releases == []
    assert releases.split(LAMBDA) == NO_SPLIT


# -- automatic decisions ------------------------------------------------------------------------
async def test_a_healthy_canary_is_promoted_after_its_window(
    releases: Releases, clock: FakeClock
) -> None:
    # Given a canary as healthy as the stable version, with enough pushes
    await on_trial(releases)
    push(releases, "v2", 30)
    push(releases, "v1", 300)

    # When half the window has passed, it is still on trial
    clock.advance(POLICY.window_seconds / 2)
    await releases.evaluate()
    assert state(releases.view(LAMBDA), "v2") is ReleaseState.CANARY

    # Then once the whole window has passed, it is stable and v1 superseded
    clock.advance(POLICY.window_seconds / 2)
    await releases.evaluate()
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.STABLE
    assert state(view, "v1") is ReleaseState.SUPERSEDED
    assert reason(view, "v2").startswith("healthy over 60 s")
    assert releases.split(LAMBDA) == NO_SPLIT


async def test_a_canary_whose_failure_rate_breaches_the_threshold_is_rolled_back_at_once(
    releases: Releases,
) -> None:
    # Given a canary failing half its pushes while the stable version fails none
    await on_trial(releases)
    push(releases, "v1", 100)
    push(releases, "v2", 20, failing=10)

    # When it is judged, well within its window
    await releases.evaluate()

    # Then it is rolled back, gets no pushes, and the reason gives the figures
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.ROLLED_BACK
    assert reason(view, "v2") == "failure rate 50% vs stable 0% over 0 s exceeds +10%"
    assert releases.split(LAMBDA) == VersionSplit(None, 0.0, frozenset({"v2"}))
    (rolled,) = [r for r in view.releases if r.version == "v2"]
    assert rolled.figures is not None
    assert (rolled.figures.canary.pushes, rolled.figures.canary.failures) == (20, 10)
    assert rolled.figures.stable.pushes == 100


async def test_a_failure_rate_within_the_allowed_increase_is_not_a_breach(
    releases: Releases, clock: FakeClock
) -> None:
    # Given a canary failing 15% while the stable version fails 10% (+5 points, under +10)
    await on_trial(releases)
    push(releases, "v1", 100, failing=10)
    push(releases, "v2", 20, failing=3)

    # When it is judged
    await releases.evaluate()

    # Then it is not rolled back: it is healthy so far
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.CANARY
    assert view.status.startswith("healthy so far")


async def test_a_canary_much_slower_than_stable_is_rolled_back(releases: Releases) -> None:
    # Given a canary at 300 ms while the stable version answers in 10 ms
    await on_trial(releases)
    push(releases, "v1", 100, latency=0.010)
    push(releases, "v2", 20, latency=0.300)

    # When it is judged
    await releases.evaluate()

    # Then it is rolled back on latency (limit 10 ms x 2 + 50 ms)
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.ROLLED_BACK
    assert reason(view, "v2") == "p95 latency 300 ms vs stable 10 ms over 0 s exceeds 2x + 50 ms"


async def test_a_canary_slower_only_within_the_slack_is_kept(
    releases: Releases, clock: FakeClock
) -> None:
    # Given a canary at 60 ms against 10 ms: over 2x, under 2x + 50 ms
    await on_trial(releases)
    push(releases, "v1", 100, latency=0.010)
    push(releases, "v2", 20, latency=0.060)

    # When it is judged
    await releases.evaluate()

    # Then it stays on trial
    assert state(releases.view(LAMBDA), "v2") is ReleaseState.CANARY


async def test_nothing_is_decided_before_the_minimum_of_pushes(releases: Releases) -> None:
    # Given a canary that failed every one of its pushes, one short of the minimum
    await on_trial(releases)
    push(releases, "v2", POLICY.min_pushes - 1, failing=POLICY.min_pushes)

    # When it is judged, it stays on trial, saying how far it is
    await releases.evaluate()
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.CANARY
    assert view.status == f"{POLICY.min_pushes - 1} of {POLICY.min_pushes} pushes so far"

    # Then one more failed push rolls it back
    releases.record(LAMBDA, "v2", False, 0.01, 1)
    await releases.evaluate()
    assert state(releases.view(LAMBDA), "v2") is ReleaseState.ROLLED_BACK


async def test_without_auto_promote_a_healthy_canary_waits_for_an_operator(
    releases: Releases, clock: FakeClock
) -> None:
    # Given a lambda whose canaries are promoted by hand only
    await releases.set_policy(LAMBDA, ReleasePolicy(auto_promote=False))
    await on_trial(releases)

    # When a healthy canary has run its window
    clock.advance(POLICY.window_seconds)
    push(releases, "v2", 30)
    await releases.evaluate()

    # Then it is still on trial, and says why
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.CANARY
    assert view.status.endswith("auto_promote is off")


async def test_old_pushes_leave_the_window(releases: Releases, clock: FakeClock) -> None:
    # Given early failures on the canary, then a window of nothing
    await on_trial(releases)
    push(releases, "v2", 10, failing=10)
    clock.advance(POLICY.window_seconds + 1)

    # When healthy pushes follow
    push(releases, "v2", 20)
    await releases.evaluate()

    # Then only those count: it is promoted
    live = releases.view(LAMBDA)
    assert state(live, "v2") is ReleaseState.STABLE


async def test_a_canary_whose_traffic_came_in_one_burst_is_judged_on_its_whole_trial(
    releases: Releases, clock: FakeClock
) -> None:
    # Given a burst of healthy pushes early in the trial, then a quiet window
    await on_trial(releases)
    push(releases, "v2", 30)
    push(releases, "v1", 30)
    clock.advance(POLICY.window_seconds - 1)
    await releases.evaluate()
    assert state(releases.view(LAMBDA), "v2") is ReleaseState.CANARY

    # When the whole window has passed with nothing in it
    clock.advance(2)
    await releases.evaluate()

    # Then it is judged on the trial's counts: promoted
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.STABLE
    assert "over the whole trial (30 pushes; 0 in the last window)" in reason(view, "v2")


async def test_a_quiet_canary_whose_trial_was_bad_overall_is_rolled_back(
    releases: Releases, clock: FakeClock
) -> None:
    # Given failures thinly spread: never min_pushes within one window, 30% over the trial
    await on_trial(releases)
    for _ in range(4):
        push(releases, "v2", 10, failing=3)
        push(releases, "v1", 10)
        clock.advance(POLICY.window_seconds / 2 + 1)
        await releases.evaluate()

    # Then at the first evaluation after a whole window it is rolled back
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.ROLLED_BACK
    assert "over the whole trial" in reason(view, "v2")


async def test_a_canary_without_live_endpoints_gives_way_to_the_version_waiting(
    store: Store, clock: FakeClock
) -> None:
    # Given v2 on trial whose workers are gone (replaced by v3's in a deploy)
    live = {"v1", "v2"}
    releases = Releases(store, clock, live_versions=lambda name: live)
    await on_trial(releases)
    live.discard("v2")
    await releases.evaluate()
    alone = state(releases.view(LAMBDA), "v2")

    # When v3 registers, waiting for its turn, and the trials are judged
    await releases.seen(LAMBDA, "v3")
    live.add("v3")
    await releases.evaluate()

    # Then v2 (kept while nothing waited) is given up, unjudged, and v3 is on trial
    assert alone is ReleaseState.CANARY
    view = releases.view(LAMBDA)
    assert state(view, "v2") is ReleaseState.ROLLED_BACK
    assert reason(view, "v2") == "abandoned: no live endpoint while v3 was waiting"
    assert releases.split(LAMBDA) == VersionSplit("v3", POLICY.share, frozenset({"v2"}))


# -- by hand ------------------------------------------------------------------------------------
async def test_an_operator_promotes_a_canary_and_the_next_version_is_tried(
    releases: Releases,
) -> None:
    await on_trial(releases)
    await releases.seen(LAMBDA, "v3")

    view = await releases.promote(LAMBDA, "v2")

    assert state(view, "v2") is ReleaseState.STABLE
    assert reason(view, "v2") == "promoted by hand"
    assert state(view, "v1") is ReleaseState.SUPERSEDED
    assert releases.split(LAMBDA) == VersionSplit("v3", POLICY.share, frozenset())


async def test_an_operator_rolls_back_a_canary_and_promotes_a_rolled_back_version(
    releases: Releases,
) -> None:
    # Given a canary rolled back by hand
    await on_trial(releases)
    rolled = await releases.roll_back(LAMBDA, "v2")
    assert state(rolled, "v2") is ReleaseState.ROLLED_BACK
    assert releases.split(LAMBDA).excluded == {"v2"}

    # When it is promoted by hand after all
    promoted = await releases.promote(LAMBDA, "v2")

    # Then it is stable and gets pushes again
    assert state(promoted, "v2") is ReleaseState.STABLE
    assert releases.split(LAMBDA) == NO_SPLIT


async def test_rolling_back_the_stable_version_restores_the_one_it_superseded(
    releases: Releases,
) -> None:
    # Given v2 promoted over v1
    await on_trial(releases)
    await releases.promote(LAMBDA, "v2")

    # When v2 is rolled back by hand
    view = await releases.roll_back(LAMBDA, "v2")

    # Then v1 is stable again and v2 is out
    assert state(view, "v1") is ReleaseState.STABLE
    assert state(view, "v2") is ReleaseState.ROLLED_BACK
    assert releases.split(LAMBDA).excluded == {"v2"}


async def test_the_first_stable_version_cannot_be_rolled_back(releases: Releases) -> None:
    await releases.seen(LAMBDA, "v1")
    with pytest.raises(Conflict, match="no earlier version"):
        await releases.roll_back(LAMBDA, "v1")
    assert state(releases.view(LAMBDA), "v1") is ReleaseState.STABLE


async def test_an_unknown_version_is_not_found(releases: Releases) -> None:
    await releases.seen(LAMBDA, "v1")
    with pytest.raises(NotFound, match="release 'worker/v9' does not exist"):
        await releases.promote(LAMBDA, "v9")


async def test_a_rolled_back_version_seen_again_stays_out(releases: Releases) -> None:
    # Given v2 rolled back
    await on_trial(releases)
    await releases.roll_back(LAMBDA, "v2")

    # When a worker of v2 registers again, and then one of v3
    await releases.seen(LAMBDA, "v2")
    after_v2 = releases.split(LAMBDA)
    await releases.seen(LAMBDA, "v3")

    # Then v2 stays excluded, and v3 starts a trial of its own
    assert after_v2 == VersionSplit(None, 0.0, frozenset({"v2"}))
    assert releases.split(LAMBDA) == VersionSplit("v3", POLICY.share, frozenset({"v2"}))


# -- policy, persistence, cluster ---------------------------------------------------------------
async def test_a_policy_set_at_run_time_applies_to_the_trial_under_way(
    releases: Releases,
) -> None:
    await on_trial(releases)

    # When the share and the minimum of pushes change during the trial
    await releases.set_policy(LAMBDA, ReleasePolicy(share=0.5, min_pushes=5))
    share = releases.split(LAMBDA).share
    push(releases, "v2", 5, failing=5)
    await releases.evaluate()

    # Then the canary gets the new share, and is judged after the new minimum
    assert share == 0.5
    assert state(releases.view(LAMBDA), "v2") is ReleaseState.ROLLED_BACK


async def test_a_policy_breaking_a_rule_is_refused(releases: Releases) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"share"):
        await releases.set_policy(LAMBDA, ReleasePolicy(share=2.0))
    assert await releases.policy(LAMBDA) == POLICY


async def test_releases_and_policies_survive_a_restart(
    releases: Releases, store: Store, clock: FakeClock
) -> None:
    # Given a rolled-back v2, v3 on trial, and a policy
    await releases.set_policy(LAMBDA, ReleasePolicy(share=0.25))
    await on_trial(releases)
    await releases.roll_back(LAMBDA, "v2")
    await releases.seen(LAMBDA, "v3")

    # When another manager loads the same store
    restarted = Releases(store, clock)
    await restarted.load()

    # Then it routes the same way
    assert restarted.split(LAMBDA) == VersionSplit("v3", 0.25, frozenset({"v2"}))
    assert [r.version for r in restarted.view(LAMBDA).releases] == ["v1", "v2", "v3"]


async def test_a_decision_made_elsewhere_stands_and_is_learnt_at_the_next_sync(
    releases: Releases, store: Store, clock: FakeClock
) -> None:
    # Given two nodes watching the same trial
    other = Releases(store, clock, Metrics())
    await on_trial(releases)
    await other.load()
    assert other.split(LAMBDA).canary == "v2"

    # When this node rolls it back on its pushes, while the other found it healthy
    push(releases, "v2", 20, failing=20)
    await releases.evaluate()
    clock.advance(POLICY.window_seconds)
    push(other, "v2", 50)
    push(other, "v1", 50)
    await other.evaluate()

    # Then the rollback stands, and the other node now knows it
    stored = await releases.describe(LAMBDA)
    assert stored is not None
    assert state(stored, "v2") is ReleaseState.ROLLED_BACK
    assert state(other.view(LAMBDA), "v2") is ReleaseState.ROLLED_BACK
    assert other.split(LAMBDA).excluded == {"v2"}


async def test_a_node_learns_a_new_canary_at_its_sync(
    releases: Releases, store: Store, clock: FakeClock
) -> None:
    other = Releases(store, clock)
    await releases.seen(LAMBDA, "v1")
    await other.load()

    await releases.seen(LAMBDA, "v2")
    before = other.split(LAMBDA)
    await other.refresh()

    assert before == NO_SPLIT
    assert other.split(LAMBDA) == VersionSplit("v2", POLICY.share, frozenset())


async def test_release_states_and_the_canary_share_are_exported(
    store: Store, clock: FakeClock
) -> None:
    metrics = Metrics()
    releases = Releases(store, clock, metrics)
    await on_trial(releases)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("conveyor_release_state", version="v2", state="canary", **{"lambda": LAMBDA})
    assert sample("conveyor_release_canary_share", **{"lambda": LAMBDA}) == POLICY.share

    await releases.promote(LAMBDA, "v2")

    assert sample("conveyor_release_state", version="v2", state="stable", **{"lambda": LAMBDA})
    assert (
        sample("conveyor_release_state", version="v2", state="canary", **{"lambda": LAMBDA}) is None
    )
    assert sample("conveyor_release_canary_share", **{"lambda": LAMBDA}) == 0.0
