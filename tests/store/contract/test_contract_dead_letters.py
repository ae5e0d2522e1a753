"""DeadLetterPort and HousekeepingPort: rows by state, marked, redriven, and swept."""

from __future__ import annotations

import contract_kit
from contract_kit import DEDUP_MS, NOW_MS, ORDERS, event, row, subscription

from conveyor.store.base import Progress, Store
from conveyor.store.ports import DeadLetterPort, HousekeepingPort

store_fixture = contract_kit.opened_store


async def dead_rows(store: Store) -> None:
    await store.put_subscription(subscription("billing"))
    await store.publish(ORDERS, [event(0) for _ in range(3)], NOW_MS, DEDUP_MS)
    rows = [row(0, "dead", error="Timeout"), row(1, "dead", error="refused"), row(2, "retrying")]
    await store.commit_progress([Progress("billing", rows=rows)], NOW_MS)


async def test_rows_are_listed_by_state_and_error_and_marked_for_redrive(store: Store) -> None:
    letters: DeadLetterPort = store
    await dead_rows(store)
    assert [r.offset for r in await letters.list_rows("billing", "dead")] == [0, 1]
    assert [r.offset for r in await letters.list_rows("billing", "dead", error="timeout")] == [0]
    assert [r.offset for r in await letters.list_rows("billing", "dead", after=(0, 0))] == [1]
    marked = await letters.mark_rows("billing", "dead", "redrive", refs=[(0, 1)], now_ms=NOW_MS)
    assert marked == 1
    (redrive,) = await letters.redrive_requests("billing", None, 10)
    assert (redrive.offset, redrive.state, redrive.attempts) == (1, "redrive", 0)
    assert await letters.redrive_requests("billing", [], 10) == []


async def test_a_sweep_keeps_what_a_live_row_or_retention_needs(store: Store) -> None:
    sweep: HousekeepingPort = store
    await dead_rows(store)
    assert await sweep.sweep(NOW_MS + 1000, DEDUP_MS) == 0
    assert len(await store.read_log(ORDERS, 0, 0, 10)) == 3
