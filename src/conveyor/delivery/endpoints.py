"""The endpoint pool: each lambda's live push endpoints, and the choice among them.

Workers register an endpoint with a TTL, a locality label and the version they run, and renew
it by heartbeat; an endpoint not renewed in time is no longer chosen. Static endpoints are
added by URL and never expire. The choice for each push goes, in order:

1. **Version** (releases): a version under trial (a canary) gets its share of pushes, the
   others go to the stable endpoints; rolled-back versions get none (``VersionRouter``).
2. **Locality**: the subscription's preferred places, with spill-over by health
   (``delivery/locality.py``).
3. **Health**: ejected, probe-failing or refusing endpoints are skipped, unless too few are
   healthy over all the levels (panic, per level as in Envoy; ``delivery/locality.py``).
4. **Balance**: least outstanding requests (relative to each worker's concurrency) between
   two endpoints picked at random: the power of two choices, which spreads load without
   herding on one fast host.

An endpoint whose connection failed is set aside for a short cool-down.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from conveyor.clock import Clock
from conveyor.delivery.health import EndpointState, HealthPolicy, OutlierDetector
from conveyor.delivery.locality import OVERPROVISIONING, levels, pick_level, plan_levels
from conveyor.store.base import Endpoint

__all__ = ["EndpointPool", "EndpointState", "VersionRouter", "VersionSplit"]

CONNECT_FAILURE_COOLDOWN = 1.0


@dataclass(frozen=True, slots=True)
class VersionSplit:
    """How a lambda's pushes are split between its versions.

    Attributes:
        canary: the version under trial, or ``None``.
        share: the share of pushes the canary gets (0 to 1).
        excluded: versions that get no pushes at all (rolled back).
    """

    canary: str | None = None
    share: float = 0.0
    excluded: frozenset[str] = field(default_factory=frozenset)


NO_SPLIT = VersionSplit()


class VersionRouter(Protocol):
    """What the pool asks about releases, and tells them about every push."""

    def split(self, lambda_name: str) -> VersionSplit:
        """The current split of the lambda's pushes between versions."""
        ...

    def record(self, lambda_name: str, version: str, ok: bool, latency: float, events: int) -> None:
        """A push to an endpoint of ``version`` ended: ``ok`` when every event succeeded."""
        ...


class EndpointPool:
    """Every lambda's endpoints.

    Args:
        clock: the source of time for expiry and cool-downs.
        on_change: called with a lambda's name when its endpoints change.
        health: the outlier-detection and probe thresholds.
        preference: the localities preferred when a subscription states none (the node's own).
    """

    def __init__(
        self,
        clock: Clock,
        on_change: Callable[[str], None] | None = None,
        *,
        health: HealthPolicy | None = None,
        preference: Sequence[str] = (),
    ) -> None:
        self._clock = clock
        self._by_lambda: dict[str, dict[str, EndpointState]] = {}
        self._on_change = on_change
        self._rng = random.Random()
        self.detector = OutlierDetector(health or HealthPolicy(), clock)
        self.default_preference = list(preference)
        self._router: VersionRouter | None = None

    def set_listener(self, on_change: Callable[[str], None]) -> None:
        """Set the callback told of a lambda's endpoint changes."""
        self._on_change = on_change

    def set_router(self, router: VersionRouter) -> None:
        """Route pushes between versions of a lambda by ``router`` (releases)."""
        self._router = router

    # -- membership ---------------------------------------------------------------------------
    def register(
        self,
        lambda_name: str,
        endpoint_id: str,
        url: str,
        ttl: float,
        concurrency: int,
        *,
        locality: str = "",
        version: str = "",
        static: bool = False,
        health_url: str = "",
    ) -> EndpointState:
        """Register or renew an endpoint; returns its state."""
        expires = self._clock.now() + ttl
        return self._upsert(
            Endpoint(
                lambda_name, endpoint_id, url, 0, concurrency, locality, version, static, health_url
            ),
            expires,
            renew=True,
        )

    def restore(self, endpoint: Endpoint) -> None:
        """Load an endpoint registered before a restart (it expires as registered)."""
        self._upsert(endpoint, endpoint.expires_ms / 1000, renew=False)

    def sync(self, known: list[Endpoint]) -> None:
        """Match the endpoints registered through any node.

        Endpoints renewed elsewhere get their new expiry (their live figures are kept);
        endpoints gone from the store are dropped.
        """
        seen: set[tuple[str, str]] = set()
        for endpoint in known:
            seen.add((endpoint.lambda_name, endpoint.id))
            self._upsert(endpoint, endpoint.expires_ms / 1000, renew=False)
        for lambda_name, endpoints in self._by_lambda.items():
            gone = [e for e in endpoints if (lambda_name, e) not in seen]
            for endpoint_id in gone:
                del endpoints[endpoint_id]
            if gone:
                self._changed(lambda_name)

    def _upsert(self, spec: Endpoint, expires: float, *, renew: bool) -> EndpointState:
        endpoints = self._by_lambda.setdefault(spec.lambda_name, {})
        state = endpoints.get(spec.id)
        if state is None or (state.url, state.locality, state.version, state.static) != (
            spec.url,
            spec.locality,
            spec.version,
            spec.static,
        ):
            state = EndpointState(
                spec.lambda_name,
                spec.id,
                spec.url,
                expires,
                spec.concurrency,
                locality=spec.locality,
                version=spec.version,
                static=spec.static,
                health_url=spec.health_url,
            )
            endpoints[spec.id] = state
            self._changed(spec.lambda_name)
            return state
        revived = not state.static and state.expires_at <= self._clock.now() < expires
        if renew or expires > state.expires_at:
            state.expires_at = expires
        state.concurrency = spec.concurrency
        state.health_url = spec.health_url
        if revived:
            self._changed(spec.lambda_name)
        return state

    def deregister(self, lambda_name: str, endpoint_id: str) -> bool:
        """Remove an endpoint; returns whether it was there."""
        removed = self._by_lambda.get(lambda_name, {}).pop(endpoint_id, None) is not None
        if removed:
            self._changed(lambda_name)
        return removed

    def endpoints(self, lambda_name: str) -> list[EndpointState]:
        """The endpoints of a lambda that have not expired."""
        now = self._clock.now()
        return [
            e
            for e in self._by_lambda.get(lambda_name, {}).values()
            if e.static or e.expires_at > now
        ]

    def all_endpoints(self) -> list[EndpointState]:
        """Every lambda's endpoints that have not expired."""
        return [e for name in self._by_lambda for e in self.endpoints(name)]

    def lambdas(self) -> list[str]:
        """Names of lambdas with at least one endpoint registered (expired or not)."""
        return sorted(self._by_lambda)

    # -- choice -------------------------------------------------------------------------------
    def choose(
        self, lambda_name: str, preference: Sequence[str] | None = None
    ) -> EndpointState | None:
        """Pick an endpoint for the next push, or ``None`` when none is usable.

        Args:
            lambda_name: the lambda pushed to.
            preference: the subscription's preferred localities, most preferred first
                (``None`` or empty: the node's own).
        """
        now = self._clock.now()
        members = [e for e in self._by_lambda.get(lambda_name, {}).values() if e.registered(now)]
        if members and self._router is not None:
            members = self._by_version(lambda_name, members, now)
        if not members:
            return None
        candidates = self._candidates(members, preference or self.default_preference, now)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        a, b = self._rng.sample(candidates, 2)
        return a if a.in_flight * b.concurrency <= b.in_flight * a.concurrency else b

    def _candidates(
        self, members: list[EndpointState], places: Sequence[str], now: float
    ) -> list[EndpointState]:
        """The endpoints of the level drawn for this push: its healthy ones, or (in panic)
        every one a push can reach.

        Invariant: health is judged over every registered endpoint, those set aside after a
        refused connection included (as unhealthy), so a hang, a black hole, a stopped
        process and a refused connection all move load the same way.
        """
        threshold = self.detector.policy.panic_threshold
        by_level = levels(members, places) if places else [members]
        healthy = [[e for e in level if e.healthy(now)] for level in by_level]
        first, ok = len(by_level[0]), len(healthy[0])
        if ok * OVERPROVISIONING >= first or (len(by_level) == 1 and ok >= threshold * first):
            # The common cases: the first level takes every push (it is healthy enough), or
            # there is one level and it is not in panic.
            return healthy[0]
        plan = plan_levels(
            [len(ok) for ok in healthy], [len(level) for level in by_level], threshold
        )
        options = [
            [e for e in level if e.usable(now)] if panic else ok
            for level, ok, panic in zip(by_level, healthy, plan.panic, strict=True)
        ]
        loads = [load if option else 0.0 for load, option in zip(plan.loads, options, strict=True)]
        spent = sum(loads)
        if spent <= 0.0:
            return []
        return options[pick_level([load / spent for load in loads], self._rng)]

    def _by_version(
        self, lambda_name: str, members: list[EndpointState], now: float
    ) -> list[EndpointState]:
        assert self._router is not None
        split = self._router.split(lambda_name)
        if split.excluded:
            members = [e for e in members if e.version not in split.excluded]
        if split.canary is None:
            return members
        canary = [e for e in members if e.version == split.canary]
        stable = [e for e in members if e.version != split.canary]
        canary_up = any(e.usable(now) for e in canary)
        stable_up = any(e.usable(now) for e in stable)
        if not (canary_up and stable_up):
            # Only one side can be reached: it takes everything.
            return canary if canary_up else stable or canary
        return canary if self._rng.random() < split.share else stable

    def is_canary(self, endpoint: EndpointState) -> bool:
        """Whether the endpoint runs a version under trial."""
        if self._router is None or not endpoint.version:
            return False
        return self._router.split(endpoint.lambda_name).canary == endpoint.version

    def next_change(self, lambda_name: str) -> float | None:
        """The earliest time an endpoint of the lambda comes back from a cool-down."""
        now = self._clock.now()
        times = [
            t
            for e in self._by_lambda.get(lambda_name, {}).values()
            if e.static or e.expires_at > now
            for t in (e.down_until, e.ejected_until)
            if t > now
        ]
        return min(times) if times else None

    # -- outcomes -----------------------------------------------------------------------------
    def report(
        self, endpoint: EndpointState, ok: bool, latency: float = 0.0, events: int = 1
    ) -> None:
        """Record a push's outcome.

        Args:
            endpoint: the endpoint pushed to.
            ok: whether the push got an answer: a failure (no answer, HTTP error, broken
                connection) counts towards ejection, a success resets the count.
            latency: seconds from the push to its answer.
            events: events in the push.
        """
        if self.detector.outcome(endpoint, ok, self.endpoints(endpoint.lambda_name)):
            self._changed(endpoint.lambda_name)

    def report_release(
        self, endpoint: EndpointState, ok: bool, latency: float, events: int
    ) -> None:
        """Tell releases how a push to the endpoint's version went (``ok``: every event
        succeeded)."""
        if self._router is not None:
            self._router.record(endpoint.lambda_name, endpoint.version, ok, latency, events)

    def probed(self, endpoint: EndpointState, ok: bool, error: str = "") -> None:
        """Record an active health probe's result."""
        if self.detector.probed(endpoint, ok, error):
            self._changed(endpoint.lambda_name)

    def connect_failed(self, endpoint: EndpointState) -> None:
        """Set an endpoint aside after its connection failed."""
        endpoint.failures += 1
        endpoint.down_until = self._clock.now() + CONNECT_FAILURE_COOLDOWN

    def _changed(self, lambda_name: str) -> None:
        if self._on_change is not None:
            self._on_change(lambda_name)
