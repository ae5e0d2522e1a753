"""Releases, without I/O: the stored release and the verdict on a trial.

The states, the policy and the figures are part of the HTTP contract:
:mod:`conveyor.wire.releases`.

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

import msgspec

from conveyor.wire.releases import Figures, ReleasePolicy, ReleaseState

__all__ = [
    "EXCLUDED",
    "Action",
    "Release",
    "Verdict",
    "judge",
]


EXCLUDED = frozenset({ReleaseState.PENDING, ReleaseState.ROLLED_BACK})
"""States whose endpoints get no pushes."""


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
