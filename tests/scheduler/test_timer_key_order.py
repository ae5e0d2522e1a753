"""Per-key order of delayed events across the timer store and the log (store/_key_order.py).

Same-key events enter the log in (due time, publish order), whatever fires the timers and
whenever: a node paused past the due times, a restart before the timers are loaded again, a
timer this node's service does not hold. The TimerService runs over a real store (SQLite and
PostgreSQL) and a FakeClock; a test waits (a bounded poll in real time) for what it expects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from conveyor._ids import new_id
from conveyor.clock import FakeClock, to_ms
from conveyor.metrics import Metrics
from conveyor.model import Event, Topic
from conveyor.node import open_store
from conveyor.scheduler.timers import TimerService
from conveyor.store.base import NewEvent, Store

TOPIC = Topic(name="reminders", partitions=1)  # one partition per lane: every key in log 0
LEAD = 0.1  # the service's default lead (settings.timer_lead_seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        await opened.put_topic(TOPIC)
        yield opened


def new_event(clock: FakeClock, key: str | None, deliver_at_ms: int | None) -> NewEvent:
    """An event published now, delayed when ``deliver_at_ms`` is ahead of now."""
    now_ms = to_ms(clock.now())
    delayed = deliver_at_ms is not None and deliver_at_ms > now_ms
    return NewEvent(new_id(now_ms), 0, key, None, b"{}", now_ms, deliver_at_ms, delayed)


async def publish(store: Store, clock: FakeClock, event: NewEvent) -> list[Event]:
    """Publish one event; the events its transaction appended to the log."""
    result = await store.publish(TOPIC, [event], to_ms(clock.now()), 0)
    return result.appended


async def log_ids(store: Store) -> list[str]:
    return [e.id for e in await store.read_log(TOPIC, 0, 0, 1000)]


async def timer_ids(store: Store) -> set[str]:
    return {event_id for _, event_id in await store.due_timers(2**62, 1000)}


async def until(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.002)


class Service:
    """A running TimerService and the events it reported fired."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        self.fired: list[Event] = []
        self.timers = TimerService(store, clock, Metrics(), self.fired.extend, lead=LEAD)
        self._task = asyncio.create_task(self.timers.run())

    async def stop(self) -> None:
        self.timers.stop()
        await self._task


async def test_an_overdue_publish_after_a_pause_goes_after_the_earlier_due_timer_of_its_key(
    store: Store, clock: FakeClock
) -> None:
    # Given a running service holding A (key k) due in 1 s
    service = Service(store, clock)
    t1 = to_ms(clock.now()) + 1000
    a = new_event(clock, "k", t1)
    await publish(store, clock, a)
    service.timers.add([(t1, a.id)])
    # And timers of key k due later than what follows, and of another key overdue by then
    later = new_event(clock, "k", t1 + 60_000)
    other = new_event(clock, "j", t1)
    for event in (later, other):
        await publish(store, clock, event)
        service.timers.add([(event.deliver_at_ms or 0, event.id)])

    # When the node is paused for 16 s (time moves, the service does not run), and on resume
    # B (key k, deliver_at T2 >= T1, overdue by then) is published before the service looks
    clock.advance(16)
    b = new_event(clock, "k", t1 + 500)
    appended = await publish(store, clock, b)

    # Then A entered the log ahead of B, in B's own operation, and nothing else did
    assert [e.id for e in appended] == [a.id, b.id]
    # And the service (its operation queued behind B's) fires only the other key's timer
    await until(lambda: bool(service.fired))
    await service.stop()
    assert later.id in await timer_ids(store)
    assert [e.id for e in service.fired] == [other.id]
    assert await log_ids(store) == [a.id, b.id, other.id]


async def test_after_a_restart_an_overdue_publish_goes_after_the_timers_of_its_key(
    store_url: str, clock: FakeClock
) -> None:
    # Given A then A2 (key k) due in 1 s and 2 s, and the node stopped
    async with open_store(store_url) as store:
        await store.put_topic(TOPIC)
        now_ms = to_ms(clock.now())
        a, a2 = new_event(clock, "k", now_ms + 1000), new_event(clock, "k", now_ms + 2000)
        for event in (a2, a):  # published out of due order: due order rules
            await publish(store, clock, event)
    clock.advance(20)

    # When it is started again and B (key k, no deliver_at) is published before its timer
    # service loaded anything
    async with open_store(store_url) as store:
        b = new_event(clock, "k", None)
        appended = await publish(store, clock, b)

        # Then A and A2 entered the log first, in due order, in B's transaction
        assert [e.id for e in appended] == [a.id, a2.id, b.id]
        assert await log_ids(store) == [a.id, a2.id, b.id]
        # And the service, once running, finds nothing left to fire
        service = Service(store, clock)
        await asyncio.sleep(0.05)
        await service.stop()
        assert service.fired == []
        assert await timer_ids(store) == set()


async def test_a_timer_fired_early_goes_after_an_earlier_due_timer_the_service_does_not_hold(
    store: Store, clock: FakeClock
) -> None:
    # Given a running service holding B (key k) due at T2, and A (key k) due at T1 < T2 and C
    # (key k) due with B but published after it, both published through another node (this
    # service does not hold them: it read their band of the window before they came)
    service = Service(store, clock)
    t2 = to_ms(clock.now()) + 5000
    b = new_event(clock, "k", t2)
    await publish(store, clock, b)
    service.timers.add([(t2, b.id)])
    a, c = new_event(clock, "k", t2 - 1000), new_event(clock, "k", t2)
    for event in (a, c):
        await publish(store, clock, event)

    # When the service fires B ahead of its time (the lead), A's due time has passed
    clock.advance((t2 - to_ms(clock.now())) / 1000 - LEAD)
    await until(lambda: bool(service.fired))
    await service.stop()

    # Then A went first, in the same transaction, and C (same due time, published later)
    # after B
    assert [e.id for e in service.fired] == [a.id, b.id, c.id]
    assert await log_ids(store) == [a.id, b.id, c.id]


async def test_keyless_events_and_other_keys_fire_no_timer(store: Store, clock: FakeClock) -> None:
    # Given overdue timers of key k and keyless ones
    now_ms = to_ms(clock.now())
    keyed, keyless = new_event(clock, "k", now_ms + 1000), new_event(clock, None, now_ms + 1000)
    for event in (keyed, keyless):
        await publish(store, clock, event)
    clock.advance(5)

    # When a keyless event and one of another key are published
    plain, other = new_event(clock, None, None), new_event(clock, "j", None)
    appended = [e.id for e in await publish(store, clock, plain)]
    appended += [e.id for e in await publish(store, clock, other)]

    # Then they alone are appended; the timers wait for the service
    assert appended == [plain.id, other.id]
    assert await timer_ids(store) == {keyed.id, keyless.id}
