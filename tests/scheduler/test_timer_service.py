"""TimerService over a real SQLite store, driven by a FakeClock.

The clock moves only when a test advances it; the service then fires through the store's
writer thread, so a test waits (a bounded poll in real time) for what it expects to happen,
and gives what must not happen the same chance before asserting that it did not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from conveyor._ids import new_id
from conveyor.clock import FakeClock, to_ms
from conveyor.metrics import Metrics
from conveyor.model import Event, Topic
from conveyor.scheduler import timers
from conveyor.scheduler.timers import TimerService
from conveyor.store.base import NewEvent
from conveyor.store.sqlite import SqliteStore

TOPIC = Topic(name="reminders", partitions=1)
QUIET = 0.05  # real seconds given to something that must not happen


class Fired:
    """The events a TimerService reported, with a running service to drive."""

    def __init__(
        self, store: SqliteStore, clock: FakeClock, window: float, *, refill: bool = True
    ) -> None:
        self.events: list[Event] = []
        self._clock = clock
        self.service = TimerService(
            store, clock, Metrics(), self.events.extend, window=window, refill=refill
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]

    async def start(self, *, wait_until_armed: bool = True) -> None:
        self._task = asyncio.create_task(self.service.run())
        if wait_until_armed:
            await caught_up(self._clock)
        else:
            await asyncio.sleep(QUIET)

    async def stop(self) -> None:
        self.service.stop()
        if self._task is not None:
            await self._task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.002)


def nudge(fired: Fired) -> None:
    """Wake the service without moving time, as a publish of a far-off timer does."""
    fired.service.add([(2**62, "nudge")])


async def caught_up(clock: FakeClock) -> None:
    """Wait until the service has armed its next wake-up in the clock's future."""

    def armed_ahead() -> bool:
        deadline = clock.next_deadline()
        return deadline is not None and deadline > clock.now()

    await until(armed_ahead)


async def quietly(clock: FakeClock) -> None:
    """Give the service the chance to do what it must not do."""
    await caught_up(clock)
    await asyncio.sleep(QUIET)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "c.db") as opened:
        await opened.put_topic(TOPIC)
        yield opened


async def schedule(store: SqliteStore, clock: FakeClock, in_seconds: float) -> tuple[int, str]:
    """Publish one event due ``in_seconds`` from now; its timer (due_ms, id)."""
    now_ms = to_ms(clock.now())
    due = now_ms + round(in_seconds * 1000)
    event = NewEvent(new_id(now_ms), 0, None, None, b"{}", now_ms, due, delayed=True)
    result = await store.publish(TOPIC, [event], now_ms, 0)
    (timer,) = result.timers
    return timer


async def test_a_timer_never_fires_before_its_due_time(
    store: SqliteStore, clock: FakeClock
) -> None:
    # Given a timer due in 5 s and a running service
    due, event_id = await schedule(store, clock, 5)
    fired = Fired(store, clock, window=30)
    await fired.start()
    try:
        # When the clock reaches one millisecond before it
        clock.advance(4.999)
        nudge(fired)
        await quietly(clock)

        # Then nothing fired and the timer is still in the store
        assert fired.ids == []
        assert await store.due_timers(due + 1, 10) == [(due, event_id)]

        # When the clock reaches its due time
        clock.advance(0.001)
        await until(lambda: fired.ids == [event_id])

        # Then it was appended to the log with its due time, and left the timer store
        assert to_ms(clock.now()) == due
        assert (fired.events[0].offset, fired.events[0].deliver_at_ms) == (0, due)
        assert await store.due_timers(due + 1, 10) == []
    finally:
        await fired.stop()


async def test_due_timers_fire_in_due_order_and_later_ones_wait(
    store: SqliteStore, clock: FakeClock
) -> None:
    # Given timers due in 3, 1 and 2 s
    third = await schedule(store, clock, 3)
    first = await schedule(store, clock, 1)
    second = await schedule(store, clock, 2)
    fired = Fired(store, clock, window=30)
    await fired.start()
    try:
        # When the clock jumps 2 s
        clock.advance(2)
        await until(lambda: len(fired.ids) == 2)
        await quietly(clock)

        # Then the first two fired in due order and the third still waits
        assert fired.ids == [first[1], second[1]]
        assert await store.due_timers(third[0] + 1, 10) == [third]
    finally:
        await fired.stop()


async def test_timers_beyond_the_window_are_loaded_as_time_advances(
    store: SqliteStore, clock: FakeClock
) -> None:
    # Given a 10 s window and a timer due in 25 s
    due, event_id = await schedule(store, clock, 25)
    fired = Fired(store, clock, window=10)
    await fired.start()
    try:
        # Then it is not held in memory at first
        assert len(fired.service) == 0

        # When time advances a second at a time to one millisecond before it
        for _ in range(24):
            clock.advance(1)
            await caught_up(clock)
        clock.advance(0.999)
        nudge(fired)
        await quietly(clock)

        # Then it was loaded by a refill but has not fired
        assert len(fired.service) == 1
        assert fired.ids == []

        # When its time comes, it fires
        clock.advance(0.001)
        await until(lambda: fired.ids == [event_id])
        assert to_ms(clock.now()) == due
    finally:
        await fired.stop()


async def test_a_timer_published_inside_the_window_fires_without_waiting_for_a_refill(
    store: SqliteStore, clock: FakeClock
) -> None:
    # Given a running service with a 30 s window that has loaded an empty store
    fired = Fired(store, clock, window=30)
    await fired.start()
    try:
        # When a timer due in 2 s is committed and handed to the service
        timer = await schedule(store, clock, 2)
        fired.service.add([timer])

        # Then it fires when due, long before the next refill (at 15 s)
        clock.advance(2)
        await until(lambda: fired.ids == [timer[1]])
    finally:
        await fired.stop()


async def test_a_restarted_service_fires_the_timers_still_pending(
    tmp_path: Path, store: SqliteStore, clock: FakeClock
) -> None:
    # Given a timer due in 5 s, and a service that stopped before it was due
    _, event_id = await schedule(store, clock, 5)
    before = Fired(store, clock, window=30)
    await before.start()
    clock.advance(1)
    await before.stop()
    await store.aclose()

    # When a new service runs over the reopened store and the time comes
    async with SqliteStore(tmp_path / "c.db") as reopened:
        after = Fired(reopened, clock, window=30)
        await after.start()
        try:
            clock.advance(3.999)
            nudge(after)
            await quietly(clock)
            assert after.ids == []
            clock.advance(0.001)

            # Then the new service fires it, once
            await until(lambda: after.ids == [event_id])
            assert before.ids == []
            assert await reopened.log_ends(TOPIC) == [1, 0, 0]
        finally:
            await after.stop()


async def test_more_timers_due_at_one_instant_than_a_refill_loads_all_fire(
    store: SqliteStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a refill that loads at most 3 timers, and 5 timers due at the same instant
    monkeypatch.setattr(timers, "REFILL_LIMIT", 3)
    now_ms = to_ms(clock.now())
    due = now_ms + 1000
    events = [NewEvent(new_id(now_ms), 0, None, None, b"{}", now_ms, due, True) for _ in range(5)]
    await store.publish(TOPIC, events, now_ms, 0)
    fired = Fired(store, clock, window=30)
    await fired.start(wait_until_armed=False)
    try:
        # When their time comes, and time goes on
        clock.advance(1)
        for _ in range(20):
            clock.advance(0.001)
            await settle()
            await asyncio.sleep(0.005)
            if len(fired.ids) == 5:
                break

        # Then every one of them fired
        assert sorted(fired.ids) == sorted(e.id for e in events)
    finally:
        await fired.stop()


async def test_a_refill_reads_only_the_band_new_in_the_window_and_a_full_one_reads_it_all(
    store: SqliteStore, clock: FakeClock
) -> None:
    # Given a service with a 10 s window that has read it once (refills every 5 s)
    reads: list[tuple[int, int]] = []
    due_timers = store.due_timers

    async def observed(until_ms: int, limit: int, from_ms: int = 0) -> list[tuple[int, str]]:
        if until_ms > to_ms(clock.now()):  # a refill (the orphan scan reads the past)
            reads.append((from_ms, until_ms))
        return await due_timers(until_ms, limit, from_ms)

    store.due_timers = observed  # type: ignore[method-assign]
    fired = Fired(store, clock, window=10)
    await fired.start()
    start_ms = to_ms(clock.now())
    try:
        # When time moves on refill by refill
        for _ in range(3):
            clock.advance(5)
            await caught_up(clock)

        # Then the next two refills read only their new 5 s band, and the fourth the whole
        # window
        assert reads == [
            (0, start_ms + 10_000),
            (start_ms + 10_000, start_ms + 15_000),
            (start_ms + 15_000, start_ms + 20_000),
            (0, start_ms + 25_000),
        ]
    finally:
        await fired.stop()


@pytest.mark.parametrize("due_in", [0.5, 7.0])
async def test_a_timer_another_node_left_behind_fires_soon_after_its_due_time(
    store: SqliteStore, clock: FakeClock, tmp_path: Path, due_in: float
) -> None:
    # Given a service with a 10 s window that has read it once
    fired = Fired(store, clock, window=10)
    await fired.start()
    try:
        # When another node commits a timer into that band and dies before firing it
        # (no add() on this node)
        async with SqliteStore(tmp_path / "c.db") as other:
            now_ms = to_ms(clock.now())
            due_ms = now_ms + round(due_in * 1000)
            stray = NewEvent(new_id(now_ms), 0, None, None, b"{}", now_ms, due_ms, True)
            await other.publish(TOPIC, [stray], now_ms, 0)

        # Then it has not fired by its grace after its due time ...
        while to_ms(clock.now()) < due_ms + timers.ORPHAN_GRACE * 1000:
            clock.advance(0.25)
            await quietly(clock)
        assert fired.ids == []

        # ... and has fired within one scan more, long before the next full refill (20 s)
        for _ in range(round(timers.ORPHAN_SCAN / 0.25) + 1):
            clock.advance(0.25)
            await caught_up(clock)
        await until(lambda: fired.ids == [stray.id])
        latest_ms = due_ms + (timers.ORPHAN_GRACE + timers.ORPHAN_SCAN) * 1000 + 250
        assert to_ms(clock.now()) <= latest_ms
        assert await store.due_timers(2**62, 10) == []
    finally:
        await fired.stop()


async def test_a_frontend_only_service_fires_its_own_timers_and_never_reads_the_store(
    store: SqliteStore, clock: FakeClock
) -> None:
    # Given a timer already in the store, and a service that does not refill
    await schedule(store, clock, 1)
    fired = Fired(store, clock, window=10, refill=False)
    await fired.start(wait_until_armed=False)
    try:
        # When this node publishes a timer due in 2 s and one due in 60 s
        due, event_id = await schedule(store, clock, 2)
        far = await schedule(store, clock, 60)
        fired.service.add([(due, event_id), far])

        # Then it holds only the near one of its own, and fires it at its time
        assert len(fired.service) == 1
        clock.advance(2)
        await until(lambda: fired.ids == [event_id])
        clock.advance(60)
        await asyncio.sleep(QUIET)
        assert fired.ids == [event_id]  # the others are left to the dispatch nodes
        assert len(await store.due_timers(2**62, 10)) == 2
    finally:
        await fired.stop()


async def test_timers_due_at_the_same_millisecond_fire_in_publish_order(
    store: SqliteStore, clock: FakeClock
) -> None:
    # Given one publish of 50 events of one key, all due at the same millisecond
    now_ms = to_ms(clock.now())
    events = [
        NewEvent(new_id(now_ms), 0, "k", None, str(i).encode(), now_ms, now_ms + 1000, True)
        for i in range(50)
    ]
    await store.publish(TOPIC, events, now_ms, 0)
    fired = Fired(store, clock, window=10)
    await fired.start()
    try:
        # When they fire
        clock.advance(1)
        await until(lambda: len(fired.ids) == 50)

        # Then the log holds them in publish order
        assert fired.ids == [e.id for e in events]
        logged = await store.read_log(TOPIC, 0, 0, 100)
        assert [e.payload for e in logged] == [str(i).encode() for i in range(50)]
    finally:
        await fired.stop()
