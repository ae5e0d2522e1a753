"""Releases with automatic rollback: a new version of a lambda is tried on a share of its
pushes, judged against the stable version, and promoted or rolled back.

When a worker registers an endpoint with a version the lambda has not had, that version
becomes a release: stable at once when it is the lambda's first, otherwise a **canary**
(``pending`` while another canary is on trial). The endpoint pool asks :meth:`Releases.split`
on every choice (a dict lookup) and sends the canary its ``share`` of pushes, and tells
:meth:`Releases.record` how every push went. Every second :meth:`Releases.evaluate` judges
each trial on this node's figures over the window (``releases_policy.judge``) and writes a
promotion or a rollback to the store.

Cluster: releases and policies live in the store. Each node judges from the pushes *it* made;
the first node to decide writes the decision (compare-and-set: only a release still
``canary`` is decided), and the others learn it at their next sync (:meth:`refresh`), reading
only the lambdas whose revision moved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

import msgspec

from conveyor.clock import Clock, sleep_unless_stopped, to_ms
from conveyor.delivery.endpoints import NO_SPLIT, VersionSplit
from conveyor.delivery.releases_lifecycle import abandon, decide, first_seen, promote, roll_back
from conveyor.delivery.releases_policy import EXCLUDED, Action, Release, judge
from conveyor.delivery.releases_window import Trial
from conveyor.errors import ConveyorError
from conveyor.metrics import Metrics
from conveyor.store.base import LambdaReleases, StoredRelease
from conveyor.store.ports import ReleasesPort
from conveyor.wire.releases import Figures, ReleasePolicy, ReleaseState

__all__ = ["TICK", "LambdaView", "Releases"]

log = logging.getLogger("conveyor.delivery.releases")

TICK = 1.0  # seconds between evaluations of the trials
DEFAULT_POLICY = ReleasePolicy()
EXPORTED = (
    ReleaseState.STABLE,
    ReleaseState.CANARY,
    ReleaseState.PENDING,
    ReleaseState.ROLLED_BACK,
)

_figures_decoder = msgspec.json.Decoder(Figures)
_policy_decoder = msgspec.json.Decoder(ReleasePolicy)
Transition = Callable[[list[Release]], list[Release]]


@dataclass(frozen=True, slots=True)
class LambdaView:
    """A lambda's releases as a node sees them.

    Attributes:
        lambda_name: the lambda.
        policy: its release policy.
        releases: every release, oldest first.
        live: the canary's trial figures on this node (``None`` without a canary).
        status: where the trial stands on this node (``""`` without a canary).
    """

    lambda_name: str
    policy: ReleasePolicy
    releases: list[Release]
    live: Figures | None = None
    status: str = ""

    def in_state(self, state: ReleaseState) -> list[Release]:
        """The releases in ``state``, oldest first."""
        return [r for r in self.releases if r.state is state]


@dataclass(slots=True)
class _Known:
    revision: int
    policy: ReleasePolicy
    releases: list[Release] = field(default_factory=list)

    def version(self, version: str) -> Release | None:
        return next((r for r in self.releases if r.version == version), None)


def _release(stored: StoredRelease) -> Release:
    figures = None if stored.figures is None else _figures_decoder.decode(stored.figures)
    return Release(
        stored.version,
        ReleaseState(stored.state),
        stored.started_ms,
        stored.decided_ms,
        stored.reason,
        figures,
    )


def _stored(release: Release) -> StoredRelease:
    figures = None if release.figures is None else msgspec.json.encode(release.figures)
    return StoredRelease(
        release.version,
        release.state.value,
        release.started_ms,
        release.decided_ms,
        release.reason,
        figures,
    )


def _checked(policy: ReleasePolicy) -> ReleasePolicy:
    """``policy``, checked against its constraints (a Struct built in Python is not).

    Raises:
        msgspec.ValidationError: a value breaks a rule (the API answers 400 naming it).
    """
    return msgspec.convert(msgspec.to_builtins(policy), ReleasePolicy)


@dataclass(slots=True, eq=False)
class Releases:
    """Every lambda's releases on one node: the pool's version router, and the decisions.

    Args:
        store: where releases and policies are kept.
        clock: times the trials and the decisions.
        metrics: the node's metrics (release states, canary shares, decisions).
        live_versions: the versions of a lambda that have live endpoints (the pool's); a
            canary with none is given up for a pending version. ``None``: never given up.
        tick: seconds between evaluations.
    """

    store: ReleasesPort
    clock: Clock
    metrics: Metrics | None = None
    _: KW_ONLY
    live_versions: Callable[[str], set[str]] | None = None
    tick: float = TICK
    _known: dict[str, _Known] = field(init=False, default_factory=dict)
    _splits: dict[str, VersionSplit] = field(init=False, default_factory=dict)
    _trials: dict[str, Trial] = field(init=False, default_factory=dict)
    _exported: dict[str, set[tuple[str, str]]] = field(init=False, default_factory=dict)

    # -- the pool's questions (every push) ------------------------------------------------------
    def split(self, lambda_name: str) -> VersionSplit:
        """The split of the lambda's pushes between its versions."""
        return self._splits.get(lambda_name, NO_SPLIT)

    def record(self, lambda_name: str, version: str, ok: bool, latency: float, events: int) -> None:
        """Count a push to an endpoint of ``version`` towards the lambda's trial, if any."""
        trial = self._trials.get(lambda_name)
        if trial is not None:
            trial.record(version, self.clock.now(), ok, latency, events)

    # -- what the node learns ---------------------------------------------------------------
    async def load(self) -> None:
        """Read every lambda's releases (at start)."""
        for name in await self.store.release_revisions():
            self._apply(await self.store.lambda_releases(name))

    async def refresh(self) -> None:
        """Read the lambdas whose releases changed through other nodes."""
        for name, revision in (await self.store.release_revisions()).items():
            known = self._known.get(name)
            if known is None or known.revision < revision:
                self._apply(await self.store.lambda_releases(name))

    async def seen(self, lambda_name: str, version: str) -> None:
        """An endpoint of ``version`` is about to be registered: a version the lambda has not
        had becomes a release, durably, before the endpoint can get a push. Unversioned
        endpoints (``""``) are outside releases."""
        if not version:
            return
        known = self._known.get(lambda_name)
        if known is not None and known.version(version) is not None:
            return
        now_ms = to_ms(self.clock.now())
        await self._change(lambda_name, lambda releases: first_seen(releases, version, now_ms))

    def _apply(self, snapshot: LambdaReleases) -> None:
        name = snapshot.lambda_name
        known = self._known.get(name)
        if known is not None and known.revision > snapshot.revision:
            return  # an older read than what this node already applied
        policy = (
            DEFAULT_POLICY if snapshot.policy is None else _policy_decoder.decode(snapshot.policy)
        )
        known = _Known(snapshot.revision, policy, [_release(r) for r in snapshot.releases])
        self._known[name] = known
        canary = next((r for r in known.releases if r.state is ReleaseState.CANARY), None)
        excluded = frozenset(r.version for r in known.releases if r.state in EXCLUDED)
        if canary is None:
            self._trials.pop(name, None)
            self._splits[name] = VersionSplit(None, 0.0, excluded) if excluded else NO_SPLIT
        else:
            trial = self._trials.get(name)
            if trial is None or trial.version != canary.version:
                self._trials[name] = Trial(canary.version, self.clock.now())
            self._splits[name] = VersionSplit(canary.version, policy.share, excluded)
        self._export(name, known, policy.share if canary is not None else 0.0)

    def _export(self, name: str, known: _Known, share: float) -> None:
        if self.metrics is None:
            return
        live = {(r.version, r.state.value) for r in known.releases if r.state in EXPORTED}
        for version, state in self._exported.get(name, set()) - live:
            self.metrics.release_state.remove(name, version, state)
        for version, state in live:
            self.metrics.release_state.labels(name, version, state).set(1)
        self._exported[name] = live
        self.metrics.canary_share.labels(name).set(share)

    async def _change(self, lambda_name: str, transition: Transition) -> bool:
        """Run ``transition`` on the lambda's releases in the store; returns whether it
        wrote anything."""
        wrote = False

        def change(stored: list[StoredRelease]) -> list[StoredRelease]:
            nonlocal wrote
            written = transition([_release(r) for r in stored])
            wrote = bool(written)
            return [_stored(r) for r in written]

        self._apply(await self.store.change_releases(lambda_name, change))
        return wrote

    # -- decisions ----------------------------------------------------------------------------
    async def evaluate(self) -> None:
        """Judge every trial on this node's figures; write the decisions that are due."""
        now = self.clock.now()
        for name, trial in list(self._trials.items()):
            await self._evaluate(name, trial, now)

    async def _evaluate(self, name: str, trial: Trial, now: float) -> None:
        known = self._known[name]
        version, now_ms = trial.version, to_ms(now)
        if self._abandoned(name, known, version):
            await self._decide(
                name, lambda rs: abandon(rs, version, now_ms), "abandoned", "no live endpoint"
            )
            return
        figures = trial.figures(now, known.policy.window_seconds)
        verdict = judge(known.policy, figures, now - trial.since)
        trial.status = verdict.reason
        if verdict.action is not Action.WAIT:
            await self._decide(
                name,
                lambda rs: decide(rs, version, verdict, now_ms, figures),
                verdict.action.value,
                verdict.reason,
            )

    def _abandoned(self, name: str, known: _Known, version: str) -> bool:
        """Whether a canary has no live endpoint left while a version waits for its turn."""
        if self.live_versions is None:
            return False
        waiting = any(r.state is ReleaseState.PENDING for r in known.releases)
        return waiting and version not in self.live_versions(name)

    async def _decide(self, name: str, transition: Transition, decision: str, reason: str) -> None:
        """Write an automatic decision (if it still applies: compare-and-set)."""
        try:
            won = await self._change(name, transition)
        except ConveyorError as error:
            log.warning("deciding the release of %s failed: %s", name, error)
            return
        if won:
            log.info("release of %s: %s (%s)", name, decision, reason)
            if self.metrics is not None:
                self.metrics.release_decisions.labels(name, decision).inc()

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate every ``tick`` seconds of the clock until ``stop`` is set."""
        while not stop.is_set():
            await self.evaluate()
            await sleep_unless_stopped(self.clock, self.tick, stop)

    # -- operators ----------------------------------------------------------------------------
    def _live(self, lambda_name: str) -> Figures | None:
        trial = self._trials.get(lambda_name)
        known = self._known.get(lambda_name)
        if trial is None or known is None:
            return None
        return trial.figures(self.clock.now(), known.policy.window_seconds)

    async def promote(self, lambda_name: str, version: str) -> LambdaView:
        """Make ``version`` stable now, whatever its state.

        Raises:
            NotFound: the lambda has no such release.
        """
        now_ms, live = to_ms(self.clock.now()), self._live(lambda_name)
        await self._change(lambda_name, lambda rs: promote(rs, lambda_name, version, now_ms, live))
        return self.view(lambda_name)

    async def roll_back(self, lambda_name: str, version: str) -> LambdaView:
        """Roll ``version`` back now (the stable one: back to the version it superseded).

        Raises:
            NotFound: the lambda has no such release.
            Conflict: ``version`` is the lambda's first stable version.
        """
        now_ms, live = to_ms(self.clock.now()), self._live(lambda_name)
        await self._change(
            lambda_name, lambda rs: roll_back(rs, lambda_name, version, now_ms, live)
        )
        return self.view(lambda_name)

    async def set_policy(self, lambda_name: str, policy: ReleasePolicy) -> ReleasePolicy:
        """Set the lambda's release policy; it applies at once on this node, and on the others
        at their next sync.

        Raises:
            msgspec.ValidationError: a value breaks a rule.
        """
        encoded = msgspec.json.encode(_checked(policy))
        self._apply(await self.store.set_release_policy(lambda_name, encoded))
        return self._known[lambda_name].policy

    async def policy(self, lambda_name: str) -> ReleasePolicy:
        """The lambda's release policy as stored now (the defaults when never set)."""
        stored = (await self.store.lambda_releases(lambda_name)).policy
        return DEFAULT_POLICY if stored is None else _policy_decoder.decode(stored)

    async def describe(self, lambda_name: str) -> LambdaView | None:
        """The lambda's releases as stored now, with this node's live trial figures;
        ``None`` when it has neither releases nor a policy."""
        snapshot = await self.store.lambda_releases(lambda_name)
        if snapshot.revision == 0 and not snapshot.releases:
            return None
        self._apply(snapshot)
        return self.view(lambda_name)

    def view(self, lambda_name: str) -> LambdaView:
        """The lambda's releases as this node knows them."""
        known = self._known.get(lambda_name)
        if known is None:
            return LambdaView(lambda_name, DEFAULT_POLICY, [])
        trial = self._trials.get(lambda_name)
        return LambdaView(
            lambda_name,
            known.policy,
            list(known.releases),
            self._live(lambda_name),
            trial.status if trial is not None else "",
        )
