"""Releases' transitions and verdict, pure: what a version seen, a verdict or a decision by
hand writes, given a lambda's releases as stored."""

from __future__ import annotations

import pytest

from conveyor.delivery.releases_lifecycle import abandon, decide, first_seen, promote, roll_back
from conveyor.delivery.releases_policy import Action, Release, Verdict, judge
from conveyor.errors import NotFound
from conveyor.wire.releases import Figures, ReleasePolicy, ReleaseState, SideFigures

NOW = 1_700_000_000_000
STABLE = Release("v1", ReleaseState.STABLE, NOW - 10_000, NOW - 10_000)
CANARY = Release("v2", ReleaseState.CANARY, NOW - 5_000)
PENDING = Release("v3", ReleaseState.PENDING, NOW - 1_000)
FIGURES = Figures(30.0, SideFigures(pushes=20, failures=10, failure_rate=0.5), SideFigures())
ROLL_BACK = Verdict(Action.ROLL_BACK, "failure rate 50% vs stable 0% over 30 s exceeds +10%")
PROMOTE = Verdict(Action.PROMOTE, "healthy")
SLOW = SideFigures(pushes=20, latency_p95=0.5)


def states(written: list[Release]) -> list[tuple[str, ReleaseState]]:
    return [(r.version, r.state) for r in written]


def test_versions_seen_are_stable_first_then_canary_then_pending() -> None:
    first = first_seen([], "v1", NOW)
    second = first_seen(first, "v2", NOW)
    third = first_seen([*first, *second], "v3", NOW)

    assert states(first) == [("v1", ReleaseState.STABLE)]
    assert states(second) == [("v2", ReleaseState.CANARY)]
    assert states(third) == [("v3", ReleaseState.PENDING)]
    assert first_seen([*first, *second, *third], "v2", NOW) == []


def test_a_verdict_on_a_release_no_longer_canary_writes_nothing() -> None:
    # Given v2 rolled back by another node
    (rolled, *_) = decide([STABLE, CANARY], "v2", ROLL_BACK, NOW, FIGURES)
    assert rolled.state is ReleaseState.ROLLED_BACK

    # When a promotion is decided on the stale view, nothing is written
    assert decide([STABLE, rolled], "v2", PROMOTE, NOW + 1, FIGURES) == []


def test_a_rollback_writes_its_reason_and_figures_and_starts_the_next_trial() -> None:
    written = decide([STABLE, CANARY, PENDING], "v2", ROLL_BACK, NOW, FIGURES)

    assert states(written) == [("v2", ReleaseState.ROLLED_BACK), ("v3", ReleaseState.CANARY)]
    assert (written[0].reason, written[0].figures, written[0].decided_ms) == (
        ROLL_BACK.reason,
        FIGURES,
        NOW,
    )
    assert (written[1].started_ms, written[1].reason) == (NOW, "on trial against v1")


def test_a_promotion_supersedes_the_stable_version() -> None:
    written = decide([STABLE, CANARY], "v2", PROMOTE, NOW, FIGURES)
    assert states(written) == [("v2", ReleaseState.STABLE), ("v1", ReleaseState.SUPERSEDED)]
    assert written[1].reason == "superseded by v2"


def test_a_canary_is_abandoned_only_for_a_pending_version() -> None:
    assert abandon([STABLE, CANARY], "v2", NOW) == []
    written = abandon([STABLE, CANARY, PENDING], "v2", NOW)
    assert states(written) == [("v2", ReleaseState.ROLLED_BACK), ("v3", ReleaseState.CANARY)]


def test_decisions_by_hand_name_an_unknown_release() -> None:
    for act in (promote, roll_back):
        with pytest.raises(NotFound, match="release 'worker/v9'"):
            act([STABLE], "worker", "v9", NOW)


def test_promoting_the_stable_version_or_rolling_back_a_rolled_back_one_writes_nothing() -> None:
    rolled = Release("v2", ReleaseState.ROLLED_BACK, NOW, NOW)
    assert promote([STABLE], "worker", "v1", NOW) == []
    assert roll_back([STABLE, rolled], "worker", "v2", NOW) == []


@pytest.mark.parametrize(
    ("canary", "stable", "action"),
    [
        pytest.param(SideFigures(pushes=19, failures=19, failure_rate=1.0), SideFigures(),
                     Action.WAIT, id="too few pushes"),
        pytest.param(SideFigures(pushes=20, failures=5, failure_rate=0.25),
                     SideFigures(pushes=100, failures=20, failure_rate=0.2),
                     Action.PROMOTE, id="+5 points"),
        pytest.param(SideFigures(pushes=20, failures=7, failure_rate=0.35),
                     SideFigures(pushes=100, failures=20, failure_rate=0.2),
                     Action.ROLL_BACK, id="+15 points"),
        pytest.param(SLOW, SideFigures(pushes=5, latency_p95=0.01),
                     Action.PROMOTE, id="slow, but too few stable pushes to compare"),
        pytest.param(SLOW, SideFigures(pushes=20, latency_p95=0.01),
                     Action.ROLL_BACK, id="slow"),
    ],
)  # fmt: skip
def test_a_trial_watched_for_its_window_is_judged_on_its_figures(
    canary: SideFigures, stable: SideFigures, action: Action
) -> None:
    verdict = judge(ReleasePolicy(), Figures(60.0, canary, stable), watched=60.0)
    assert verdict.action is action, verdict.reason
