"""Delayed events: a durable timer store with a near window held in memory.

Every delayed event waits in the store's timer table. The service keeps in a heap the timers
due within ``window`` seconds and, when one falls due, appends its event to the log in the
same transaction that deletes the timer. Far timers cost no memory until they come near.

Invariants:

* a timer's event is appended to the log at ``due - lead`` at the earliest, and pushed only
  once ``now >= due`` (never early, measured on the injected clock): the runner holds an
  event whose ``deliver_at`` is still ahead. The lead hides the append's commit and the
  dispatch behind the wait, so deliveries start on time;
* every timer due before ``loading_until`` is in the heap or being loaded: a publish adds its
  timers when they fall inside the window, the refill loads the rest, and ids already in the
  heap are skipped, so both may see the same timer;
* a timer that failed to fire stays in the store and is tried again;
* a timer left behind by another node (committed through a node that died, or into a band
  this node had read already) is fired at most ``ORPHAN_GRACE + ORPHAN_SCAN`` after its due
  time: a dispatch node that has fired all of its own overdue timers reads, every
  ``ORPHAN_SCAN``, the store's timers overdue by more than ``ORPHAN_GRACE`` (normally none:
  a timer's own node appends it ``lead`` before it is due). Several nodes may fire the same
  timer; the store's claim (delete … returning) appends it once.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable

from conveyor.clock import Alarm, Clock, to_ms
from conveyor.errors import ConveyorError
from conveyor.metrics import Metrics
from conveyor.model import Event
from conveyor.store.ports import TimersPort

log = logging.getLogger("conveyor.scheduler")

FIRE_BATCH = 5000  # timers appended per transaction
REFILL_LIMIT = 100_000  # timers loaded per refill
FULL_REFILL_EVERY = 4  # every 4th refill reads the whole window, not only its new band
RETRY_DELAY = 0.5  # seconds before firing again after a store failure
ORPHAN_SCAN = 1.0  # seconds between looks for timers that another node left overdue
ORPHAN_GRACE = 1.0  # how overdue a timer must be before a node that does not hold it fires it


class TimerService:
    """Fires delayed events when they fall due.

    Args:
        store: the durable store.
        clock: the source of time.
        metrics: the node's metrics.
        on_fire: told of the events appended to the log.
        window: seconds ahead held in memory.
        lead: seconds before their due time that timers are appended to the log.
        refill: load timers from the store (a dispatch node); without it the service fires
            only the timers this node's publishes add (a frontend-only node), and dispatch
            nodes' refills take any it leaves behind.
    """

    def __init__(
        self,
        store: TimersPort,
        clock: Clock,
        metrics: Metrics,
        on_fire: Callable[[list[Event]], None],
        *,
        window: float = 30.0,
        lead: float = 0.0,
        refill: bool = True,
    ) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        if not 0 <= lead < window:
            raise ValueError("lead must be in [0, window)")
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._on_fire = on_fire
        self._window_ms = int(window * 1000)
        self._lead_ms = int(lead * 1000)
        self._heap: list[tuple[int, str]] = []
        self._ids: set[str] = set()
        self._loading_until = 0
        self._next_refill = 0
        self._refills = 0
        self._refill_enabled = refill
        self._wake = asyncio.Event()
        self._alarm = Alarm(clock, self._wake.set)
        self._stopping = False
        self._retry_at = 0.0
        self._next_scan = 0.0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, timers: list[tuple[int, str]]) -> None:
        """Timers were committed by a publish: hold those inside the window."""
        if self._refill_enabled:
            limit = self._loading_until
        else:
            limit = to_ms(self._clock.now()) + self._window_ms
        self._hold([t for t in timers if t[0] < limit])
        if timers:
            self._wake.set()

    def stop(self) -> None:
        """Stop firing; timers stay in the store."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Fire timers until :meth:`stop`."""
        try:
            while not self._stopping:
                self._wake.clear()
                now = self._clock.now()
                if now >= self._retry_at:
                    if self._refill_enabled and to_ms(now) >= self._next_refill:
                        await self._refill(now)
                    await self._fire_due()
                    if self._refill_enabled and now >= self._next_scan:
                        await self._adopt_orphans(now)
                self._arm()
                if not self._stopping:
                    await self._wake.wait()
        finally:
            self._alarm.set(None)

    async def _refill(self, now: float) -> None:
        # A refill reads only the band that entered the window since the last one: what is
        # below it is in the heap already (this node's publishes add theirs), so a refill
        # costs what is new, not the whole window. Every FULL_REFILL_EVERY-th refill reads
        # the whole window, for timers that other nodes committed into a band already read.
        until = to_ms(now) + self._window_ms
        self._refills += 1
        start = 0 if self._refills % FULL_REFILL_EVERY == 0 else self._loading_until
        self._loading_until = max(self._loading_until, until)
        try:
            rows = await self._store.due_timers(until, REFILL_LIMIT, start)
        except ConveyorError as e:
            log.warning("loading timers failed, retrying: %s", e)
            self._loading_until = 0  # the band was not read: read the whole window next
            self._retry_at = now + RETRY_DELAY
            return
        if len(rows) == REFILL_LIMIT:
            # More are due inside the window than one refill holds: hold the earliest, and
            # load again from the last due time once time reaches it. Every loaded row goes
            # to the heap, including those at the last due time (many may share it).
            self._loading_until = rows[-1][0]
            self._next_refill = rows[-1][0]
        else:
            self._next_refill = to_ms(now) + self._window_ms // 2
        self._hold(rows)
        if rows:
            self._wake.set()

    async def _adopt_orphans(self, now: float) -> None:
        # Runs after this node fired what it holds: a timer still in the store and overdue
        # by more than the grace was left by another node (or fails to fire everywhere, and
        # then the retry path holds it anyway). Normally the query finds nothing.
        self._next_scan = now + ORPHAN_SCAN
        cutoff_ms = to_ms(now) - int(ORPHAN_GRACE * 1000)
        if self._heap and self._heap[0][0] <= cutoff_ms:
            return  # behind on its own overdue timers: those go first
        try:
            rows = await self._store.due_timers(cutoff_ms, FIRE_BATCH, 0)
        except ConveyorError as e:
            log.warning("looking for overdue timers failed: %s", e)
            return
        fresh = [row for row in rows if row[1] not in self._ids]
        if fresh:
            log.info("adopting %d timers overdue by more than %.1fs", len(fresh), ORPHAN_GRACE)
            self._metrics.timers_adopted.inc(len(fresh))
            self._hold(fresh)
            await self._fire_due()

    def _hold(self, timers: list[tuple[int, str]]) -> None:
        for due, event_id in timers:
            if event_id not in self._ids:
                self._ids.add(event_id)
                heapq.heappush(self._heap, (due, event_id))

    async def _fire_due(self) -> None:
        while self._heap and not self._stopping:
            until_ms = to_ms(self._clock.now()) + self._lead_ms
            due: list[str] = []
            while self._heap and self._heap[0][0] <= until_ms and len(due) < FIRE_BATCH:
                due.append(heapq.heappop(self._heap)[1])
            if not due:
                return
            try:
                events = await self._store.fire_timers(due)
            except ConveyorError as e:
                log.warning("firing %d timers failed, retrying: %s", len(due), e)
                for event_id in due:
                    self._ids.discard(event_id)
                # They stay in the store: the next refill reads the whole window again.
                self._loading_until = 0
                self._next_refill = 0
                self._retry_at = self._clock.now() + RETRY_DELAY
                return
            for event_id in due:
                self._ids.discard(event_id)
            self._metrics.timers_fired.inc(len(events))
            self._on_fire(events)

    def _arm(self) -> None:
        deadlines = [self._next_refill / 1000, self._next_scan] if self._refill_enabled else []
        if self._heap:
            deadlines.append((self._heap[0][0] - self._lead_ms) / 1000)
        if self._retry_at > self._clock.now():
            deadlines.append(self._retry_at)
        self._alarm.set(min(deadlines) if deadlines else None)
