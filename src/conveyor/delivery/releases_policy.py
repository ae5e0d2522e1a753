"""Releases, without I/O: the states, the policy, the figures, and the verdict on a trial.

A lambda has at most one **stable** version and at most one **canary** (a version on trial);
versions seen while a canary is on trial wait as **pending**, in order. A canary ends
**promoted** (it becomes stable; the stable before it is **superseded**) or **rolled back**
(it gets no pushes any more). Pending and rolled-back versions are *excluded*: their
endpoints get no pushes at all.

The transitions between states are in ``releases_lifecycle.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

import msgspec

__all__ = [
    "EXCLUDED",
    "Action",
    "Figures",
    "Release",
    "ReleasePolicy",
    "ReleaseState",
    "SideFigures",
    "Verdict",
    "judge",
]


class ReleaseState(enum.StrEnum):
    """Where a version of a lambda stands."""

    STABLE = "stable"
    CANARY = "canary"
    PENDING = "pending"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"


EXCLUDED = frozenset({ReleaseState.PENDING, ReleaseState.ROLLED_BACK})
"""States whose endpoints get no pushes."""


class ReleasePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a lambda's new versions are tried, judged and decided.

    Attributes:
        share: the share of pushes a canary gets while both it and the stable version have
            live endpoints.
        window_seconds: the span of the figures compared, and how long a canary is watched
            before it can be promoted.
        min_pushes: pushes to the canary within the window before any decision.
        max_failure_increase: the canary is rolled back when its failure rate exceeds the
            stable version's by more than this (absolute: 0.1 is ten points).
        max_latency_ratio: the canary is rolled back when its p95 latency exceeds the stable
            version's times this, plus ``latency_slack``.
        latency_slack: seconds added to the latency limit, so that fast handlers are not
            judged on noise.
        auto_promote: promote a healthy canary after the window; otherwise it stays on trial
            (and can still be rolled back) until promoted by hand.
    """

    share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.1
    window_seconds: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = 60.0
    min_pushes: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20
    max_failure_increase: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.1
    max_latency_ratio: Annotated[float, msgspec.Meta(ge=1, le=1000)] = 2.0
    latency_slack: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 0.05
    auto_promote: bool = True


class SideFigures(msgspec.Struct, frozen=True):
    """One side of a trial (the canary, or every other version) over the window.

    Attributes:
        pushes: pushes that ended with an answer or a failure.
        failures: pushes in which any event did not succeed.
        events: events in those pushes.
        failure_rate: ``failures / pushes`` (0 without pushes).
        latency_p50: the median seconds from push to answer (``None`` without pushes).
        latency_p95: the 95th percentile of those seconds.
    """

    pushes: int = 0
    failures: int = 0
    events: int = 0
    failure_rate: float = 0.0
    latency_p50: float | None = None
    latency_p95: float | None = None


class Figures(msgspec.Struct, frozen=True):
    """A trial's figures: the canary's and the stable side's, over ``seconds`` (the window),
    and their counts over the whole trial (``canary_trial``, ``stable_trial``)."""

    seconds: float
    canary: SideFigures
    stable: SideFigures
    canary_trial: SideFigures = SideFigures()
    stable_trial: SideFigures = SideFigures()


class Release(msgspec.Struct, frozen=True):
    """A version of a lambda and where it stands.

    Attributes:
        version: the version.
        state: where it stands.
        started_ms: when it was seen first (a canary: when its trial started).
        decided_ms: when it was decided or changed by hand (``None`` while undecided).
        reason: why it is in its state.
        figures: the figures its decision was made on.
    """

    version: str
    state: ReleaseState
    started_ms: int
    decided_ms: int | None = None
    reason: str = ""
    figures: Figures | None = None


class Action(enum.Enum):
    """What a verdict asks for."""

    WAIT = "wait"
    PROMOTE = "promote"
    ROLL_BACK = "roll_back"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judgement of a trial: what to do, and why (for a wait: where the trial stands)."""

    action: Action
    reason: str


# -- judging ------------------------------------------------------------------------------------
def _pct(rate: float) -> str:
    return f"{rate * 100:.3g}%"


def _secs(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3g} ms"


def judge(policy: ReleasePolicy, figures: Figures, watched: float) -> Verdict:
    """Judge a trial on its figures.

    Args:
        policy: the lambda's release policy.
        figures: the canary's and the stable side's figures over the window.
        watched: seconds this trial has been watched.

    Returns:
        Roll back when a threshold is breached (once the canary has ``min_pushes``);
        promote when healthy after a whole window (with ``auto_promote``); wait otherwise.
    """
    canary, stable = figures.canary, figures.stable
    if canary.pushes < policy.min_pushes:
        return _judge_quiet(policy, figures, watched)
    span = f"over {figures.seconds:.0f} s"
    increase = canary.failure_rate - stable.failure_rate
    if increase > policy.max_failure_increase + 1e-9:
        return Verdict(
            Action.ROLL_BACK,
            f"failure rate {_pct(canary.failure_rate)} vs stable {_pct(stable.failure_rate)} "
            f"{span} exceeds +{_pct(policy.max_failure_increase)}",
        )
    if (
        canary.latency_p95 is not None
        and stable.latency_p95 is not None
        and stable.pushes >= policy.min_pushes
    ):
        limit = stable.latency_p95 * policy.max_latency_ratio + policy.latency_slack
        if canary.latency_p95 > limit:
            return Verdict(
                Action.ROLL_BACK,
                f"p95 latency {_secs(canary.latency_p95)} vs stable "
                f"{_secs(stable.latency_p95)} {span} exceeds {policy.max_latency_ratio:g}x + "
                f"{_secs(policy.latency_slack)}",
            )
    health = (
        f"failure rate {_pct(canary.failure_rate)} vs stable {_pct(stable.failure_rate)}, "
        f"p95 {_secs(canary.latency_p95)} vs {_secs(stable.latency_p95)} "
        f"({canary.pushes} pushes)"
    )
    if watched < policy.window_seconds:
        return Verdict(Action.WAIT, f"healthy so far {span}: {health}")
    if not policy.auto_promote:
        return Verdict(Action.WAIT, f"healthy {span}: {health}; auto_promote is off")
    return Verdict(Action.PROMOTE, f"healthy {span}: {health}")


def _judge_quiet(policy: ReleasePolicy, figures: Figures, watched: float) -> Verdict:
    """A window with too few pushes to judge: a canary watched for a whole window is judged
    on its whole trial instead (a lambda whose traffic comes in bursts would otherwise never
    have a release promoted); before that, it waits."""
    canary, whole, stable = figures.canary, figures.canary_trial, figures.stable_trial
    if watched < policy.window_seconds or whole.pushes < policy.min_pushes:
        return Verdict(Action.WAIT, f"{canary.pushes} of {policy.min_pushes} pushes so far")
    rates = (
        f"failure rate {_pct(whole.failure_rate)} vs stable {_pct(stable.failure_rate)} "
        f"over the whole trial ({whole.pushes} pushes; {canary.pushes} in the last window)"
    )
    if whole.failure_rate - stable.failure_rate > policy.max_failure_increase + 1e-9:
        return Verdict(Action.ROLL_BACK, f"{rates} exceeds +{_pct(policy.max_failure_increase)}")
    if not policy.auto_promote:
        return Verdict(Action.WAIT, f"healthy: {rates}; auto_promote is off")
    return Verdict(Action.PROMOTE, f"healthy: {rates}")
