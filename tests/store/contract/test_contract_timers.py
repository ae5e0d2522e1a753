"""TimersPort: delayed events wait as timers until fired, once."""

from __future__ import annotations

import contract_kit
from contract_kit import DEDUP_MS, NOW_MS, ORDERS, event

from conveyor.store.base import Store
from conveyor.store.ports import TimersPort

store_fixture = contract_kit.opened_store


async def test_due_timers_fire_once_into_the_log(store: Store) -> None:
    timers: TimersPort = store
    later = event(deliver_at_ms=NOW_MS + 1000)
    await store.publish(ORDERS, [later], NOW_MS, DEDUP_MS)
    assert await timers.due_timers(NOW_MS + 1000, 10) == []
    assert await timers.due_timers(NOW_MS + 1001, 10) == [(NOW_MS + 1000, later.id)]
    (fired,) = await timers.fire_timers([later.id])
    assert (fired.id, fired.offset, fired.deliver_at_ms) == (later.id, 0, NOW_MS + 1000)
    assert await timers.fire_timers([later.id, "0" * 32]) == []
    assert await timers.due_timers(NOW_MS + 10_000, 10) == []


async def test_overdue_timers_are_counted_per_partition(store: Store) -> None:
    timers: TimersPort = store
    due = [event(1, deliver_at_ms=NOW_MS + d) for d in (10, 20)]
    await store.publish(ORDERS, due, NOW_MS, DEDUP_MS)
    (overdue,) = await timers.overdue_timers(NOW_MS + 30)
    assert (overdue.topic, overdue.partition, overdue.count) == ("orders", 1, 2)
    assert overdue.oldest_due_ms == NOW_MS + 10
    assert await timers.overdue_timers(NOW_MS + 10) == []
