"""Pushing: batches out to endpoints under the concurrency limit, and what they answered.

A :class:`Sender` starts a subscription's pushes while there is capacity (the adaptive
limiter's limit, at most ``max_concurrency`` events in flight), an endpoint to take them (the
pool's choice) and rate tokens, then reports each answer to the pool and the limiter and hands
the results to the settling part.

Invariants:

* ``in_flight`` counts the events pushed and not answered; a push starts only with room for
  its whole batch under the limit;
* every event taken into a push is settled, or given back to the front of the ready queue, in
  order (a throttle, or a lease that lapsed before the push was sent): never lost;
* nothing is sent on a lease that may have lapsed, even by a push started before a pause;
* whether a push went to a canary is decided when it starts (a rollback during the push does
  not make the canary's failures the stable version's).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, InitVar, dataclass, field

from prometheus_client import Counter, Gauge, Histogram

from conveyor.clock import Clock
from conveyor.delivery.endpoints import EndpointPool, EndpointState
from conveyor.delivery.push import Pusher, PushOutcome
from conveyor.flow.batching import Batcher
from conveyor.flow.gate import Gate
from conveyor.flow.limiter import AdaptiveLimiter
from conveyor.flow.settling import Settler
from conveyor.metrics import Metrics
from conveyor.model import Event, Outcome, Subscription


@dataclass(slots=True, eq=False)
class Sender:
    """Starts a subscription's pushes and takes their answers.

    Args:
        sub: the subscription (replaced by :meth:`update`).
        pool: the endpoint pool.
        pusher: the push transport.
        clock: the source of time.
        metrics: the node's metrics.
        gate: the rate bucket, and the pause a throttle asks for.
        batcher: takes each push's events.
        settler: settles the results.
        lease_valid: whether this node's leases may still be trusted.
        wake: called when a push is answered (there is work again).
    """

    sub: Subscription
    _: KW_ONLY
    pool: EndpointPool
    pusher: Pusher
    clock: Clock
    metrics: InitVar[Metrics]
    gate: Gate
    batcher: Batcher
    settler: Settler
    lease_valid: Callable[[], bool]
    wake: Callable[[], None]
    in_flight: int = field(init=False, default=0)
    # pushes under way, by an id of their own
    batches: dict[int, list[Event]] = field(init=False, default_factory=dict)
    _batch_ids: Iterator[int] = field(init=False, default_factory=itertools.count)
    _ready: deque[tuple[Event, int]] = field(init=False)
    limiter: AdaptiveLimiter = field(init=False)
    _m_push: Histogram = field(init=False)
    _m_pushes: Counter = field(init=False)
    _m_throttles: Counter = field(init=False)
    _m_lateness: Histogram = field(init=False)
    _m_limit: Gauge = field(init=False)

    def __post_init__(self, metrics: Metrics) -> None:
        sub = self.sub
        self._ready = self.batcher.ready
        self.limiter = AdaptiveLimiter(
            floor=sub.min_concurrency, cap=sub.max_concurrency, adaptive=sub.adaptive
        )
        name = sub.name
        self._m_push = metrics.push_seconds.labels(name)
        self._m_pushes = metrics.pushes.labels(name)
        self._m_throttles = metrics.throttles.labels(name)
        self._m_lateness = metrics.lateness.labels(name)
        self._m_limit = metrics.concurrency_limit.labels(name)
        self._m_limit.set(self.limiter.limit)

    def update(self, sub: Subscription) -> None:
        """Apply a subscription's new settings (its concurrency bounds)."""
        self.sub = sub
        self.limiter.configure(
            floor=sub.min_concurrency, cap=sub.max_concurrency, adaptive=sub.adaptive
        )
        self._m_limit.set(self.limiter.limit)

    def start(self, tg: asyncio.TaskGroup, now: float, now_ms: int) -> None:
        """Start as many pushes as capacity, endpoints, tokens and ready events allow."""
        capacity = min(self.limiter.limit, self.sub.max_concurrency) - self.in_flight
        batcher = self.batcher
        if capacity > 0 and batcher.lingering(now):
            return
        bucket = self.gate.bucket
        while capacity > 0:
            endpoint = self.pool.choose(self.sub.lambda_name, self.sub.locality)
            if endpoint is None:
                return
            want = min(self.sub.max_batch, capacity)
            if bucket is not None:
                want = bucket.take(want, now)
                if want == 0:
                    return
            batch, attempts = batcher.take(want, now_ms)
            if bucket is not None and len(batch) < want:
                bucket.refund(want - len(batch), now)
            if not batch:
                return
            batcher.cap(batch, attempts)
            capacity -= len(batch)
            self.in_flight += len(batch)
            endpoint.in_flight += len(batch)
            # Whether it goes to a canary is read now: a rollback during the push must not
            # turn the canary's failures into the stable version's.
            canary = self.pool.is_canary(endpoint)
            tg.create_task(self._push(endpoint, batch, attempts, canary))

    def running(self, partition: int, offset: int) -> bool:
        """Whether an event is in a push under way."""
        for batch in self.batches.values():
            for event in batch:
                if event.partition == partition and event.offset == offset:
                    return True
        return False

    def _give_back(self, batch: list[Event], attempts: list[int]) -> None:
        self._ready.extendleft(reversed(list(zip(batch, attempts, strict=True))))

    async def _push(
        self, endpoint: EndpointState, batch: list[Event], attempts: list[int], canary: bool
    ) -> None:
        if not self.lease_valid():
            # The task was created before the process paused (GC, SIGSTOP) and runs after: the
            # lease may be another node's now, so nothing is sent; the events wait.
            endpoint.in_flight -= len(batch)
            self.in_flight -= len(batch)
            self._give_back(batch, attempts)
            self.wake()
            return
        batch_id = next(self._batch_ids)
        self.batches[batch_id] = batch
        started = self.clock.now()
        in_flight = self.in_flight
        self._observe_lateness(batch, attempts, started)
        try:
            outcome = await self.pusher.push(
                endpoint, self.sub.name, batch, attempts, self.sub.push_timeout
            )
        finally:
            del self.batches[batch_id]
            endpoint.in_flight -= len(batch)
            self.in_flight -= len(batch)
        now = self._report(endpoint, outcome, started, len(batch))
        if outcome.throttle is not None:
            self._m_throttles.inc()
            self.limiter.on_throttle(now)
            self.gate.pause(now + outcome.throttle)
            self._give_back(batch, attempts)
        else:
            if outcome.failed:
                self.limiter.on_failure(now)
            else:
                self.limiter.on_sample(max(0.0, now - started), in_flight, now)
            self.settler.settle(batch, attempts, outcome.results, started, canary=canary)
        self._m_limit.set(self.limiter.limit)
        self.wake()

    def _report(
        self, endpoint: EndpointState, outcome: PushOutcome, started: float, events: int
    ) -> float:
        """Tell the pool (health, release trial) how a push went; returns the time now."""
        endpoint.pushes += 1
        self._m_pushes.inc()
        now = self.clock.now()
        latency = max(0.0, now - started)
        self._m_push.observe(latency)
        if outcome.connect_failed:
            self.pool.connect_failed(endpoint)
        self.pool.report(endpoint, not outcome.failed, latency, events)
        if outcome.throttle is None:
            ok = not outcome.failed and all(r.outcome is Outcome.SUCCESS for r in outcome.results)
            self.pool.report_release(endpoint, ok, latency, events)
        return now

    def _observe_lateness(self, batch: list[Event], attempts: list[int], now: float) -> None:
        for event, attempt in zip(batch, attempts, strict=True):
            if event.deliver_at_ms is not None and attempt == 1:
                self._m_lateness.observe(max(0.0, now - event.deliver_at_ms / 1000))
