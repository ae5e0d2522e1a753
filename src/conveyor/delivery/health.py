"""Host health: the policy and the per-endpoint record that passive outlier detection and
active probes keep, as Envoy does.

Passive detection reads the outcome of every push. An endpoint is ejected when either
``consecutive_failures`` pushes in a row failed (timeouts, HTTP errors, broken connections)
or, within one ``failure_window`` of at least ``min_requests`` pushes, at least
``failure_rate`` of them failed. An ejection lasts ``ejection_time`` times the number of
times the endpoint was ejected, at most ``max_ejection_time``; the endpoint comes back by
itself when the time is up. At most ``max_ejected_share`` of a lambda's endpoints are ejected
at once.

Active probes GET each endpoint's health URL every ``probe_interval`` seconds (``0`` turns
them off). ``unhealthy_threshold`` failed probes in a row (no answer within
``probe_timeout``, or a non-2xx status, which a draining worker answers) mark the endpoint
unhealthy; ``healthy_threshold`` good ones in a row mark it healthy again.

Panic is decided per locality level (``delivery/locality.py``), as Envoy decides it per
priority level: while the levels together have enough healthy endpoints (their
overprovisioned health adds up to 100%), health is never ignored and pushes spill over to
the healthy ones; below that, a level where fewer than ``panic_threshold`` of the endpoints
are healthy sends its share to all of them: a broken detector (or a broken health check)
must not take a whole lambda down. An endpoint set aside after a refused connection counts
as unhealthy in its level and is not pushed to even in panic (the push could not reach it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from conveyor.clock import Clock


class HealthPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a node judges the health of the endpoints it pushes to (see the module doc).

    Attributes:
        consecutive_failures: failed pushes in a row that eject an endpoint.
        failure_rate: the share of failed pushes within a window that ejects it.
        min_requests: pushes a window needs before its failure rate counts.
        failure_window: seconds of one failure-rate window.
        ejection_time: seconds of a first ejection; each repeat lasts this much longer.
        max_ejection_time: the longest ejection, in seconds.
        max_ejected_share: the most of a lambda's endpoints ejected at once.
        panic_threshold: a locality level below this share of healthy endpoints ignores
            health, unless the levels together have enough healthy endpoints.
        probe_interval: seconds between active health probes of an endpoint (0: none).
        probe_timeout: seconds a probe waits for its answer.
        unhealthy_threshold: failed probes in a row that mark an endpoint unhealthy.
        healthy_threshold: good probes in a row that mark it healthy again.
    """

    consecutive_failures: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5
    failure_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.85
    min_requests: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20
    failure_window: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    ejection_time: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 30.0
    max_ejection_time: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 300.0
    max_ejected_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    panic_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    probe_interval: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 5.0
    probe_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 1.0
    unhealthy_threshold: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 2
    healthy_threshold: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


@dataclass(slots=True)
class EndpointState:
    """One registered endpoint, with its live figures and health.

    Attributes:
        locality: where it runs, ``cloud/region/zone`` (``""``: unknown).
        version: the version of the lambda it runs (``""``: unversioned).
        static: added by hand; it never expires.
        health_url: where probes GET its health (``""``: not probed).
        down_until: set aside until then after its connection failed.
        ejected_until: outlier detection keeps pushes away until then.
        probe_healthy: what the active probes last concluded.
    """

    lambda_name: str
    id: str
    url: str
    expires_at: float
    concurrency: int
    locality: str = ""
    version: str = ""
    static: bool = False
    health_url: str = ""
    in_flight: int = 0
    down_until: float = 0.0
    pushes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    window_start: float = 0.0
    window_pushes: int = 0
    window_failures: int = 0
    probe_healthy: bool = True
    probe_streak: int = 0  # > 0: good probes in a row; < 0: failed probes in a row
    last_probe_error: str = ""

    def registered(self, now: float) -> bool:
        """Registered and not expired: it counts in its level, healthy or not."""
        return self.static or self.expires_at > now

    def usable(self, now: float) -> bool:
        """Not set aside after a refused connection: a push can reach it, even in panic."""
        return self.down_until <= now

    def healthy(self, now: float) -> bool:
        """Usable, not ejected, and passing its probes."""
        return self.down_until <= now and self.ejected_until <= now and self.probe_healthy


class OutlierDetector:
    """Passive outlier detection over a lambda's endpoints (see the module doc).

    Args:
        policy: the thresholds.
        clock: the source of time for windows and ejections.
    """

    def __init__(self, policy: HealthPolicy, clock: Clock) -> None:
        self.policy = policy
        self._clock = clock

    def outcome(self, endpoint: EndpointState, ok: bool, peers: list[EndpointState]) -> bool:
        """Record a push's outcome; returns whether the endpoint was ejected by it.

        Args:
            endpoint: the endpoint pushed to.
            ok: whether the push got an answer (the handler's own failures are answers).
            peers: the lambda's live endpoints, for the cap on the share ejected.
        """
        policy, now = self.policy, self._clock.now()
        if now - endpoint.window_start >= policy.failure_window:
            endpoint.window_start, endpoint.window_pushes, endpoint.window_failures = now, 0, 0
        endpoint.window_pushes += 1
        if ok:
            endpoint.consecutive_failures = 0
            return False
        endpoint.window_failures += 1
        endpoint.consecutive_failures += 1
        by_streak = endpoint.consecutive_failures >= policy.consecutive_failures
        by_rate = (
            endpoint.window_pushes >= policy.min_requests
            and endpoint.window_failures >= policy.failure_rate * endpoint.window_pushes
        )
        return (by_streak or by_rate) and self._eject(endpoint, peers, now)

    def _eject(self, endpoint: EndpointState, peers: list[EndpointState], now: float) -> bool:
        if endpoint.ejected_until > now:
            return False
        ejected = sum(1 for e in peers if e.ejected_until > now and e is not endpoint)
        if len(peers) > 1 and ejected + 1 > self.policy.max_ejected_share * len(peers):
            return False  # the share ejected at once is capped
        endpoint.ejections += 1
        endpoint.consecutive_failures = 0
        endpoint.window_start, endpoint.window_pushes, endpoint.window_failures = now, 0, 0
        endpoint.ejected_until = now + min(
            self.policy.max_ejection_time, self.policy.ejection_time * endpoint.ejections
        )
        return True

    def probed(self, endpoint: EndpointState, ok: bool, error: str = "") -> bool:
        """Record an active probe's result; returns whether the endpoint's health changed."""
        if ok:
            endpoint.probe_streak = max(endpoint.probe_streak, 0) + 1
            endpoint.last_probe_error = ""
            if not endpoint.probe_healthy and (
                endpoint.probe_streak >= self.policy.healthy_threshold
            ):
                endpoint.probe_healthy = True
                return True
            return False
        endpoint.probe_streak = min(endpoint.probe_streak, 0) - 1
        endpoint.last_probe_error = error
        if endpoint.probe_healthy and -endpoint.probe_streak >= self.policy.unhealthy_threshold:
            endpoint.probe_healthy = False
            return True
        return False
