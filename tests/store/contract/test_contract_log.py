"""The log ports (PublishPort, LogReadPort): what any engine must do."""

from __future__ import annotations

import contract_kit
import pytest
from contract_kit import DEDUP_MS, NOW_MS, ORDERS, event

from conveyor.errors import Conflict
from conveyor.store.ports import LogPort

store_fixture = contract_kit.opened_store


async def test_publish_appends_gap_free_offsets_readable_in_order(store: LogPort) -> None:
    first = await store.publish(ORDERS, [event(0), event(0), event(1)], NOW_MS, DEDUP_MS)
    second = await store.publish(ORDERS, [event(0)], NOW_MS, DEDUP_MS)
    assert [(s.partition, s.offset) for s in first.stored] == [(0, 0), (0, 1), (1, 0)]
    assert [(s.partition, s.offset) for s in second.stored] == [(0, 2)]
    read = await store.read_log(ORDERS, 0, 1, 10)
    assert [e.offset for e in read] == [1, 2]
    assert read[0].attributes == {"source": "contract"}
    spare = [0] * (ORDERS.log_partitions - 2)
    assert await store.log_ends(ORDERS) == [3, 1, *spare]
    heads = {("orders", p): 0 for p in range(ORDERS.log_partitions)}
    assert await store.heads() == {**heads, ("orders", 0): 3, ("orders", 1): 1}


async def test_an_event_keeps_every_field_it_was_published_with(store: LogPort) -> None:
    sent = event(1, key="k", payload=b'{"a":1}', schema_id=None)
    await store.publish(ORDERS, [sent], NOW_MS, DEDUP_MS)
    (got,) = await store.read_events(ORDERS, [(1, 0), (1, 5)])
    assert (got.id, got.topic, got.partition, got.offset, got.key) == (sent.id, "orders", 1, 0, "k")
    assert (got.payload, got.publish_ms, got.deliver_at_ms) == (b'{"a":1}', NOW_MS, None)
    assert await store.find_event(sent.id) == (got, False)
    assert await store.find_event("0" * 32) is None


async def test_a_replayed_idempotency_key_answers_the_first_result(store: LogPort) -> None:
    first = await store.publish(ORDERS, [event(idempotency_key="x")], NOW_MS, DEDUP_MS)
    again = await store.publish(ORDERS, [event(idempotency_key="x")], NOW_MS + 1, DEDUP_MS)
    assert again.stored[0].duplicate
    assert (again.stored[0].id, again.stored[0].offset) == (first.stored[0].id, 0)
    assert (await store.log_ends(ORDERS))[:2] == [1, 0]
    other = event(idempotency_key="x", payload=b'{"other":1}')
    with pytest.raises(Conflict):
        await store.publish(ORDERS, [other], NOW_MS + 2, DEDUP_MS)


async def test_a_replayed_key_of_a_delayed_event_answers_its_timer(store: LogPort) -> None:
    # The first publish is still a timer: its key's row holds no offset yet.
    delayed = event(idempotency_key="later", deliver_at_ms=NOW_MS + 1000)
    first = await store.publish(ORDERS, [delayed], NOW_MS, DEDUP_MS)
    replay = event(idempotency_key="later", deliver_at_ms=NOW_MS + 1000)
    again = await store.publish(ORDERS, [replay], NOW_MS + 1, DEDUP_MS)
    (stored,) = again.stored
    assert stored.duplicate
    assert (stored.id, stored.offset) == (first.stored[0].id, None)
    assert stored.deliver_at_ms == NOW_MS + 1000
