"""Releases' response bodies (msgspec Structs), shared by the server, the Python client and the
OpenAPI document. The request body of a policy change is
:class:`~conveyor.delivery.releases_policy.ReleasePolicy` itself.

A lambda's versions are released by its workers: a worker started with a new ``--version``
becomes a canary that gets a share of the pushes, is judged against the stable version over a
window, and is promoted or rolled back (see docs/releases.md).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from conveyor.delivery.releases_policy import (
    Figures,
    ReleasePolicy,
    ReleaseState,
    SideFigures,
)

__all__ = [
    "Figures",
    "LambdaReleases",
    "ReleasePolicy",
    "ReleaseState",
    "ReleaseView",
    "SideFigures",
]


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
