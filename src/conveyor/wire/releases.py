"""Releases' response bodies (msgspec Structs), shared by the server, the Python client and the
OpenAPI document, with the types they are made of (the states, the policy, the figures). The
request body of a policy change is :class:`ReleasePolicy` itself.

A lambda's versions are released by its workers: a worker started with a new ``--version``
becomes a canary that gets a share of the pushes, is judged against the stable version over a
window, and is promoted or rolled back (see docs/releases.md).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec

__all__ = [
    "Figures",
    "LambdaReleases",
    "ReleasePolicy",
    "ReleaseState",
    "ReleaseView",
    "SideFigures",
]


class ReleaseState(enum.StrEnum):
    """Where a version of a lambda stands."""

    STABLE = "stable"
    CANARY = "canary"
    PENDING = "pending"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"


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


class ReleaseView(msgspec.Struct, omit_defaults=True):
    """One version of a lambda and where it stands.

    Attributes:
        version: the version.
        state: ``stable``, ``canary`` (on trial), ``pending`` (waiting for the trial before
            it), ``rolled_back`` (gets no pushes) or ``superseded`` (was stable).
        started_at: when it was first seen; for a canary, when its trial started.
        decided_at: when it was promoted, rolled back, superseded or changed by hand.
        reason: why it is in its state; for a canary, where its trial stands on the answering
            node.
        window: for a decided release, the figures it was decided on; for a canary, its live
            figures on the answering node.
    """

    version: str
    state: ReleaseState
    started_at: datetime
    decided_at: datetime | None = None
    reason: str = ""
    window: Figures | None = None


class LambdaReleases(msgspec.Struct):
    """A lambda's releases.

    Attributes:
        lambda_name: the lambda (``lambda`` on the wire).
        stable: the stable version, if any.
        canary: the version on trial, if any, with its live figures on the answering node
            (each node judges from the pushes it made).
        pending: versions waiting for their trial, oldest first.
        history: every release, newest first.
        policy: the lambda's release policy.
    """

    lambda_name: str = msgspec.field(name="lambda")
    stable: ReleaseView | None = None
    canary: ReleaseView | None = None
    pending: list[ReleaseView] = []
    history: list[ReleaseView] = []
    policy: ReleasePolicy = ReleasePolicy()
