"""ProgressPort: cursors and delivery rows committed together, read back as written."""

from __future__ import annotations

import contract_kit
from contract_kit import DEDUP_MS, NOW_MS, ORDERS, event, row, subscription

from conveyor.store.base import CursorState, Progress, Store
from conveyor.store.ports import ProgressPort

store_fixture = contract_kit.opened_store


async def test_committed_progress_loads_back_with_only_live_rows(store: Store) -> None:
    progress: ProgressPort = store
    sub = subscription("billing")
    await store.put_subscription(sub)
    await store.publish(ORDERS, [event(0) for _ in range(4)], NOW_MS, DEDUP_MS)
    rows = [row(1, "retrying"), row(2, "dead"), row(3, "blocked")]
    cursors = {0: CursorState(1, [(2, 3)], 0)}
    await progress.commit_progress([Progress("billing", cursors, rows)], NOW_MS)
    states, live = await progress.load_progress(sub)
    fresh = {p: CursorState(0, [], 0) for p in range(ORDERS.log_partitions)}
    assert states == {**fresh, 0: CursorState(1, [(2, 3)], 0)}
    assert [(r.offset, r.state, r.history) for r in live] == [
        (1, "retrying", rows[0].history),
        (3, "blocked", rows[2].history),
    ]
    assert await progress.count_rows("billing") == {"retrying": 1, "dead": 1, "blocked": 1}
    assert await progress.cursors_of(ORDERS, 0) == {"billing": cursors[0]}
    assert (await progress.delivery_rows(ORDERS, 0, 2))["billing"].state == "dead"


async def test_deleted_rows_are_gone_after_the_commit(store: Store) -> None:
    progress: ProgressPort = store
    await store.put_subscription(subscription("billing"))
    await store.publish(ORDERS, [event(0)], NOW_MS, DEDUP_MS)
    await progress.commit_progress([Progress("billing", rows=[row(0, "retrying")])], NOW_MS)
    await progress.commit_progress([Progress("billing", deleted=[(0, 0)])], NOW_MS)
    assert await progress.delivery_rows(ORDERS, 0, 0) == {}
    assert await progress.count_rows("billing") == {}
