"""Releases' transitions, without I/O: a version seen, a verdict applied, a decision by hand.

Every transition takes a lambda's releases as stored (oldest first) and returns the releases
to write; the store runs it in the transaction that holds the lambda, so what it reads is
what it changes. An automatic decision applies only to a release still ``canary``
(compare-and-set): when two nodes decide, the first one's decision stands.
"""

from __future__ import annotations

import msgspec

from conveyor.delivery.releases_policy import Action, Release, Verdict
from conveyor.errors import Conflict, NotFound
from conveyor.wire.releases import Figures, ReleaseState

__all__ = ["abandon", "decide", "first_seen", "promote", "roll_back"]


def _find(releases: list[Release], version: str) -> Release | None:
    return next((r for r in releases if r.version == version), None)


def _in(releases: list[Release], state: ReleaseState) -> Release | None:
    return next((r for r in releases if r.state is state), None)


def _decided(
    release: Release,
    state: ReleaseState,
    now_ms: int,
    reason: str,
    figures: Figures | None = None,
) -> Release:
    return msgspec.structs.replace(
        release,
        state=state,
        decided_ms=now_ms,
        reason=reason,
        figures=figures if figures is not None else release.figures,
    )


def _next_trial(releases: list[Release], leaving: str, stable: str, now_ms: int) -> list[Release]:
    """The oldest pending version starts its trial (the canary ``leaving`` is decided)."""
    waiting = [r for r in releases if r.state is ReleaseState.PENDING and r.version != leaving]
    if not waiting:
        return []
    return [
        msgspec.structs.replace(
            waiting[0],
            state=ReleaseState.CANARY,
            started_ms=now_ms,
            reason=f"on trial against {stable}",
        )
    ]


def _make_stable(
    releases: list[Release], target: Release, now_ms: int, reason: str, figures: Figures | None
) -> list[Release]:
    written = [_decided(target, ReleaseState.STABLE, now_ms, reason, figures)]
    for release in releases:
        if release.state is ReleaseState.STABLE and release.version != target.version:
            superseded = f"superseded by {target.version}"
            written.append(_decided(release, ReleaseState.SUPERSEDED, now_ms, superseded))
    if target.state is ReleaseState.CANARY:
        written += _next_trial(releases, target.version, target.version, now_ms)
    return written


def first_seen(releases: list[Release], version: str, now_ms: int) -> list[Release]:
    """A version was seen (an endpoint registered with it).

    Returns:
        Nothing for a version already known (a rolled-back one stays excluded); otherwise
        the new release: stable for the lambda's first version, a canary when none is on
        trial, or pending behind the one that is.
    """
    if _find(releases, version) is not None:
        return []
    stable = _in(releases, ReleaseState.STABLE)
    if stable is None:
        first = "the lambda's first version: stable at once"
        return [Release(version, ReleaseState.STABLE, now_ms, now_ms, first)]
    canary = _in(releases, ReleaseState.CANARY)
    if canary is not None:
        waiting = f"waiting for the trial of {canary.version} to end"
        return [Release(version, ReleaseState.PENDING, now_ms, reason=waiting)]
    trial = f"on trial against {stable.version}"
    return [Release(version, ReleaseState.CANARY, now_ms, reason=trial)]


def decide(
    releases: list[Release], version: str, verdict: Verdict, now_ms: int, figures: Figures
) -> list[Release]:
    """Apply an automatic verdict on the canary ``version``.

    Returns:
        Nothing when ``version`` is no longer a canary (decided meanwhile, perhaps by
        another node: that decision stands) or the verdict is to wait.
    """
    canary = _find(releases, version)
    if canary is None or canary.state is not ReleaseState.CANARY:
        return []
    if verdict.action is Action.PROMOTE:
        return _make_stable(releases, canary, now_ms, verdict.reason, figures)
    if verdict.action is Action.ROLL_BACK:
        stable = _in(releases, ReleaseState.STABLE)
        rolled = _decided(canary, ReleaseState.ROLLED_BACK, now_ms, verdict.reason, figures)
        return [rolled, *_next_trial(releases, version, stable.version if stable else "", now_ms)]
    return []


def abandon(releases: list[Release], version: str, now_ms: int) -> list[Release]:
    """Give up the trial of the canary ``version``, which has no live endpoint left, for the
    oldest pending version (a deploy that replaced one new version with the next): the
    canary is rolled back, unjudged, and the pending version starts its trial.

    Returns:
        Nothing when ``version`` is no longer a canary, or no version is pending.
    """
    canary = _find(releases, version)
    pending = _in(releases, ReleaseState.PENDING)
    stable = _in(releases, ReleaseState.STABLE)
    if canary is None or canary.state is not ReleaseState.CANARY or pending is None:
        return []
    reason = f"abandoned: no live endpoint while {pending.version} was waiting"
    rolled = _decided(canary, ReleaseState.ROLLED_BACK, now_ms, reason)
    return [rolled, *_next_trial(releases, version, stable.version if stable else "", now_ms)]


def _known(releases: list[Release], lambda_name: str, version: str) -> Release:
    release = _find(releases, version)
    if release is None:
        raise NotFound("release", f"{lambda_name}/{version}")
    return release


def promote(
    releases: list[Release],
    lambda_name: str,
    version: str,
    now_ms: int,
    figures: Figures | None = None,
) -> list[Release]:
    """Make ``version`` stable by hand, whatever its state (a rolled-back one included).

    Raises:
        NotFound: the lambda has no such release.
    """
    target = _known(releases, lambda_name, version)
    if target.state is ReleaseState.STABLE:
        return []
    return _make_stable(releases, target, now_ms, "promoted by hand", figures)


def roll_back(
    releases: list[Release],
    lambda_name: str,
    version: str,
    now_ms: int,
    figures: Figures | None = None,
) -> list[Release]:
    """Roll ``version`` back by hand: it gets no pushes any more.

    Rolling back the stable version restores the one it superseded last.

    Raises:
        NotFound: the lambda has no such release.
        Conflict: ``version`` is stable and no version was stable before it.
    """
    target = _known(releases, lambda_name, version)
    if target.state is ReleaseState.ROLLED_BACK:
        return []
    reason = "rolled back by hand"
    rolled = _decided(target, ReleaseState.ROLLED_BACK, now_ms, reason, figures)
    if target.state is ReleaseState.STABLE:
        earlier = [r for r in releases if r.state is ReleaseState.SUPERSEDED]
        if not earlier:
            raise Conflict(
                f"{version} is the first stable version of {lambda_name!r}: there is no "
                "earlier version to return to"
            )
        previous = max(earlier, key=lambda r: (r.decided_ms or 0, r.started_ms))
        restored = f"restored when {version} was rolled back by hand"
        return [rolled, _decided(previous, ReleaseState.STABLE, now_ms, restored)]
    if target.state is ReleaseState.CANARY:
        stable = _in(releases, ReleaseState.STABLE)
        return [rolled, *_next_trial(releases, version, stable.version if stable else "", now_ms)]
    return [rolled]
