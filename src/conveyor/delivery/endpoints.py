"""The endpoint pool: each lambda's live push endpoints, and the choice among them.

Workers register an endpoint with a TTL and renew it by heartbeat; an endpoint not renewed in
time is no longer chosen. Choice is least outstanding requests among two picked at random
(power of two choices), which spreads load without herding on one fast host. An endpoint whose
connection failed is set aside for a short cool-down.

Passive outlier detection, as Envoy does it: ``CONSECUTIVE_FAILURES`` failed pushes in a row
(timeouts, HTTP errors, broken connections) eject an endpoint for ``BASE_EJECTION`` seconds
times the number of times it was ejected (at most ``MAX_EJECTION``); it comes back by itself
when the time is up. At most ``MAX_EJECTED_SHARE`` of a lambda's endpoints are ejected at once,
and when fewer than ``PANIC_THRESHOLD`` of them are healthy, ejection is ignored and every live
endpoint is used (a broken detector must not take a whole lambda down).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.clock import Clock

CONNECT_FAILURE_COOLDOWN = 1.0
CONSECUTIVE_FAILURES = 5
BASE_EJECTION = 30.0  # seconds
MAX_EJECTION = 300.0  # seconds
MAX_EJECTED_SHARE = 0.5
PANIC_THRESHOLD = 0.5


@dataclass(slots=True)
class EndpointState:
    """One registered endpoint and its live figures."""

    lambda_name: str
    id: str
    url: str
    expires_at: float
    concurrency: int
    in_flight: int = 0
    down_until: float = 0.0
    pushes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0


class EndpointPool:
    """Every lambda's endpoints.

    Args:
        clock: the source of time for expiry and cool-downs.
        on_change: called with a lambda's name when its endpoints change.
    """

    def __init__(self, clock: Clock, on_change: Callable[[str], None] | None = None) -> None:
        self._clock = clock
        self._by_lambda: dict[str, dict[str, EndpointState]] = {}
        self._on_change = on_change
        self._rng = random.Random()

    def set_listener(self, on_change: Callable[[str], None]) -> None:
        """Set the callback told of a lambda's endpoint changes."""
        self._on_change = on_change

    def register(
        self, lambda_name: str, endpoint_id: str, url: str, ttl: float, concurrency: int
    ) -> EndpointState:
        """Register or renew an endpoint; returns its state."""
        endpoints = self._by_lambda.setdefault(lambda_name, {})
        expires = self._clock.now() + ttl
        state = endpoints.get(endpoint_id)
        if state is None or state.url != url:
            state = EndpointState(lambda_name, endpoint_id, url, expires, concurrency)
            endpoints[endpoint_id] = state
            self._changed(lambda_name)
        else:
            revived = state.expires_at <= self._clock.now()
            state.expires_at = expires
            state.concurrency = concurrency
            if revived:
                self._changed(lambda_name)
        return state

    def restore(
        self, lambda_name: str, endpoint_id: str, url: str, expires_at: float, concurrency: int
    ) -> None:
        """Load an endpoint registered before a restart (it expires as registered)."""
        self._by_lambda.setdefault(lambda_name, {})[endpoint_id] = EndpointState(
            lambda_name, endpoint_id, url, expires_at, concurrency
        )

    def sync(self, known: list[tuple[str, str, str, float, int]]) -> None:
        """Match the endpoints registered through any node: (lambda, id, url, expires, n).

        Endpoints renewed elsewhere get their new expiry (their live figures are kept);
        endpoints gone from the store are dropped.
        """
        seen: set[tuple[str, str]] = set()
        for lambda_name, endpoint_id, url, expires_at, concurrency in known:
            seen.add((lambda_name, endpoint_id))
            endpoints = self._by_lambda.setdefault(lambda_name, {})
            state = endpoints.get(endpoint_id)
            if state is None or state.url != url:
                endpoints[endpoint_id] = EndpointState(
                    lambda_name, endpoint_id, url, expires_at, concurrency
                )
                self._changed(lambda_name)
            elif expires_at > state.expires_at:
                state.expires_at = expires_at
        for lambda_name, endpoints in self._by_lambda.items():
            for endpoint_id in [e for e in endpoints if (lambda_name, e) not in seen]:
                del endpoints[endpoint_id]

    def deregister(self, lambda_name: str, endpoint_id: str) -> bool:
        """Remove an endpoint; returns whether it was there."""
        removed = self._by_lambda.get(lambda_name, {}).pop(endpoint_id, None) is not None
        if removed:
            self._changed(lambda_name)
        return removed

    def endpoints(self, lambda_name: str) -> list[EndpointState]:
        """The endpoints of a lambda that have not expired."""
        now = self._clock.now()
        return [e for e in self._by_lambda.get(lambda_name, {}).values() if e.expires_at > now]

    def lambdas(self) -> list[str]:
        """Names of lambdas with at least one endpoint registered (expired or not)."""
        return sorted(self._by_lambda)

    def choose(self, lambda_name: str) -> EndpointState | None:
        """Pick an endpoint for the next push, or ``None`` when none is usable."""
        now = self._clock.now()
        live = [
            e
            for e in self._by_lambda.get(lambda_name, {}).values()
            if e.expires_at > now and e.down_until <= now
        ]
        if not live:
            return None
        healthy = [e for e in live if e.ejected_until <= now]
        if len(healthy) >= PANIC_THRESHOLD * len(live):
            live = healthy  # (below the threshold: panic, every live endpoint is used)
        if len(live) == 1:
            return live[0]
        a, b = self._rng.sample(live, 2)
        return a if a.in_flight <= b.in_flight else b

    def next_change(self, lambda_name: str) -> float | None:
        """The earliest time an endpoint of the lambda comes back from a cool-down."""
        now = self._clock.now()
        times = [
            t
            for e in self._by_lambda.get(lambda_name, {}).values()
            if e.expires_at > now
            for t in (e.down_until, e.ejected_until)
            if t > now
        ]
        return min(times) if times else None

    def report(self, endpoint: EndpointState, ok: bool) -> None:
        """Record a push's outcome: a failure (no answer, HTTP error, broken connection)
        counts towards ejection, a success resets the count."""
        if ok:
            endpoint.consecutive_failures = 0
            return
        endpoint.consecutive_failures += 1
        if endpoint.consecutive_failures >= CONSECUTIVE_FAILURES:
            self._eject(endpoint)

    def _eject(self, endpoint: EndpointState) -> None:
        now = self._clock.now()
        if endpoint.ejected_until > now:
            return
        live = self.endpoints(endpoint.lambda_name)
        ejected = sum(1 for e in live if e.ejected_until > now)
        if (ejected + 1) > MAX_EJECTED_SHARE * len(live) and len(live) > 1:
            return  # the share ejected at once is capped
        endpoint.ejections += 1
        endpoint.consecutive_failures = 0
        endpoint.ejected_until = now + min(MAX_EJECTION, BASE_EJECTION * endpoint.ejections)
        self._changed(endpoint.lambda_name)

    def connect_failed(self, endpoint: EndpointState) -> None:
        """Set an endpoint aside after its connection failed."""
        endpoint.failures += 1
        endpoint.down_until = self._clock.now() + CONNECT_FAILURE_COOLDOWN

    def _changed(self, lambda_name: str) -> None:
        if self._on_change is not None:
            self._on_change(lambda_name)
