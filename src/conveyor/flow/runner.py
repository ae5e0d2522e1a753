"""One subscription's flow control on this node: the parts, wired.

A :class:`Runner` serves a subscription on this node with one part per job:

* :class:`~conveyor.flow.reading.Reader` keeps each partition's buffer (fed from appends
  while it keeps up, from the store when it lags) and reads events back by reference;
* :class:`~conveyor.flow.gate.Gate` says whether anything may be pushed now (pause, purge
  mark, rate limit, a throttle's pause, the lease) and holds events not yet due;
* :class:`~conveyor.flow.batching.Batcher` takes each push's events (the ready queue, then
  lanes by weight; ordered subscriptions' keys one at a time through
  :class:`~conveyor.scheduler.ordering.KeyLanes`);
* :class:`~conveyor.flow.sending.Sender` starts pushes under the concurrency limit on the
  pool's chosen endpoint and takes their answers;
* :class:`~conveyor.flow.settling.Settler` settles every result (success, retry, dead,
  dropped) and keeps the delivery rows.

The runner's loop wakes when there is news (appends, answers, timers, endpoints) and steps:
due retries and held events back into play, reads, then pushes if the gate is open; then it
arms one timer for the earliest deadline any part has. Progress (cursors and rows) is taken
by the dispatcher and committed in batches; a crash loses only uncommitted progress, which
means redelivery (at least once), never loss.

Invariant: the parts share one ready queue of (event, attempt) going before the buffers:
retries read back, released followers, held events now due, batches given back.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.clock import Alarm, Clock, to_ms
from conveyor.delivery.endpoints import EndpointPool
from conveyor.delivery.push import Pusher
from conveyor.flow.batching import Batcher
from conveyor.flow.gate import Gate
from conveyor.flow.limiter import LimiterStats
from conveyor.flow.reading import Reader
from conveyor.flow.retry import Jitter
from conveyor.flow.rows import ROW_STATES
from conveyor.flow.sending import Sender
from conveyor.flow.settling import Settler
from conveyor.metrics import Metrics
from conveyor.model import DeliveryState, Event, Subscription, Topic
from conveyor.store.base import DeliveryRow, Progress, Store


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
        self.partitions = partitions
        self._store = store
        self._pool = pool
        self._clock = clock
        self._dead_letter = dead_letter
        self._on_dirty = functools.partial(on_dirty, self)
        self._wake = asyncio.Event()
        wake = self._wake.set
        ready: deque[tuple[Event, int]] = deque()
        self._reader = Reader(topic, store, wake=wake)
        self._settler = Settler(
            sub,
            reader=self._reader,
            ready=ready,
            clock=clock,
            jitter=jitter,
            metrics=metrics,
            on_dirty=self._on_dirty,
            wake=wake,
        )
        self._gate = Gate(
            sub,
            topic,
            clock.now(),
            partitions=partitions,
            ready=ready,
            drop=self._settler.drop,
            sweep=self._settler.drop_purged,
            lease_valid=lease_valid,
        )
        self._batcher = Batcher(
            sub, reader=self._reader, gate=self._gate, settler=self._settler, ready=ready
        )
        self._sender = Sender(
            sub,
            pool=pool,
            pusher=pusher,
            clock=clock,
            metrics=metrics,
            gate=self._gate,
            batcher=self._batcher,
            settler=self._settler,
            lease_valid=lease_valid,
            wake=wake,
        )
        self.limiter = self._sender.limiter
        self._alarm = Alarm(clock, self._wake.set)
        self._stopping = False
        self.loaded = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Events pushed and not answered."""
        return self._sender.in_flight

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the subscription until :meth:`stop`; waits for in-flight pushes at the end."""
        await self._load()
        async with asyncio.TaskGroup() as tg:
            while not self._stopping:
                self._wake.clear()
                self._step(tg)
                await self._wake.wait()
        self._alarm.set(None)

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
        self._sender.update(sub)
        self._gate.update(sub, self._clock.now())
        self._batcher.sub = sub
        self._settler.sub = sub
        purged = sub.control.purged_before_ms
        if purged is not None and purged != old.control.purged_before_ms:
            # A drain to drop: retrying events are loaded at once, to be dropped unpushed.
            self._reader.to_load.extend(self._settler.retrying())
        self._wake.set()

    def redrive(self, rows: list[DeliveryRow]) -> int:
        """Take dead events sent back by a redrive: each is delivered again from attempt 1.

        A redriven event of an ordered subscription goes outside its key's order (the
        events that followed it were delivered long ago). Returns how many were taken.
        """
        taken = self._settler.redrive(rows, to_ms(self._clock.now()))
        if taken:
            self._on_dirty()
            self._wake.set()
        return taken

    async def _load(self) -> None:
        cursors, rows = await self._store.load_progress(self.sub)
        ends = await self._store.log_ends(self.topic)
        self._reader.open(cursors, ends, partitions=self.partitions, ordered=self.sub.ordered)
        self._settler.restore(rows)
        self.loaded.set()

    # -- input ------------------------------------------------------------------------------
    def on_append(self, partition: int, events: list[Event]) -> None:
        """Events were appended to one partition of the topic (committed, in order)."""
        self._reader.on_append(partition, events)

    def on_head(self, partition: int, head: int) -> None:
        """A partition's head as read from the store (appends made by other nodes)."""
        self._reader.on_head(partition, head)

    # -- the loop's step --------------------------------------------------------------------
    def _step(self, tg: asyncio.TaskGroup) -> None:
        now = self._clock.now()
        now_ms = to_ms(now)
        self._settler.release_due(now_ms)
        self._gate.release_held(now_ms)
        self._reader.start_loads(tg, self._settler.loaded)
        self._reader.start_reads(tg)
        if not self._gate.closed(now, stopping=self._stopping):
            self._sender.start(tg, now, now_ms)
        self._arm(now)

    def _arm(self, now: float) -> None:
        """One timer, at the earliest deadline of any part (a retry or held event due, a
        lingering batch, the end of a pause, a rate refill, an endpoint coming back)."""
        deadlines = self._gate.deadlines(now, waiting=self._batcher.waiting())
        for at in (
            self._settler.next_due(),
            self._batcher.deadline(),
            self._pool.next_change(self.sub.lambda_name),
        ):
            if at is not None:
                deadlines.append(at)
        self._alarm.set(min(deadlines) if deadlines else None)

    # -- progress ---------------------------------------------------------------------------
    def take_progress(self) -> Progress | None:
        """What to commit since the last call, or ``None`` when nothing changed."""
        settler = self._settler
        cursors = self._reader.take_cursors()
        if not cursors and not settler.pending and not settler.dead_letters:
            return None
        progress = Progress(
            self.sub.name, cursors, topic=self.topic.name, epochs=dict(self.partitions or {})
        )
        name = self.sub.dead_letter_topic
        settler.take(progress, self._dead_letter(name) if name else None, self.topic)
        return progress

    # -- queries ----------------------------------------------------------------------------
    def live_state(self, partition: int, offset: int) -> DeliveryState | None:
        """What this node knows of an event beyond the store, or ``None``.

        ``running`` while pushed; otherwise the state of a row not yet committed or held live.
        """
        if self._sender.running(partition, offset):
            return DeliveryState.RUNNING
        row = self._settler.row_state((partition, offset))
        if row is None:
            return None
        return ROW_STATES.get(row.state, DeliveryState.PENDING)

    def is_finished(self, partition: int, offset: int) -> bool | None:
        """Whether the in-memory progress has passed an offset (``None`` before loading)."""
        return self._reader.is_finished(partition, offset)

    def stats(self) -> RunnerStats:
        """This subscription's figures as this node sees them now."""
        retrying = sum(1 for _ in self._settler.retrying())
        return RunnerStats(
            self._reader.backlog(),
            self._sender.in_flight,
            retrying,
            len(self._gate.held),
            self.limiter.stats(),
        )

    def partition_backlogs(self) -> dict[int, int]:
        """Unfinished events (retrying ones excluded) of each partition this runner holds."""
        return self._reader.backlogs()

    def owned_partitions(self) -> list[int]:
        """The partitions this runner dispatches."""
        return [p.index for p in self._reader.order]

    def oldest_unfinished(self) -> list[tuple[int, int]]:
        """(partition, cursor) of every partition with unfinished events."""
        return self._reader.oldest_unfinished()
