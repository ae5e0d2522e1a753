"""Settling: what becomes of each event after its push, and the delivery rows that remember it.

A :class:`Settler` keeps one subscription's live delivery rows on this node and settles every
result:

* success → the offset is finished;
* retry → a ``retrying`` row (with the attempt in its history) owns the event, the offset is
  finished for the cursor, and the event is read back when its backoff expires;
* out of attempts, or fatal → a ``dead`` row, and the dead-letter topic gets a copy;
* an event finished unpushed (purged, filtered) → a ``dropped`` or ``filtered`` row.

Invariants:

* ``rows`` holds the live rows (``retrying`` or ``blocked``), each owning its event;
* an offset is finished only once a row owns its event or it needs none (succeeded, and
  never failed): every row written lands in ``pending`` in the same call, and the dispatcher
  commits a partition's cursor with the rows that own the offsets it passed;
* a retry is read back only at or after its ``next_ms``, never early;
* of an ordered subscription's key, the next event goes only once the head is finished
  (succeeded, dead, dropped); a redriven event is outside its key's order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator

import msgspec

from conveyor.clock import Clock, to_ms
from conveyor.delivery.push import Result
from conveyor.flow.reading import Partition, Reader, Ref
from conveyor.flow.retry import Jitter, exhausted, next_delay
from conveyor.flow.rows import attempt_of, dead_letter_copy, new_row
from conveyor.metrics import Metrics
from conveyor.model import DeliveryState, Event, Outcome, Subscription, Topic
from conveyor.store.base import DeliveryRow, Progress


class Settler:
    """A subscription's delivery rows on this node, and the settling of push results.

    Args:
        sub: the subscription (the runner replaces it on update).
        reader: its partitions (progress, key lanes) and read-back queue.
        ready: the runner's ready queue (event, attempt), where released followers go.
        clock: the source of time.
        jitter: draws retry waits.
        metrics: the node's metrics.
        on_dirty: called when there is progress to commit.
        wake: called when there is work again.
    """

    def __init__(
        self,
        sub: Subscription,
        *,
        reader: Reader,
        ready: deque[tuple[Event, int]],
        clock: Clock,
        jitter: Jitter,
        metrics: Metrics,
        on_dirty: Callable[[], None],
        wake: Callable[[], None],
    ) -> None:
        self.sub = sub
        self._reader = reader
        self._parts = reader.parts
        self._to_load = reader.to_load
        self._ready = ready
        self._clock = clock
        self._jitter = jitter
        self._on_dirty = on_dirty
        self._wake = wake
        self.rows: dict[Ref, DeliveryRow] = {}  # live rows: retrying or blocked
        self.pending: dict[Ref, DeliveryRow | None] = {}  # rows to write; None = delete
        self.dead_letters: list[Event] = []
        self._retry_heap: list[tuple[int, int, int]] = []  # (due_ms, partition, offset)
        self._unordered: set[Ref] = set()  # redriven events: delivered outside key order
        name = sub.name
        self._m_results = {
            o: metrics.results.labels(name, o.value)
            for o in (Outcome.SUCCESS, Outcome.RETRY, Outcome.FATAL)
        }
        self._m_dead = metrics.dead.labels(name)
        self._m_dropped = metrics.dropped.labels(name)

    # -- rows from the store ----------------------------------------------------------------
    def restore(self, rows: list[DeliveryRow]) -> None:
        """Take the committed live rows of the partitions served (after the reader opened):
        retries wait for their time, blocked keys are parked again."""
        by_key: dict[tuple[int, str], list[DeliveryRow]] = {}
        ordered = self.sub.ordered
        for row in rows:
            if row.partition not in self._parts:
                continue
            self.rows[(row.partition, row.offset)] = row
            if row.state == "retrying" and row.next_ms is not None:
                heapq.heappush(self._retry_heap, (row.next_ms, row.partition, row.offset))
            elif row.key is None or not ordered:
                self._to_load.append((row.partition, row.offset))
            if ordered and row.key is not None:
                by_key.setdefault((row.partition, row.key), []).append(row)
        for (part, key), key_rows in by_key.items():
            keys = self._parts[part].keys
            assert keys is not None
            release = keys.restore(
                key, [r.offset for r in key_rows], key_rows[0].state == "retrying"
            )
            if release is not None:
                self._to_load.append((part, release))

    def redrive(self, rows: list[DeliveryRow], now_ms: int) -> int:
        """Take dead events sent back by a redrive, to deliver again from attempt 1 (outside
        their key's order). Returns how many were taken."""
        taken = 0
        for row in rows:
            ref = (row.partition, row.offset)
            if row.partition not in self._parts or ref in self.rows or ref in self.pending:
                continue
            # Written as a retrying row due now, so a restart delivers it too.
            row.state = DeliveryState.RETRYING.value
            row.attempts = 0
            row.next_ms = now_ms
            row.updated_ms = now_ms
            self.rows[ref] = row
            self.pending[ref] = row
            self._to_load.append(ref)
            if self.sub.ordered and row.key is not None:
                self._unordered.add(ref)
            taken += 1
        return taken

    def retrying(self) -> Iterator[Ref]:
        """The events waiting for a retry."""
        return (ref for ref, row in self.rows.items() if row.state == "retrying")

    def release_due(self, now_ms: int) -> None:
        """Queue the retries now due to be read back."""
        heap = self._retry_heap
        while heap and heap[0][0] <= now_ms:
            due, part, off = heapq.heappop(heap)
            row = self.rows.get((part, off))
            # Invariant: a retry is released only at or after its next_ms (never early);
            # stale heap entries (the row moved on) are dropped.
            if row is not None and row.state == "retrying" and row.next_ms == due:
                self._to_load.append((part, off))

    def next_due(self) -> float | None:
        """When the next retry is due, in seconds."""
        return self._retry_heap[0][0] / 1000 if self._retry_heap else None

    def loaded(self, refs: list[Ref], found: dict[Ref, Event]) -> None:
        """Events read back: each goes to the ready queue as its next attempt; one no
        longer in the log (retention) goes dead."""
        for ref in refs:
            row = self.rows.get(ref)
            event = found.get(ref)
            if event is None:
                if row is not None:
                    self._bury_missing(ref, row)
                continue
            self._ready.append((event, (row.attempts if row else 0) + 1))

    # -- settling results -------------------------------------------------------------------
    def settle(
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
                if self.rows and ref in self.rows:
                    self._row_succeeded(event, attempt, started, now)
                p.progress.finish(event.offset)
                self._key_done(p, event)
            elif canary or (
                result.outcome is Outcome.RETRY
                and not exhausted(policy, attempt, self._retrying_for(ref, started, now))
            ):
                self._m_results[Outcome.RETRY].inc()
                delay = next_delay(policy, attempt, after=result.after, jitter=self._jitter)
                due_ms = to_ms(now + delay)
                row = self._failed(event, attempt, result, started=started, now=now, due_ms=due_ms)
                self._retry_later(p, event, row, due_ms)
            else:
                self._m_results[result.outcome].inc()
                row = self._failed(event, attempt, result, started=started, now=now, due_ms=None)
                self._bury(p, event, row)
        if succeeded:
            self._m_results[Outcome.SUCCESS].inc(succeeded)
        self._on_dirty()

    def _retrying_for(self, ref: Ref, started: float, now: float) -> float:
        """Seconds from an event's first attempt (this one, if it has none) to now."""
        row = self.rows.get(ref)
        first = row.history[0].at_ms / 1000 if row is not None and row.history else started
        return max(0.0, now - first)

    def _key_done(self, p: Partition, event: Event) -> None:
        """An event is finished: let its key's next event go (ordered subscriptions)."""
        if p.keys is not None and not self._unordered_done((event.partition, event.offset)):
            self._release(p, event.key)

    def _unordered_done(self, ref: Ref) -> bool:
        if ref in self._unordered:
            self._unordered.discard(ref)
            return True
        return False

    def _row_for(self, event: Event, now: float) -> DeliveryRow:
        row = self.rows.get((event.partition, event.offset))
        return new_row(event, "retrying", to_ms(now)) if row is None else row

    def _row_succeeded(self, event: Event, attempt: int, started: float, now: float) -> None:
        ref = (event.partition, event.offset)
        row = self.rows.pop(ref)
        if not row.history:
            # A blocked follower that went through at once needs no memory.
            self.pending[ref] = None
            return
        row.state = DeliveryState.SUCCEEDED.value
        row.attempts = attempt
        row.next_ms = None
        row.history.append(attempt_of(attempt, Result(Outcome.SUCCESS), started, now))
        row.updated_ms = to_ms(now)
        self.pending[ref] = row

    def _failed(
        self,
        event: Event,
        attempt: int,
        result: Result,
        *,
        started: float,
        now: float,
        due_ms: int | None,
    ) -> DeliveryRow:
        """The event's row after a failed attempt: retried at ``due_ms``, or dead (``None``)."""
        row = self._row_for(event, now)
        row.state = (DeliveryState.DEAD if due_ms is None else DeliveryState.RETRYING).value
        row.attempts = attempt
        row.next_ms = due_ms
        row.last_error = result.error
        row.history.append(attempt_of(attempt, result, started, now, last=due_ms is None))
        row.updated_ms = to_ms(now)
        return row

    def _retry_later(self, p: Partition, event: Event, row: DeliveryRow, due_ms: int) -> None:
        ref = (event.partition, event.offset)
        self.rows[ref] = row
        self.pending[ref] = row
        heapq.heappush(self._retry_heap, (due_ms, event.partition, event.offset))
        # Invariant: the row owns the event now, so the cursor may pass it.
        p.progress.finish(event.offset)
        if p.keys is not None and ref not in self._unordered:
            for follower in p.keys.failed(event.key):
                self.park(p, follower)

    def _bury(self, p: Partition, event: Event, row: DeliveryRow) -> None:
        ref = (event.partition, event.offset)
        self.rows.pop(ref, None)
        self.pending[ref] = row
        self._m_dead.inc()
        if self.sub.dead_letter_topic is not None:
            self.dead_letters.append(event)
        p.progress.finish(event.offset)
        self._key_done(p, event)

    # -- events finished unpushed -----------------------------------------------------------
    def drop(self, event: Event, state: DeliveryState = DeliveryState.DROPPED) -> None:
        """Finish an event unpushed: published before the subscription's purge (dropped), or
        not matching its filter (filtered)."""
        ref = (event.partition, event.offset)
        now_ms = to_ms(self._clock.now())
        row = self.rows.pop(ref, None)
        if row is None:
            row = new_row(event, "", 0)
        row.state = state.value
        row.next_ms = None
        row.updated_ms = now_ms
        self.pending[ref] = row
        if state is DeliveryState.DROPPED:
            self._m_dropped.inc()
        p = self._parts[event.partition]
        p.progress.finish(event.offset)
        self._key_done(p, event)
        self._on_dirty()

    def drop_purged(self, purged: int) -> None:
        """While paused, drop what a purge covers without waiting for the resume."""
        dropped = 0
        ready = self._ready
        for _ in range(len(ready)):
            event, attempt = ready.popleft()
            if event.publish_ms < purged:
                self.drop(event)  # (may release the key's next event into the ready queue)
                dropped += 1
            else:
                ready.append((event, attempt))
        dropped += self._reader.drop_buffered(purged, self.drop)
        if dropped:
            self._wake()  # room in the buffers: read on

    def _bury_missing(self, ref: Ref, row: DeliveryRow) -> None:
        now = self._clock.now()
        row.state = DeliveryState.DEAD.value
        row.last_error = "the event is no longer in the log (retention)"
        row.updated_ms = to_ms(now)
        self.rows.pop(ref, None)
        self.pending[ref] = row
        p = self._parts[ref[0]]
        if p.keys is not None and not self._unordered_done(ref):
            self._release(p, row.key)
        self._on_dirty()

    def park(self, p: Partition, event: Event) -> None:
        """Give a follower of a failing key a ``blocked`` row and finish its offset."""
        ref = (event.partition, event.offset)
        row = new_row(event, "blocked", to_ms(self._clock.now()))
        self.rows[ref] = row
        self.pending[ref] = row
        p.progress.finish(event.offset)

    def _release(self, p: Partition, key: str | None) -> None:
        assert p.keys is not None
        release = p.keys.finished(key)
        if release is None:
            return
        if release.event is not None:
            self._ready.append((release.event, 1))
        elif release.offset is not None:
            self._to_load.append((p.index, release.offset))

    # -- what to remember -------------------------------------------------------------------
    def take(self, progress: Progress, dlq: Topic | None, source: Topic) -> None:
        """Move the rows to write and the dead-letter copies (when the dead-letter topic
        ``dlq`` exists) into ``progress``."""
        for ref, row in self.pending.items():
            if row is None:
                progress.deleted.append(ref)
            else:
                # A copy: the writer thread encodes it while this runner goes on.
                progress.rows.append(msgspec.structs.replace(row, history=list(row.history)))
        self.pending = {}
        if dlq is not None:
            for event in self.dead_letters:
                now_ms = to_ms(self._clock.now())
                copy = dead_letter_copy(self.sub.name, source, dlq, event, now_ms)
                progress.dead_letters.append((dlq, copy))
        self.dead_letters = []

    def row_state(self, ref: Ref) -> DeliveryRow | None:
        """The row of an event not yet committed, or held live."""
        return self.pending.get(ref) or self.rows.get(ref)
