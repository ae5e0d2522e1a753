"""One subscription's flow control: read, gate, batch, push, settle, remember.

A :class:`Runner` owns a subscription on this node. It reads each partition's log from its
cursor (from memory when it keeps up with appends, from the store when it lags), lets ordered
subscriptions' keys through one at a time, packs ready events into pushes under the
subscription's concurrency limit, and settles every result:

* success → the offset is finished;
* retry → a ``retrying`` delivery row (with the attempt in its history) owns the event, the
  offset is finished for the cursor, and the event returns when its backoff expires;
* out of attempts, or fatal → a ``dead`` row, and the dead-letter topic gets a copy;
* throttle → the batch goes back to the front of the queue and the subscription pauses.

Progress (cursors and rows) is taken by the dispatcher and committed in batches; a crash
loses only uncommitted progress, which means redelivery (at least once), never loss.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from conveyor.clock import Clock, TimerHandle, to_ms
from conveyor.delivery.endpoints import EndpointPool, EndpointState
from conveyor.delivery.filters import Filter, compile_filter
from conveyor.delivery.push import Pusher, Result
from conveyor.flow.lanes import WeightedLanes
from conveyor.flow.limiter import AdaptiveLimiter, LimiterStats
from conveyor.flow.progress import PartitionProgress
from conveyor.flow.ratelimit import TokenBucket
from conveyor.flow.retry import Jitter, exhausted, next_delay
from conveyor.metrics import Metrics
from conveyor.model import (
    LANE_WEIGHTS,
    LANES,
    Attempt,
    AttemptOutcome,
    DeliveryState,
    Event,
    Outcome,
    Subscription,
    Topic,
    lane_of,
    log_partition,
)
from conveyor.scheduler.ordering import Admit, KeyLanes
from conveyor.store.base import CursorState, DeliveryRow, NewEvent, Progress, Store

BUFFER_LIMIT = 4096  # events held in memory per partition, read but not yet pushed
WINDOW = 20_000  # offsets a partition may run ahead of its cursor (bounds the ack set)
READ_BATCH = 2048  # events per read from the store
LOAD_BATCH = 1000  # retried or released events loaded per read
LEASE_RECHECK = 0.25  # seconds before a runner whose leases lapsed looks again

Ref = tuple[int, int]  # (partition, offset)

_ROW_STATES = {
    "retrying": DeliveryState.RETRYING,
    "blocked": DeliveryState.PENDING,
    "dead": DeliveryState.DEAD,
    "succeeded": DeliveryState.SUCCEEDED,
    "dropped": DeliveryState.DROPPED,
    "filtered": DeliveryState.FILTERED,
}


def _mentions_payload(pattern: Mapping[str, object]) -> bool:
    """Whether a filter looks at the payload (else matching needs no JSON decode)."""
    if "payload" in pattern:
        return True
    branches = pattern.get("$or")
    return isinstance(branches, list) and any(
        isinstance(b, Mapping) and _mentions_payload(b) for b in branches
    )


@dataclass(slots=True, eq=False)
class _Part:
    index: int
    progress: PartitionProgress
    head: int
    next_read: int
    keys: KeyLanes | None  # per-key FIFO, for an ordered subscription
    lane: int = 0  # its priority lane (index into model.LANES)
    buffer: deque[Event] = field(default_factory=deque)
    reading: bool = False


@dataclass(slots=True, frozen=True)
class RunnerStats:
    """A runner's live figures.

    Attributes:
        backlog: events in its partitions not yet finished (retrying ones excluded).
        in_flight: events pushed and not answered.
        retrying: events waiting for a retry.
        held: events fired ahead of their deliver_at, waiting in memory for it.
        limiter: the adaptive concurrency limiter's state.
    """

    backlog: int
    in_flight: int
    retrying: int
    held: int
    limiter: LimiterStats


class Runner:
    """Flow control for one subscription on this node.

    Args:
        sub: the subscription.
        topic: its topic.
        store: the durable store.
        pool: the endpoint pool.
        pusher: the push transport.
        clock: the source of time.
        metrics: the node's metrics.
        dead_letter: resolves the dead-letter topic by name (``None`` when missing).
        on_dirty: called when the runner has progress to commit.
        jitter: draws retry waits (injected by tests).
        partitions: the partitions this node holds, with their lease epochs (all, when
            ``None``: a node without leases).
        lease_valid: whether this node's leases may still be trusted; no push starts when not.
    """

    def __init__(
        self,
        sub: Subscription,
        topic: Topic,
        *,
        store: Store,
        pool: EndpointPool,
        pusher: Pusher,
        clock: Clock,
        metrics: Metrics,
        dead_letter: Callable[[str], Topic | None],
        on_dirty: Callable[[Runner], None],
        jitter: Jitter,
        partitions: dict[int, int] | None = None,
        lease_valid: Callable[[], bool] = lambda: True,
    ) -> None:
        self.sub = sub
        self.topic = topic
        self._store = store
        self._pool = pool
        self._pusher = pusher
        self._clock = clock
        self._dead_letter = dead_letter
        self._on_dirty = on_dirty
        self._jitter = jitter
        self.partitions = partitions
        self._lease_valid = lease_valid
        self._parts: dict[int, _Part] = {}
        self._order: list[_Part] = []
        self._pending_heads: dict[int, int] = {}
        self._ready: deque[tuple[Event, int]] = deque()  # (event, attempt) bypassing lanes
        self._rows: dict[Ref, DeliveryRow] = {}  # live rows: retrying or blocked
        self._retry_heap: list[tuple[int, int, int]] = []  # (due_ms, partition, offset)
        self._to_load: list[Ref] = []
        self._loading = False
        self._pending: dict[Ref, DeliveryRow | None] = {}  # rows to write; None = delete
        self._dead_letters: list[Event] = []
        self._batches: dict[int, list[Event]] = {}
        self._batch_ids = itertools.count()
        self._rr = 0
        self._by_lane: list[list[_Part]] = [[] for _ in LANES]
        self._lane_rr = [0] * len(LANES)
        self._buffered = [0] * len(LANES)  # events in the lanes' buffers
        self._weights = WeightedLanes([LANE_WEIGHTS[lane] for lane in LANES])
        self._held: list[tuple[int, int, int, Event, int]] = []  # (due, part, off, ev, attempt)
        self._unordered: set[Ref] = set()  # redriven events: delivered outside key order
        self.limiter = AdaptiveLimiter(
            floor=sub.min_concurrency, cap=sub.max_concurrency, adaptive=sub.adaptive
        )
        self._bucket: TokenBucket | None = None
        self._configure_rate(clock.now())
        self._linger_since: float | None = None
        self._filter: Filter | None = None
        self._filter_payload = False
        self._configure_filter()
        self.in_flight = 0
        self._paused_until = 0.0
        self._wake = asyncio.Event()
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopping = False
        self.loaded = asyncio.Event()
        self._labels(metrics)

    def _labels(self, metrics: Metrics) -> None:
        name = self.sub.name
        self._m_results = {
            o: metrics.results.labels(name, o.value)
            for o in (Outcome.SUCCESS, Outcome.RETRY, Outcome.FATAL)
        }
        self._m_push = metrics.push_seconds.labels(name)
        self._m_pushes = metrics.pushes.labels(name)
        self._m_throttles = metrics.throttles.labels(name)
        self._m_dead = metrics.dead.labels(name)
        self._m_lateness = metrics.lateness.labels(name)
        self._m_limit = metrics.concurrency_limit.labels(name)
        self._m_dropped = metrics.dropped.labels(name)
        self._m_limit.set(self.limiter.limit)

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the subscription until :meth:`stop`; waits for in-flight pushes at the end."""
        await self._load()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            while not self._stopping:
                self._wake.clear()
                self._step()
                await self._wake.wait()
        if self._timer is not None:
            self._timer.cancel()

    def stop(self) -> None:
        """Stop taking work; :meth:`run` returns once in-flight pushes are settled."""
        self._stopping = True
        self._wake.set()

    def wake(self) -> None:
        """Look for work again (endpoints changed, time moved)."""
        self._wake.set()

    def update(self, sub: Subscription) -> None:
        """Apply a subscription's new settings and gates (same topic and ordering)."""
        old, self.sub = self.sub, sub
        now = self._clock.now()
        self.limiter.configure(
            floor=sub.min_concurrency, cap=sub.max_concurrency, adaptive=sub.adaptive
        )
        self._m_limit.set(self.limiter.limit)
        if sub.control.rate_limit != old.control.rate_limit:
            self._configure_rate(now)
        if sub.filter != old.filter:
            self._configure_filter()
        purged = sub.control.purged_before_ms
        if purged is not None and purged != old.control.purged_before_ms:
            # A drain to drop: retrying events are loaded at once, to be dropped unpushed.
            self._to_load.extend(r for r, row in self._rows.items() if row.state == "retrying")
        self._wake.set()

    def _configure_filter(self) -> None:
        pattern = self.sub.filter
        self._filter = None if pattern is None else compile_filter(pattern)
        self._filter_payload = pattern is not None and _mentions_payload(pattern)

    def _configure_rate(self, now: float) -> None:
        limit = self.sub.control.rate_limit
        if limit is None:
            self._bucket = None
            return
        # Each node paces its share of the partitions, so the cluster keeps the rate.
        share = 1.0 if self.partitions is None else len(self.partitions) / self.topic.log_partitions
        rate = limit.per_second * share
        burst = max(1, round(limit.burst * share))
        if self._bucket is None:
            self._bucket = TokenBucket(rate, burst, now)
        else:
            self._bucket.configure(rate, burst, now)

    def redrive(self, rows: list[DeliveryRow]) -> int:
        """Take dead events sent back by a redrive: each is delivered again from attempt 1.

        A redriven event of an ordered subscription goes outside its key's order (the
        events that followed it were delivered long ago). Returns how many were taken.
        """
        now_ms = to_ms(self._clock.now())
        taken = 0
        for row in rows:
            ref = (row.partition, row.offset)
            if row.partition not in self._parts or ref in self._rows or ref in self._pending:
                continue
            # Written as a retrying row due now, so a restart delivers it too.
            row.state = DeliveryState.RETRYING.value
            row.attempts = 0
            row.next_ms = now_ms
            row.updated_ms = now_ms
            self._rows[ref] = row
            self._pending[ref] = row
            self._to_load.append(ref)
            if self.sub.ordered and row.key is not None:
                self._unordered.add(ref)
            taken += 1
        if taken:
            self._on_dirty(self)
            self._wake.set()
        return taken

    async def _load(self) -> None:
        cursors, rows = await self._store.load_progress(self.sub)
        ends = await self._store.log_ends(self.topic)
        for i, end in enumerate(ends):
            if self.partitions is not None and i not in self.partitions:
                continue
            progress = PartitionProgress(cursors.get(i, CursorState(end, [], end)))
            head = max(end, self._pending_heads.get(i, 0))
            keys = KeyLanes() if self.sub.ordered else None
            lane = LANES.index(lane_of(i, self.topic.partitions))
            self._parts[i] = _Part(i, progress, head, progress.cursor, keys, lane)
        self._order = list(self._parts.values())
        self._by_lane = [[p for p in self._order if p.lane == i] for i in range(len(LANES))]
        by_key: dict[tuple[int, str], list[DeliveryRow]] = {}
        for row in rows:
            if row.partition not in self._parts:
                continue
            self._rows[(row.partition, row.offset)] = row
            if row.state == "retrying" and row.next_ms is not None:
                heapq.heappush(self._retry_heap, (row.next_ms, row.partition, row.offset))
            elif row.key is None or not self.sub.ordered:
                self._to_load.append((row.partition, row.offset))
            if self.sub.ordered and row.key is not None:
                by_key.setdefault((row.partition, row.key), []).append(row)
        for (part, key), key_rows in by_key.items():
            keys = self._parts[part].keys
            assert keys is not None
            release = keys.restore(
                key, [r.offset for r in key_rows], key_rows[0].state == "retrying"
            )
            if release is not None:
                self._to_load.append((part, release))
        self.loaded.set()

    # -- input ------------------------------------------------------------------------------
    def on_append(self, partition: int, events: list[Event]) -> None:
        """Events were appended to one partition of the topic (committed, in order)."""
        last = events[-1].offset
        if not self.loaded.is_set():
            self._pending_heads[partition] = max(self._pending_heads.get(partition, 0), last + 1)
            return
        p = self._parts.get(partition)
        if p is None:
            return  # another node dispatches this partition
        if last >= p.head:
            p.head = last + 1
        if (
            not p.reading
            and events[0].offset == p.next_read
            and len(p.buffer) < BUFFER_LIMIT
            and p.next_read - p.progress.cursor < WINDOW
        ):
            p.buffer.extend(events)
            self._buffered[p.lane] += len(events)
            p.next_read = last + 1
        self._wake.set()

    def on_head(self, partition: int, head: int) -> None:
        """A partition's head as read from the store (appends made by other nodes)."""
        p = self._parts.get(partition)
        if p is not None and head > p.head:
            p.head = head
            self._wake.set()

    # -- the loop's step --------------------------------------------------------------------
    def _step(self) -> None:
        now = self._clock.now()
        now_ms = to_ms(now)
        self._release_due(now_ms)
        self._start_loads()
        self._start_reads()
        self._dispatch(now, now_ms)
        self._arm(now)

    def _release_due(self, now_ms: int) -> None:
        heap = self._retry_heap
        while heap and heap[0][0] <= now_ms:
            due, part, off = heapq.heappop(heap)
            row = self._rows.get((part, off))
            # Invariant: a retry is released only at or after its next_ms (never early);
            # stale heap entries (the row moved on) are dropped.
            if row is not None and row.state == "retrying" and row.next_ms == due:
                self._to_load.append((part, off))
        held = self._held
        while held and held[0][0] <= now_ms:
            _, _, _, event, attempt = heapq.heappop(held)
            self._ready.append((event, attempt))

    def _start_loads(self) -> None:
        if self._to_load and not self._loading:
            refs = self._to_load[:LOAD_BATCH]
            del self._to_load[:LOAD_BATCH]
            self._loading = True
            self._tg.create_task(self._load_refs(refs))

    async def _load_refs(self, refs: list[Ref]) -> None:
        try:
            events = await self._store.read_events(self.topic, refs)
        finally:
            self._loading = False
        found = {(e.partition, e.offset): e for e in events}
        for ref in refs:
            row = self._rows.get(ref)
            event = found.get(ref)
            if event is None:
                if row is not None:
                    self._bury_missing(ref, row)
                continue
            self._ready.append((event, (row.attempts if row else 0) + 1))
        self._wake.set()

    def _start_reads(self) -> None:
        for p in self._order:
            if (
                not p.reading
                and p.next_read < p.head
                and len(p.buffer) < BUFFER_LIMIT // 2
                and p.next_read - p.progress.cursor < WINDOW
            ):
                p.reading = True
                self._tg.create_task(self._read(p))

    async def _read(self, p: _Part) -> None:
        try:
            limit = min(READ_BATCH, BUFFER_LIMIT - len(p.buffer))
            events = await self._store.read_log(self.topic, p.index, p.next_read, limit)
        finally:
            p.reading = False
        if events and events[0].offset == p.next_read:
            p.buffer.extend(events)
            self._buffered[p.lane] += len(events)
            p.next_read = events[-1].offset + 1
        self._wake.set()

    # -- dispatch ---------------------------------------------------------------------------
    def _gated(self, now: float) -> bool:
        """Whether nothing may be pushed now (stopping, paused, throttled, lease in doubt)."""
        control = self.sub.control
        if control.paused and control.purged_before_ms is not None:
            self._drop_purged(control.purged_before_ms)
        if self._paused_until > now or self._stopping or control.paused:
            return True
        if not self._lease_valid():
            # Never push on a lease that may have lapsed; look again shortly.
            self._paused_until = now + LEASE_RECHECK
            return True
        return False

    def _dispatch(self, now: float, now_ms: int) -> None:
        if self._gated(now):
            return
        capacity = min(self.limiter.limit, self.sub.max_concurrency) - self.in_flight
        if capacity > 0 and self._lingering(now):
            return
        bucket = self._bucket
        while capacity > 0:
            endpoint = self._pool.choose(self.sub.lambda_name, self.sub.locality)
            if endpoint is None:
                return
            want = min(self.sub.max_batch, capacity)
            if bucket is not None:
                want = bucket.take(want, now)
                if want == 0:
                    return
            batch, attempts = self._take(want, now_ms)
            if bucket is not None and len(batch) < want:
                bucket.refund(want - len(batch), now)
            if not batch:
                return
            self._cap_bytes(batch, attempts)
            self._linger_since = None
            capacity -= len(batch)
            self.in_flight += len(batch)
            endpoint.in_flight += len(batch)
            # Whether it goes to a canary is read now: a rollback during the push must not
            # turn the canary's failures into the stable version's.
            canary = self._pool.is_canary(endpoint)
            self._tg.create_task(self._push(endpoint, batch, attempts, canary))

    def _lingering(self, now: float) -> bool:
        """Whether to wait for a fuller batch (``max_wait``): while fewer than ``max_batch``
        events are ready, at most ``max_wait`` seconds from when the first was seen."""
        wait = self.sub.max_wait
        if wait <= 0:
            return False
        available = len(self._ready) + sum(self._buffered)
        if available == 0 or available >= self.sub.max_batch:
            self._linger_since = None
            return False
        if self._linger_since is None:
            self._linger_since = now
        return now < self._linger_since + wait

    def _cap_bytes(self, batch: list[Event], attempts: list[int]) -> None:
        """Keep a push within ``max_batch_bytes`` (at least one event); the rest goes back to
        the front of the ready queue, in order."""
        limit = self.sub.max_batch_bytes
        total = 0
        for i, event in enumerate(batch):
            total += len(event.payload)
            if total > limit and i > 0:
                rest = list(zip(batch[i:], attempts[i:], strict=True))
                del batch[i:], attempts[i:]
                self._ready.extendleft(reversed(rest))
                return

    def _take(self, n: int, now_ms: int) -> tuple[list[Event], list[int]]:
        batch: list[Event] = []
        attempts: list[int] = []
        ready = self._ready
        while ready and len(batch) < n:
            event, attempt = ready.popleft()
            if self._admit(event, now_ms, attempt):
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
        parts = self._by_lane[lane]
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
        self, p: _Part, batch: list[Event], attempts: list[int], n: int, now_ms: int
    ) -> None:
        buffer = p.buffer
        progress = p.progress
        keys = p.keys
        # Fairness between partitions: take at most an even share of the batch at a time.
        quota = max(1, n // len(self._order))
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
            if self._admit(event, now_ms, 1):
                batch.append(event)
                attempts.append(1)
                taken += 1
        self._buffered[p.lane] -= popped

    def _drop_purged(self, purged: int) -> None:
        """While paused, drop what a purge covers without waiting for the resume."""
        dropped = 0
        for _ in range(len(self._ready)):
            event, attempt = self._ready.popleft()
            if event.publish_ms < purged:
                self._drop(event)  # (may release the key's next event into the ready queue)
                dropped += 1
            else:
                self._ready.append((event, attempt))
        for p in self._order:
            if not p.buffer:
                continue
            kept: deque[Event] = deque()
            for event in p.buffer:
                if p.progress.is_finished(event.offset):
                    continue
                if event.publish_ms >= purged:
                    kept.append(event)
                elif p.keys is None or not p.keys.holds(event.key):
                    self._drop(event)  # never admitted: no key to release
                    dropped += 1
                else:
                    kept.append(event)  # behind its key's head: goes in order when resumed
            self._buffered[p.lane] -= len(p.buffer) - len(kept)
            p.buffer = kept
        if dropped:
            self._wake.set()  # room in the buffers: read on

    def _admit(self, event: Event, now_ms: int, attempt: int) -> bool:
        """Whether an event taken for a push goes now; drops purged ones, holds early ones."""
        purged = self.sub.control.purged_before_ms
        if purged is not None and event.publish_ms < purged:
            self._drop(event)
            return False
        if attempt == 1 and self._filter is not None and not self._matches(event):
            self._drop(event, DeliveryState.FILTERED)
            return False
        due = event.deliver_at_ms
        if due is not None and due > now_ms:
            # Fired ahead of its time (the scheduler's lead, or read back after a restart):
            # it waits here. Invariant: nothing is pushed before its deliver_at.
            heapq.heappush(self._held, (due, event.partition, event.offset, event, attempt))
            return False
        return True

    async def _push(
        self, endpoint: EndpointState, batch: list[Event], attempts: list[int], canary: bool
    ) -> None:
        if not self._lease_valid():
            # The task was created before the process paused (GC, SIGSTOP) and runs after: the
            # lease may be another node's now, so nothing is sent; the events wait.
            endpoint.in_flight -= len(batch)
            self.in_flight -= len(batch)
            self._ready.extendleft(reversed(list(zip(batch, attempts, strict=True))))
            self._wake.set()
            return
        batch_id = next(self._batch_ids)
        self._batches[batch_id] = batch
        started = self._clock.now()
        in_flight = self.in_flight
        self._observe_lateness(batch, attempts, started)
        try:
            outcome = await self._pusher.push(
                endpoint, self.sub.name, batch, attempts, self.sub.push_timeout
            )
        finally:
            del self._batches[batch_id]
            endpoint.in_flight -= len(batch)
            self.in_flight -= len(batch)
        endpoint.pushes += 1
        self._m_pushes.inc()
        now = self._clock.now()
        latency = max(0.0, now - started)
        self._m_push.observe(latency)
        if outcome.connect_failed:
            self._pool.connect_failed(endpoint)
        self._pool.report(endpoint, not outcome.failed, latency, len(batch))
        if outcome.throttle is None:
            ok = not outcome.failed and all(r.outcome is Outcome.SUCCESS for r in outcome.results)
            self._pool.report_release(endpoint, ok, latency, len(batch))
        if outcome.throttle is not None:
            self._m_throttles.inc()
            self.limiter.on_throttle(now)
            self._paused_until = max(self._paused_until, now + outcome.throttle)
            self._ready.extendleft(reversed(list(zip(batch, attempts, strict=True))))
        else:
            if outcome.failed:
                self.limiter.on_failure(now)
            else:
                self.limiter.on_sample(max(0.0, now - started), in_flight, now)
            self._settle(batch, attempts, outcome.results, started, canary=canary)
        self._m_limit.set(self.limiter.limit)
        self._wake.set()

    def _observe_lateness(self, batch: list[Event], attempts: list[int], now: float) -> None:
        for event, attempt in zip(batch, attempts, strict=True):
            if event.deliver_at_ms is not None and attempt == 1:
                self._m_lateness.observe(max(0.0, now - event.deliver_at_ms / 1000))

    # -- settling results -------------------------------------------------------------------
    def _settle(
        self,
        batch: list[Event],
        attempts: list[int],
        results: list[Result],
        started: float,
        *,
        canary: bool = False,
    ) -> None:
        """Settle a push's results. A failure on a canary endpoint (a release under trial)
        is always retried, never buried: the release is what failed, and its retry goes to
        the stable version once the canary is rolled back."""
        now = self._clock.now()
        succeeded = 0
        parts = self._parts
        policy = self.sub.retry
        for event, attempt, result in zip(batch, attempts, results, strict=True):
            p = parts[event.partition]
            ref = (event.partition, event.offset)
            if result.outcome is Outcome.SUCCESS:
                succeeded += 1
                if self._rows and ref in self._rows:
                    self._row_succeeded(event, attempt, started, now)
                p.progress.finish(event.offset)
                self._key_done(p, event)
            elif canary or (
                result.outcome is Outcome.RETRY
                and not exhausted(policy, attempt, self._retrying_for(ref, started, now))
            ):
                self._m_results[Outcome.RETRY].inc()
                self._retry_later(p, event, attempt, result, started=started, now=now)
            else:
                self._m_results[result.outcome].inc()
                self._bury(p, event, attempt, result, started=started, now=now)
        if succeeded:
            self._m_results[Outcome.SUCCESS].inc(succeeded)
        self._on_dirty(self)

    def _retrying_for(self, ref: Ref, started: float, now: float) -> float:
        """Seconds from an event's first attempt (this one, if it has none) to now."""
        row = self._rows.get(ref)
        first = row.history[0].at_ms / 1000 if row is not None and row.history else started
        return max(0.0, now - first)

    def _key_done(self, p: _Part, event: Event) -> None:
        """An event is finished: let its key's next event go (ordered subscriptions)."""
        if p.keys is not None and not self._unordered_done((event.partition, event.offset)):
            self._release(p, event.key)

    def _unordered_done(self, ref: Ref) -> bool:
        if ref in self._unordered:
            self._unordered.discard(ref)
            return True
        return False

    def _attempt(
        self, attempt: int, result: Result, started: float, now: float, *, last: bool = False
    ) -> Attempt:
        # The last failure of an event that goes dead reads `dead`, unless the lambda said
        # `fatal` (which says why).
        outcome = AttemptOutcome(result.outcome)
        if last and outcome is AttemptOutcome.RETRY:
            outcome = AttemptOutcome.DEAD
        return Attempt(attempt, to_ms(started), outcome, result.error, to_ms(now) - to_ms(started))

    def _row_for(self, event: Event, now: float) -> DeliveryRow:
        ref = (event.partition, event.offset)
        row = self._rows.get(ref)
        if row is None:
            row = DeliveryRow(
                event.partition, event.offset, event.key, "retrying", 0, None, None, [], to_ms(now)
            )
        return row

    def _row_succeeded(self, event: Event, attempt: int, started: float, now: float) -> None:
        ref = (event.partition, event.offset)
        row = self._rows.pop(ref)
        if not row.history:
            # A blocked follower that went through at once needs no memory.
            self._pending[ref] = None
            return
        row.state = DeliveryState.SUCCEEDED.value
        row.attempts = attempt
        row.next_ms = None
        row.history.append(self._attempt(attempt, Result(Outcome.SUCCESS), started, now))
        row.updated_ms = to_ms(now)
        self._pending[ref] = row

    def _retry_later(
        self, p: _Part, event: Event, attempt: int, result: Result, *, started: float, now: float
    ) -> None:
        ref = (event.partition, event.offset)
        delay = next_delay(self.sub.retry, attempt, after=result.after, jitter=self._jitter)
        row = self._row_for(event, now)
        row.state = DeliveryState.RETRYING.value
        row.attempts = attempt
        row.next_ms = to_ms(now + delay)
        row.last_error = result.error
        row.history.append(self._attempt(attempt, result, started, now))
        row.updated_ms = to_ms(now)
        self._rows[ref] = row
        self._pending[ref] = row
        heapq.heappush(self._retry_heap, (row.next_ms, event.partition, event.offset))
        # Invariant: the row owns the event now, so the cursor may pass it.
        p.progress.finish(event.offset)
        if p.keys is not None and ref not in self._unordered:
            for follower in p.keys.failed(event.key):
                self._park(p, follower)

    def _bury(
        self, p: _Part, event: Event, attempt: int, result: Result, *, started: float, now: float
    ) -> None:
        ref = (event.partition, event.offset)
        row = self._row_for(event, now)
        row.state = DeliveryState.DEAD.value
        row.attempts = attempt
        row.next_ms = None
        row.last_error = result.error
        row.history.append(self._attempt(attempt, result, started, now, last=True))
        row.updated_ms = to_ms(now)
        self._rows.pop(ref, None)
        self._pending[ref] = row
        self._m_dead.inc()
        if self.sub.dead_letter_topic is not None:
            self._dead_letters.append(event)
        p.progress.finish(event.offset)
        self._key_done(p, event)

    def _matches(self, event: Event) -> bool:
        assert self._filter is not None
        payload: object = None
        if self._filter_payload:
            try:
                payload = msgspec.json.decode(event.payload)
            except msgspec.DecodeError:
                payload = None
        return self._filter.matches(event.attributes, payload, event.key)

    def _drop(self, event: Event, state: DeliveryState = DeliveryState.DROPPED) -> None:
        """Finish an event unpushed: published before the subscription's purge (dropped), or
        not matching its filter (filtered)."""
        ref = (event.partition, event.offset)
        now_ms = to_ms(self._clock.now())
        row = self._rows.pop(ref, None)
        if row is None:
            row = DeliveryRow(event.partition, event.offset, event.key, "", 0, None, None, [], 0)
        row.state = state.value
        row.next_ms = None
        row.updated_ms = now_ms
        self._pending[ref] = row
        if state is DeliveryState.DROPPED:
            self._m_dropped.inc()
        p = self._parts[event.partition]
        p.progress.finish(event.offset)
        self._key_done(p, event)
        self._on_dirty(self)

    def _bury_missing(self, ref: Ref, row: DeliveryRow) -> None:
        now = self._clock.now()
        row.state = DeliveryState.DEAD.value
        row.last_error = "the event is no longer in the log (retention)"
        row.updated_ms = to_ms(now)
        self._rows.pop(ref, None)
        self._pending[ref] = row
        p = self._parts[ref[0]]
        if p.keys is not None and not self._unordered_done(ref):
            self._release(p, row.key)
        self._on_dirty(self)

    def _park(self, p: _Part, event: Event) -> None:
        ref = (event.partition, event.offset)
        row = DeliveryRow(
            event.partition,
            event.offset,
            event.key,
            "blocked",
            0,
            None,
            None,
            [],
            to_ms(self._clock.now()),
        )
        self._rows[ref] = row
        self._pending[ref] = row
        p.progress.finish(event.offset)

    def _release(self, p: _Part, key: str | None) -> None:
        assert p.keys is not None
        release = p.keys.finished(key)
        if release is None:
            return
        if release.event is not None:
            self._ready.append((release.event, 1))
        elif release.offset is not None:
            self._to_load.append((p.index, release.offset))

    # -- timers -----------------------------------------------------------------------------
    def _on_timer(self) -> None:
        self._timer_at = None
        self._timer = None
        self._wake.set()

    def _arm(self, now: float) -> None:
        deadlines = []
        if self._retry_heap:
            deadlines.append(self._retry_heap[0][0] / 1000)
        if self._held:
            deadlines.append(self._held[0][0] / 1000)
        if self._linger_since is not None:
            deadlines.append(self._linger_since + self.sub.max_wait)
        if self._paused_until > now:
            deadlines.append(self._paused_until)
        bucket = self._bucket
        if bucket is not None and (self._ready or any(self._buffered)):
            refill = bucket.next_at(now)
            if refill > now:
                deadlines.append(refill)
        back = self._pool.next_change(self.sub.lambda_name)
        if back is not None:
            deadlines.append(back)
        at = min(deadlines) if deadlines else None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None if at is None else self._clock.call_at(at, self._on_timer)
        self._timer_at = at

    # -- progress ---------------------------------------------------------------------------
    def take_progress(self) -> Progress | None:
        """What to commit since the last call, or ``None`` when nothing changed."""
        cursors = {p.index: p.progress.snapshot() for p in self._order if p.progress.dirty}
        if not cursors and not self._pending and not self._dead_letters:
            return None
        progress = Progress(
            self.sub.name, cursors, topic=self.topic.name, epochs=dict(self.partitions or {})
        )
        for ref, row in self._pending.items():
            if row is None:
                progress.deleted.append(ref)
            else:
                # A copy: the writer thread encodes it while this runner goes on.
                progress.rows.append(msgspec.structs.replace(row, history=list(row.history)))
        self._pending = {}
        dlq = self._dead_letter(self.sub.dead_letter_topic) if self.sub.dead_letter_topic else None
        if dlq is not None:
            for event in self._dead_letters:
                progress.dead_letters.append((dlq, self._dead_letter_event(dlq, event)))
        self._dead_letters = []
        return progress

    def _dead_letter_event(self, dlq: Topic, event: Event) -> NewEvent:
        from conveyor._ids import new_id
        from conveyor.frontend.partitioning import partition_for

        attributes = dict(event.attributes or {})
        attributes.update(
            {
                "conveyor.dead_letter.subscription": self.sub.name,
                "conveyor.dead_letter.topic": event.topic,
                "conveyor.dead_letter.event_id": event.id,
            }
        )
        now_ms = to_ms(self._clock.now())
        return NewEvent(
            new_id(now_ms),
            log_partition(
                partition_for(event.key, dlq.partitions, event.offset),
                lane_of(event.partition, self.topic.partitions),
                dlq.partitions,
            ),
            event.key,
            attributes,
            event.payload,
            now_ms,
            None,
            False,
        )

    # -- queries ----------------------------------------------------------------------------
    def live_state(self, partition: int, offset: int) -> DeliveryState | None:
        """What this node knows of an event beyond the store, or ``None``.

        ``running`` while pushed; otherwise the state of a row not yet committed or held live.
        """
        for batch in self._batches.values():
            for event in batch:
                if event.partition == partition and event.offset == offset:
                    return DeliveryState.RUNNING
        ref = (partition, offset)
        row = self._pending.get(ref) or self._rows.get(ref)
        if row is None:
            return None
        return _ROW_STATES.get(row.state, DeliveryState.PENDING)

    def is_finished(self, partition: int, offset: int) -> bool | None:
        """Whether the in-memory progress has passed an offset (``None`` before loading)."""
        p = self._parts.get(partition)
        return None if p is None else p.progress.is_finished(offset)

    def stats(self) -> RunnerStats:
        """This subscription's figures as this node sees them now."""
        backlog = sum(
            max(0, p.head - p.progress.cursor - len(p.progress.acked)) for p in self._order
        )
        retrying = sum(1 for r in self._rows.values() if r.state == "retrying")
        return RunnerStats(backlog, self.in_flight, retrying, len(self._held), self.limiter.stats())

    def partition_backlogs(self) -> dict[int, int]:
        """Unfinished events (retrying ones excluded) of each partition this runner holds."""
        return {
            p.index: max(0, p.head - p.progress.cursor - len(p.progress.acked)) for p in self._order
        }

    def owned_partitions(self) -> list[int]:
        """The partitions this runner dispatches."""
        return [p.index for p in self._order]

    def oldest_unfinished(self) -> list[tuple[int, int]]:
        """(partition, cursor) of every partition with unfinished events."""
        return [(p.index, p.progress.cursor) for p in self._order if p.progress.cursor < p.head]
