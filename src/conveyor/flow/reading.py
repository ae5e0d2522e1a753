"""Reading: each partition's buffer of events read but not yet taken, and events read back.

A :class:`Reader` serves one subscription's partitions on this node. Each :class:`Partition`
keeps a buffer fed from the topic's appends while the runner keeps up (no read back), and
from the store when it lags; events that went out of the log's order (retries due, released
followers, redriven dead letters) are read back by reference, a batch at a time.

Invariants:

* a buffer holds events in log order, all below its partition's ``next_read``; an append
  joins the buffer only if it starts at ``next_read`` (else the store read fetches it);
* ``buffered[lane]`` is the number of events in the buffers of that lane's partitions;
* a buffer holds at most :data:`BUFFER_LIMIT` events, and a partition never reads
  :data:`WINDOW` or more offsets past its cursor (this bounds the ack set);
* at most one store read per partition, and one read back of references, are under way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field

from conveyor.flow.progress import PartitionProgress
from conveyor.model import LANES, Event, Topic, lane_of
from conveyor.scheduler.ordering import KeyLanes
from conveyor.store.base import CursorState, Store

BUFFER_LIMIT = 4096  # events held in memory per partition, read but not yet pushed
WINDOW = 20_000  # offsets a partition may run ahead of its cursor (bounds the ack set)
READ_BATCH = 2048  # events per read from the store
LOAD_BATCH = 1000  # retried or released events loaded per read

Ref = tuple[int, int]  # (partition, offset)
Loaded = Callable[[list[Ref], dict[Ref, Event]], None]  # (asked, found): takes events read back


@dataclass(slots=True, eq=False)
class Partition:
    """One log partition as a runner serves it: progress, key lanes, buffer, read position."""

    index: int
    progress: PartitionProgress
    head: int  # one past the last offset known appended
    next_read: int  # the next offset to buffer
    keys: KeyLanes | None  # per-key FIFO, for an ordered subscription
    lane: int = 0  # its priority lane (index into model.LANES)
    buffer: deque[Event] = field(default_factory=deque)
    reading: bool = False

    def backlog(self) -> int:
        """Events appended and not finished (retrying ones excluded)."""
        return max(0, self.head - self.progress.cursor - len(self.progress.acked))


class Reader:
    """The partitions a runner serves, their buffers, and the reads that fill them.

    Args:
        topic: the subscription's topic.
        store: the durable store (its log).
        wake: called when events arrive (the runner looks for work).
    """

    def __init__(self, topic: Topic, store: Store, *, wake: Callable[[], None]) -> None:
        self.topic = topic
        self._store = store
        self._wake = wake
        self.parts: dict[int, Partition] = {}
        self.order: list[Partition] = []
        self.by_lane: list[list[Partition]] = [[] for _ in LANES]
        # Invariant: the list is never replaced (takers keep a reference to it).
        self.buffered = [0] * len(LANES)
        self.to_load: list[Ref] = []  # events to read back by reference, in order
        self.opened = False
        self._loading = False
        self._pending_heads: dict[int, int] = {}  # appends seen before opening

    def open(
        self,
        cursors: Mapping[int, CursorState],
        ends: Sequence[int],
        *,
        partitions: Container[int] | None,
        ordered: bool,
    ) -> None:
        """Set up the partitions this node serves (all, when ``partitions`` is ``None``) from
        their committed cursors (a partition without one starts at the log's end)."""
        for i, end in enumerate(ends):
            if partitions is not None and i not in partitions:
                continue
            progress = PartitionProgress(cursors.get(i, CursorState(end, [], end)))
            head = max(end, self._pending_heads.get(i, 0))
            keys = KeyLanes() if ordered else None
            lane = LANES.index(lane_of(i, self.topic.partitions))
            self.parts[i] = Partition(i, progress, head, progress.cursor, keys, lane)
        self.order = list(self.parts.values())
        self.by_lane = [[p for p in self.order if p.lane == i] for i in range(len(LANES))]
        self.opened = True

    # -- input ------------------------------------------------------------------------------
    def on_append(self, partition: int, events: list[Event]) -> None:
        """Events were appended to one partition of the topic (committed, in order)."""
        last = events[-1].offset
        if not self.opened:
            self._pending_heads[partition] = max(self._pending_heads.get(partition, 0), last + 1)
            return
        p = self.parts.get(partition)
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
            self.buffered[p.lane] += len(events)
            p.next_read = last + 1
        self._wake()

    def on_head(self, partition: int, head: int) -> None:
        """A partition's head as read from the store (appends made by other nodes)."""
        p = self.parts.get(partition)
        if p is not None and head > p.head:
            p.head = head
            self._wake()

    # -- reads ------------------------------------------------------------------------------
    def start_reads(self, tg: asyncio.TaskGroup) -> None:
        """Read on in every partition that lags behind its head and has room."""
        for p in self.order:
            if (
                not p.reading
                and p.next_read < p.head
                and len(p.buffer) < BUFFER_LIMIT // 2
                and p.next_read - p.progress.cursor < WINDOW
            ):
                p.reading = True
                tg.create_task(self._read(p))

    async def _read(self, p: Partition) -> None:
        try:
            limit = min(READ_BATCH, BUFFER_LIMIT - len(p.buffer))
            events = await self._store.read_log(self.topic, p.index, p.next_read, limit)
        finally:
            p.reading = False
        if events and events[0].offset == p.next_read:
            p.buffer.extend(events)
            self.buffered[p.lane] += len(events)
            p.next_read = events[-1].offset + 1
        self._wake()

    def start_loads(self, tg: asyncio.TaskGroup, loaded: Loaded) -> None:
        """Read back the next :data:`LOAD_BATCH` of ``to_load``, unless a read back is under
        way; ``loaded`` takes what was found."""
        if self.to_load and not self._loading:
            refs = self.to_load[:LOAD_BATCH]
            del self.to_load[:LOAD_BATCH]
            self._loading = True
            tg.create_task(self._load(refs, loaded))

    async def _load(self, refs: list[Ref], loaded: Loaded) -> None:
        try:
            events = await self._store.read_events(self.topic, refs)
        finally:
            self._loading = False
        loaded(refs, {(e.partition, e.offset): e for e in events})
        self._wake()

    def drop_buffered(self, purged: int, drop: Callable[[Event], None]) -> int:
        """Drop the buffered events published before ``purged`` (a purge mark), except those
        behind their key's head (they go in order later). Returns how many were dropped."""
        dropped = 0
        for p in self.order:
            if not p.buffer:
                continue
            kept: deque[Event] = deque()
            for event in p.buffer:
                if p.progress.is_finished(event.offset):
                    continue
                if event.publish_ms >= purged:
                    kept.append(event)
                elif p.keys is None or not p.keys.holds(event.key):
                    drop(event)  # never admitted: no key to release
                    dropped += 1
                else:
                    kept.append(event)  # behind its key's head: goes in order when resumed
            self.buffered[p.lane] -= len(p.buffer) - len(kept)
            p.buffer = kept
        return dropped

    # -- queries ----------------------------------------------------------------------------
    def take_cursors(self) -> dict[int, CursorState]:
        """The cursors that moved since the last call."""
        return {p.index: p.progress.snapshot() for p in self.order if p.progress.dirty}

    def is_finished(self, partition: int, offset: int) -> bool | None:
        """Whether the in-memory progress has passed an offset (``None`` before opening)."""
        p = self.parts.get(partition)
        return None if p is None else p.progress.is_finished(offset)

    def backlog(self) -> int:
        """Unfinished events (retrying ones excluded) of all partitions served."""
        return sum(p.backlog() for p in self.order)

    def backlogs(self) -> dict[int, int]:
        """Unfinished events (retrying ones excluded) of each partition served."""
        return {p.index: p.backlog() for p in self.order}

    def oldest_unfinished(self) -> list[tuple[int, int]]:
        """(partition, cursor) of every partition with unfinished events."""
        return [(p.index, p.progress.cursor) for p in self.order if p.progress.cursor < p.head]
