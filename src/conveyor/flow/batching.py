"""Batching: which events make up the next push.

A :class:`Batcher` takes events for a push from the ready queue first (retries, released
followers, held events now due, batches given back), then from the partitions' buffers:
lanes by weight (:class:`~conveyor.flow.lanes.WeightedLanes`), a lane's partitions in turn.
Each taken event passes the key lanes (ordered subscriptions) and the gate.

Invariants:

* ready events go before any buffered event, in queue order;
* among busy lanes each gets its weight's share, and a busy low lane is never starved; in a
  lane, each partition gets at most an even share of a batch per turn;
* an event leaves a buffer only taken, already finished, waiting behind its key (the key's
  lane holds it), parked (a ``blocked`` row), dropped or held by the gate: never lost;
* a batch keeps within ``max_batch_bytes`` (at least one event); what is cut goes back to
  the front of the ready queue, in order;
* while fewer than ``max_batch`` events are ready, the batch may wait (``max_wait``) at
  most ``max_wait`` seconds from when the first was seen (``linger_since``).
"""

from __future__ import annotations

from collections import deque

from conveyor.flow.gate import Gate
from conveyor.flow.lanes import WeightedLanes
from conveyor.flow.reading import Partition, Reader
from conveyor.flow.settling import Settler
from conveyor.model import LANE_WEIGHTS, LANES, Event, Subscription
from conveyor.scheduler.ordering import Admit


class Batcher:
    """Takes the events of each push.

    Args:
        sub: the subscription (the runner replaces it on update).
        reader: the partitions and their buffers.
        gate: admits each taken event.
        settler: parks followers of a failing key.
        ready: the runner's ready queue (event, attempt).
    """

    def __init__(
        self,
        sub: Subscription,
        *,
        reader: Reader,
        gate: Gate,
        settler: Settler,
        ready: deque[tuple[Event, int]],
    ) -> None:
        self.sub = sub
        self._reader = reader
        self._buffered = reader.buffered
        self._admit = gate.admit
        self._park = settler.park
        self.ready = ready
        self._weights = WeightedLanes([LANE_WEIGHTS[lane] for lane in LANES])
        self._lane_rr = [0] * len(LANES)
        self.linger_since: float | None = None

    def waiting(self) -> bool:
        """Whether any event waits to be taken."""
        return bool(self.ready) or any(self._buffered)

    def lingering(self, now: float) -> bool:
        """Whether to wait for a fuller batch (``max_wait``): while fewer than ``max_batch``
        events are ready, at most ``max_wait`` seconds from when the first was seen."""
        wait = self.sub.max_wait
        if wait <= 0:
            return False
        available = len(self.ready) + sum(self._buffered)
        if available == 0 or available >= self.sub.max_batch:
            self.linger_since = None
            return False
        if self.linger_since is None:
            self.linger_since = now
        return now < self.linger_since + wait

    def deadline(self) -> float | None:
        """When a lingering batch goes anyway."""
        since = self.linger_since
        return None if since is None else since + self.sub.max_wait

    def take(self, n: int, now_ms: int) -> tuple[list[Event], list[int]]:
        """Up to ``n`` events that may be pushed now, with their attempt numbers."""
        batch: list[Event] = []
        attempts: list[int] = []
        ready = self.ready
        admit = self._admit
        while ready and len(batch) < n:
            event, attempt = ready.popleft()
            if admit(event, now_ms, attempt):
                batch.append(event)
                attempts.append(attempt)
        busy = self._buffered
        while len(batch) < n:
            active = [i for i, count in enumerate(busy) if count > 0]
            if not active:
                break
            if len(active) == 1:
                # One busy lane (the common case): take in bulk, partitions in turn.
                self._take_lane(active[0], batch, attempts, n, now_ms)
                continue
            # Several: one event at a time, lanes by weight (see flow/lanes.py).
            self._take_lane(self._weights.pick(busy), batch, attempts, len(batch) + 1, now_ms)
        return batch, attempts

    def _take_lane(
        self, lane: int, batch: list[Event], attempts: list[int], n: int, now_ms: int
    ) -> None:
        parts = self._reader.by_lane[lane]
        count = len(parts)
        i = self._lane_rr[lane] % count
        idle = 0
        while len(batch) < n and idle < count and self._buffered[lane] > 0:
            p = parts[i]
            i = (i + 1) % count
            if not p.buffer:
                idle += 1
                continue
            idle = 0
            self._take_from(p, batch, attempts, n, now_ms)
        self._lane_rr[lane] = i

    def _take_from(
        self, p: Partition, batch: list[Event], attempts: list[int], n: int, now_ms: int
    ) -> None:
        buffer = p.buffer
        progress = p.progress
        keys = p.keys
        admit = self._admit
        # Fairness between partitions: take at most an even share of the batch at a time.
        quota = max(1, n // len(self._reader.order))
        taken = 0
        popped = 0
        while buffer and len(batch) < n and taken < quota:
            event = buffer.popleft()
            popped += 1
            if progress.is_finished(event.offset):
                continue
            if keys is not None:
                verdict = keys.admit(event)
                if verdict is Admit.WAIT:
                    continue
                if verdict is Admit.PARK:
                    self._park(p, event)
                    continue
            if admit(event, now_ms, 1):
                batch.append(event)
                attempts.append(1)
                taken += 1
        self._buffered[p.lane] -= popped

    def cap(self, batch: list[Event], attempts: list[int]) -> None:
        """Keep a push within ``max_batch_bytes`` (at least one event); the rest goes back to
        the front of the ready queue, in order. The batch goes: no more lingering."""
        self.linger_since = None
        limit = self.sub.max_batch_bytes
        total = 0
        for i, event in enumerate(batch):
            total += len(event.payload)
            if total > limit and i > 0:
                rest = list(zip(batch[i:], attempts[i:], strict=True))
                del batch[i:], attempts[i:]
                self.ready.extendleft(reversed(rest))
                return
