"""Gating: whether anything may be pushed now, and whether each taken event goes.

A :class:`Gate` holds a subscription's run-time gates on this node: pause and purge mark
(operator state in ``sub.control``), the rate limit, the filter, a pause after a throttle or
a lease in doubt, and the events fired ahead of their ``deliver_at``.

Invariants:

* nothing is pushed before its ``deliver_at``: an event taken early waits in ``held`` (a heap
  by due time) and goes to the ready queue only once ``due_ms <= now_ms``;
* nothing is pushed while paused, before ``paused_until``, or on a lease that may have lapsed;
* an event published before the purge mark is never pushed: it is dropped (a ``dropped``
  row); a first attempt that does not match the filter is ``filtered``, never pushed;
* the rate bucket paces this node's share of the partitions, so the cluster keeps the rate.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, InitVar, dataclass, field

import msgspec

from conveyor.delivery.filters import Filter, compile_filter
from conveyor.flow.ratelimit import TokenBucket
from conveyor.model import DeliveryState, Event, Subscription, Topic

LEASE_RECHECK = 0.25  # seconds before a runner whose leases lapsed looks again

Drop = Callable[[Event, DeliveryState], None]  # finishes an event unpushed, with this state


def _mentions_payload(pattern: Mapping[str, object]) -> bool:
    """Whether a filter looks at the payload (else matching needs no JSON decode)."""
    if "payload" in pattern:
        return True
    branches = pattern.get("$or")
    return isinstance(branches, list) and any(
        isinstance(b, Mapping) and _mentions_payload(b) for b in branches
    )


@dataclass(slots=True, eq=False)
class Gate:
    """A subscription's gates on this node.

    Args:
        sub: the subscription (the runner replaces it on :meth:`update`).
        topic: its topic.
        now: the time, for the rate bucket.
        partitions: the partitions this node holds (all, when ``None``).
        ready: the runner's ready queue (event, attempt), where held events go when due.
        drop: finishes an event unpushed (purged or filtered).
        sweep: drops what a purge mark covers from memory (called while paused).
        lease_valid: whether this node's leases may still be trusted.
    """

    sub: Subscription
    topic: Topic
    now: InitVar[float]
    _: KW_ONLY
    partitions: Mapping[int, int] | None
    ready: deque[tuple[Event, int]]
    drop: Drop
    sweep: Callable[[int], None]
    lease_valid: Callable[[], bool]
    paused_until: float = field(init=False, default=0.0)
    held: list[tuple[int, int, int, Event, int]] = field(  # (due, part, off, ev, attempt)
        init=False, default_factory=list
    )
    bucket: TokenBucket | None = field(init=False, default=None)
    _filter: Filter | None = field(init=False, default=None)
    _filter_payload: bool = field(init=False, default=False)

    def __post_init__(self, now: float) -> None:
        self._configure_rate(now)
        self._configure_filter()

    def update(self, sub: Subscription, now: float) -> None:
        """Apply a subscription's new settings."""
        old, self.sub = self.sub, sub
        if sub.control.rate_limit != old.control.rate_limit:
            self._configure_rate(now)
        if sub.filter != old.filter:
            self._configure_filter()

    def _configure_filter(self) -> None:
        pattern = self.sub.filter
        self._filter = None if pattern is None else compile_filter(pattern)
        self._filter_payload = pattern is not None and _mentions_payload(pattern)

    def _configure_rate(self, now: float) -> None:
        limit = self.sub.control.rate_limit
        if limit is None:
            self.bucket = None
            return
        # Each node paces its share of the partitions, so the cluster keeps the rate.
        parts = self.partitions
        share = 1.0 if parts is None else len(parts) / self.topic.log_partitions
        rate = limit.per_second * share
        burst = max(1, round(limit.burst * share))
        if self.bucket is None:
            self.bucket = TokenBucket(rate, burst, now)
        else:
            self.bucket.configure(rate, burst, now)

    # -- the gates --------------------------------------------------------------------------
    def closed(self, now: float, *, stopping: bool) -> bool:
        """Whether nothing may be pushed now (stopping, paused, throttled, lease in doubt).

        While paused, what a purge mark covers is dropped without waiting for the resume.
        """
        control = self.sub.control
        if control.paused and control.purged_before_ms is not None:
            self.sweep(control.purged_before_ms)
        if self.paused_until > now or stopping or control.paused:
            return True
        if not self.lease_valid():
            # Never push on a lease that may have lapsed; look again shortly.
            self.paused_until = now + LEASE_RECHECK
            return True
        return False

    def pause(self, until: float) -> None:
        """Push nothing before ``until`` (a throttle)."""
        self.paused_until = max(self.paused_until, until)

    def admit(self, event: Event, now_ms: int, attempt: int) -> bool:
        """Whether an event taken for a push goes now; drops purged ones, holds early ones."""
        purged = self.sub.control.purged_before_ms
        if purged is not None and event.publish_ms < purged:
            self.drop(event, DeliveryState.DROPPED)
            return False
        if attempt == 1 and self._filter is not None and not self._matches(event):
            self.drop(event, DeliveryState.FILTERED)
            return False
        due = event.deliver_at_ms
        if due is not None and due > now_ms:
            # Fired ahead of its time (the scheduler's lead, or read back after a restart):
            # it waits here. Invariant: nothing is pushed before its deliver_at.
            heapq.heappush(self.held, (due, event.partition, event.offset, event, attempt))
            return False
        return True

    def _matches(self, event: Event) -> bool:
        assert self._filter is not None
        payload: object = None
        if self._filter_payload:
            try:
                payload = msgspec.json.decode(event.payload)
            except msgspec.DecodeError:
                payload = None
        return self._filter.matches(event.attributes, payload, event.key)

    def release_held(self, now_ms: int) -> None:
        """Move the held events now due to the ready queue (never one early)."""
        held = self.held
        while held and held[0][0] <= now_ms:
            _, _, _, event, attempt = heapq.heappop(held)
            self.ready.append((event, attempt))

    def deadlines(self, now: float, *, waiting: bool) -> list[float]:
        """When the gates open next: the first held event due, the pause's end, and the
        rate bucket's refill while events are ``waiting``."""
        at = []
        if self.held:
            at.append(self.held[0][0] / 1000)
        if self.paused_until > now:
            at.append(self.paused_until)
        bucket = self.bucket
        if bucket is not None and waiting:
            refill = bucket.next_at(now)
            if refill > now:
                at.append(refill)
        return at
