"""The endpoint pool: each lambda's live push endpoints, and the choice among them.

Workers register an endpoint with a TTL and renew it by heartbeat; an endpoint not renewed in
time is no longer chosen. Choice is least outstanding requests among two picked at random
(power of two choices), which spreads load without herding on one fast host. An endpoint whose
connection failed is set aside for a short cool-down (passive health).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.clock import Clock

CONNECT_FAILURE_COOLDOWN = 1.0


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
        if len(live) == 1:
            return live[0]
        a, b = self._rng.sample(live, 2)
        return a if a.in_flight <= b.in_flight else b

    def next_change(self, lambda_name: str) -> float | None:
        """The earliest time an endpoint of the lambda comes back from a cool-down."""
        now = self._clock.now()
        times = [
            e.down_until
            for e in self._by_lambda.get(lambda_name, {}).values()
            if e.expires_at > now and e.down_until > now
        ]
        return min(times) if times else None

    def connect_failed(self, endpoint: EndpointState) -> None:
        """Set an endpoint aside after its connection failed."""
        endpoint.failures += 1
        endpoint.down_until = self._clock.now() + CONNECT_FAILURE_COOLDOWN

    def _changed(self, lambda_name: str) -> None:
        if self._on_change is not None:
            self._on_change(lambda_name)
