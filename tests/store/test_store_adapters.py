"""Every store adapter against a real database: SQLite in a temporary directory, PostgreSQL.

Every test opens the store at ``store_url`` (one per adapter, see ``tests/conftest.py``);
durability claims are checked by closing the store and opening the same URL again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from conveyor._ids import new_id
from conveyor.errors import Conflict, StoreUnavailable
from conveyor.model import Attempt, AttemptOutcome, Subscription, Topic
from conveyor.node import open_store
from conveyor.store.base import (
    CursorState,
    DeliveryRow,
    Endpoint,
    GroupCommit,
    NewEvent,
    Progress,
    Store,
)
from conveyor.store.sql import SqlStore

NOW_MS = 1_700_000_000_000
DEDUP_MS = 60_000
ORDERS = Topic(name="orders", partitions=2, retention_seconds=60)


def event(
    partition: int = 0,
    *,
    key: str | None = None,
    payload: bytes = b"{}",
    idempotency_key: str | None = None,
    digest: bytes | None = None,
    deliver_at_ms: int | None = None,
    publish_ms: int = NOW_MS,
) -> NewEvent:
    """A new event; delayed when ``deliver_at_ms`` is after ``publish_ms``."""
    return NewEvent(
        id=new_id(publish_ms),
        partition=partition,
        key=key,
        attributes={"source": "test"},
        payload=payload,
        publish_ms=publish_ms,
        deliver_at_ms=deliver_at_ms,
        delayed=deliver_at_ms is not None and deliver_at_ms > publish_ms,
        idempotency_key=idempotency_key,
        digest=digest,
    )


def row(offset: int, state: str, *, partition: int = 0, next_ms: int | None = None) -> DeliveryRow:
    """A delivery row with one failed attempt in its history."""
    return DeliveryRow(
        partition=partition,
        offset=offset,
        key="k",
        state=state,
        attempts=1,
        next_ms=next_ms,
        last_error="boom",
        history=[Attempt(1, NOW_MS, AttemptOutcome.RETRY, "boom", 5)],
        updated_ms=NOW_MS,
    )


def subscription(name: str, topic: str = "orders") -> Subscription:
    return Subscription(name=name, topic=topic, lambda_name="worker")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        await opened.put_topic(ORDERS)
        yield opened


async def reopened(store: Store, url: str) -> Store:
    """Close ``store`` and open the same store again."""
    await store.aclose()
    return await open_store(url).__aenter__()


# -- offsets ------------------------------------------------------------------------------------
async def test_offsets_are_gap_free_from_zero_per_partition_under_concurrent_publishes(
    store: Store, store_url: str
) -> None:
    # Given 50 publishes racing for two partitions
    events = [event(i % 2) for i in range(50)]

    # When they are all published at once
    results = await asyncio.gather(*(store.publish(ORDERS, [e], NOW_MS, DEDUP_MS) for e in events))

    # Then each partition's offsets are exactly 0..24, one per event
    by_partition: dict[int, list[int]] = {0: [], 1: []}
    for result in results:
        (stored,) = result.stored
        assert stored.partition is not None
        assert stored.offset is not None
        by_partition[stored.partition].append(stored.offset)
    assert sorted(by_partition[0]) == list(range(25))
    assert sorted(by_partition[1]) == list(range(25))
    assert await store.log_ends(ORDERS) == [25, 25, 0, 0, 0, 0]
    logged = await store.read_log(ORDERS, 0, 0, 100)
    assert [e.offset for e in logged] == list(range(25))

    # And they survive reopening the store, where the next append takes the next offset
    again = await reopened(store, store_url)
    try:
        assert await again.log_ends(ORDERS) == [25, 25, 0, 0, 0, 0]
        assert [e.id for e in await again.read_log(ORDERS, 0, 0, 100)] == [e.id for e in logged]
        later = await again.publish(ORDERS, [event(0)], NOW_MS, DEDUP_MS)
        assert later.stored[0].offset == 25
    finally:
        await again.aclose()


@pytest.mark.parametrize("size", [1, 2, 127, 128, 129, 255, 1000])
async def test_a_batch_of_any_size_is_logged_whole_in_order(store: Store, size: int) -> None:
    # Given one batch of ``size`` events (the SQLite adapter writes it in multi-row INSERTs
    # of 128 rows and then powers of two; PostgreSQL by COPY)
    events = [event(0, payload=b'{"n": %d}' % n) for n in range(size)]

    # When it is published
    result = await store.publish(ORDERS, events, NOW_MS, DEDUP_MS)

    # Then every event is in the log once, at its offset, with its own fields
    assert [s.offset for s in result.stored] == list(range(size))
    logged = await store.read_log(ORDERS, 0, 0, size + 10)
    assert [(e.offset, e.id, e.payload) for e in logged] == [
        (n, e.id, e.payload) for n, e in enumerate(events)
    ]
    assert {(e.attributes or {}).get("source") for e in logged} == {"test"}


# -- atomicity and idempotency --------------------------------------------------------------------
async def test_a_batch_whose_idempotency_key_conflicts_stores_nothing(store: Store) -> None:
    # Given a batch of three, whose first and last reuse one key for different events
    first = event(0, idempotency_key="k", digest=b"a")
    middle = event(0)
    last = event(0, idempotency_key="k", digest=b"b")

    # When it is published
    with pytest.raises(Conflict, match="idempotency key"):
        await store.publish(ORDERS, [first, middle, last], NOW_MS, DEDUP_MS)

    # Then nothing was stored, not even the valid events
    assert await store.log_ends(ORDERS) == [0, 0, 0, 0, 0, 0]
    assert await store.find_event(first.id) is None
    assert await store.find_event(middle.id) is None
    # And the offsets the failed batch took are given out again (no gap)
    retry = await store.publish(ORDERS, [event(0, idempotency_key="k", digest=b"a")], NOW_MS, 0)
    assert retry.stored[0].offset == 0
    assert not retry.stored[0].duplicate


async def test_a_replayed_idempotency_key_returns_the_first_result_and_stores_nothing(
    store: Store,
) -> None:
    # Given an event published with an idempotency key
    first = await store.publish(
        ORDERS, [event(1, idempotency_key="k", digest=b"d")], NOW_MS, DEDUP_MS
    )

    # When the same request is published again under a new id, within the window
    replay = await store.publish(
        ORDERS, [event(1, idempotency_key="k", digest=b"d")], NOW_MS + DEDUP_MS, DEDUP_MS
    )

    # Then the first id and offset come back as a duplicate and nothing was appended
    (original,) = first.stored
    (duplicate,) = replay.stored
    assert duplicate.duplicate
    assert (duplicate.id, duplicate.partition, duplicate.offset) == (
        original.id,
        original.partition,
        original.offset,
    )
    assert replay.appended == []
    assert await store.log_ends(ORDERS) == [0, 1, 0, 0, 0, 0]


async def test_an_idempotency_key_reused_for_another_event_conflicts(store: Store) -> None:
    # Given an event published with an idempotency key
    await store.publish(ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS, DEDUP_MS)

    # When another event is published under the same key
    with pytest.raises(Conflict):
        await store.publish(
            ORDERS, [event(0, idempotency_key="k", digest=b"other")], NOW_MS, DEDUP_MS
        )

    # Then only the first was stored
    assert await store.log_ends(ORDERS) == [1, 0, 0, 0, 0, 0]


async def test_an_idempotency_key_expires_after_the_dedup_window(store: Store) -> None:
    # Given an event published with an idempotency key
    first = await store.publish(
        ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS, DEDUP_MS
    )

    # When the same request comes exactly at the window's end, and again one ms later
    at_edge = await store.publish(
        ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS + DEDUP_MS, DEDUP_MS
    )
    after = await store.publish(
        ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS + DEDUP_MS + 1, DEDUP_MS
    )

    # Then the first is still a duplicate, the second is stored as a new event
    assert at_edge.stored[0].duplicate
    assert not after.stored[0].duplicate
    assert after.stored[0].id != first.stored[0].id
    assert after.stored[0].offset == 1
    assert await store.log_ends(ORDERS) == [2, 0, 0, 0, 0, 0]


# -- timers ---------------------------------------------------------------------------------------
async def test_a_delayed_event_waits_in_the_timers_until_fired(store: Store) -> None:
    # Given one immediate event and one due in five seconds
    due = NOW_MS + 5000
    now = event(1)
    later = event(1, deliver_at_ms=due)

    # When both are published
    result = await store.publish(ORDERS, [now, later], NOW_MS, DEDUP_MS)

    # Then only the immediate one is in the log; the delayed one is a timer
    assert [e.id for e in result.appended] == [now.id]
    assert result.timers == [(due, later.id)]
    assert (result.stored[1].partition, result.stored[1].offset) == (None, None)
    assert await store.log_ends(ORDERS) == [0, 1, 0, 0, 0, 0]
    found = await store.find_event(later.id)
    assert found is not None
    assert found[1] is True
    assert await store.due_timers(due, 10) == []
    assert await store.due_timers(due + 1, 10) == [(due, later.id)]

    # When the timer fires
    fired = await store.fire_timers([later.id])

    # Then its event is appended at the next offset and the timer is gone
    assert [(e.id, e.partition, e.offset, e.deliver_at_ms) for e in fired] == [
        (later.id, 1, 1, due)
    ]
    assert await store.log_ends(ORDERS) == [0, 2, 0, 0, 0, 0]
    assert await store.due_timers(due + 1, 10) == []
    found = await store.find_event(later.id)
    assert found is not None
    assert (found[0].offset, found[1]) == (1, False)


async def test_firing_unknown_or_already_fired_timers_is_a_no_op(store: Store) -> None:
    # Given a timer that has fired
    delayed = event(0, deliver_at_ms=NOW_MS + 1000)
    await store.publish(ORDERS, [delayed], NOW_MS, DEDUP_MS)
    assert len(await store.fire_timers([delayed.id])) == 1

    # When it, and an id never seen, are fired
    fired = await store.fire_timers([delayed.id, new_id(NOW_MS)])

    # Then nothing is appended
    assert fired == []
    assert await store.log_ends(ORDERS) == [1, 0, 0, 0, 0, 0]


# -- catalog --------------------------------------------------------------------------------------
async def test_put_topic_updates_in_place_but_refuses_a_partition_change(
    store: Store,
) -> None:
    # Given the topic with two partitions
    # When it is put again with a longer retention
    created = await store.put_topic(Topic(name="orders", partitions=2, retention_seconds=120))

    # Then it is updated, not created
    assert created is False
    assert [t.retention_seconds for t in await store.list_topics()] == [120]

    # When it is put with another partition count
    with pytest.raises(Conflict, match="partitions"):
        await store.put_topic(Topic(name="orders", partitions=3))

    # Then the topic keeps its two partitions
    assert [t.partitions for t in await store.list_topics()] == [2]
    assert await store.log_ends(ORDERS) == [0, 0, 0, 0, 0, 0]


async def test_a_new_subscription_starts_its_cursors_at_the_log_end(store: Store) -> None:
    # Given three events in partition 0 and one in partition 1
    await store.publish(ORDERS, [event(0), event(0), event(0), event(1)], NOW_MS, DEDUP_MS)

    # When a subscription is created, then put again after more events
    created = await store.put_subscription(subscription("billing"))
    await store.publish(ORDERS, [event(0)], NOW_MS, DEDUP_MS)
    updated = await store.put_subscription(subscription("billing"))

    # Then its cursors start at the log end as it was at creation, and the update kept them
    assert (created, updated) == (True, False)
    cursors, rows = await store.load_progress(subscription("billing"))
    empty_lanes = {p: CursorState(0, [], 0) for p in range(2, 6)}
    assert cursors == {0: CursorState(3, [], 3), 1: CursorState(1, [], 1), **empty_lanes}
    assert rows == []


async def test_a_subscription_cannot_move_to_another_topic(store: Store) -> None:
    # Given a subscription of "orders" and another topic
    await store.put_topic(Topic(name="refunds"))
    await store.put_subscription(subscription("billing"))

    # When it is put again for "refunds"
    with pytest.raises(Conflict, match="cannot move"):
        await store.put_subscription(subscription("billing", topic="refunds"))

    # Then it still reads "orders"
    assert [s.topic for s in await store.list_subscriptions()] == ["orders"]


# -- progress -------------------------------------------------------------------------------------
async def test_committed_progress_survives_a_reopen_and_loads_only_live_rows(
    store: Store, store_url: str
) -> None:
    # Given a subscription and six events in partition 0
    sub = subscription("billing")
    await store.put_subscription(sub)
    await store.publish(ORDERS, [event(0) for _ in range(6)], NOW_MS, DEDUP_MS)

    # When a cursor with acked ranges and rows in every state is committed
    await store.commit_progress(
        [
            Progress(
                "billing",
                cursors={0: CursorState(4, [(5, 6)], 0)},
                rows=[
                    row(0, "retrying", next_ms=NOW_MS + 1000),
                    row(1, "blocked"),
                    row(2, "dead"),
                    row(3, "succeeded"),
                ],
            )
        ],
        NOW_MS,
    )

    # Then after a reopen the cursor, its ranges and the live rows come back, intact
    again = await reopened(store, store_url)
    try:
        cursors, rows = await again.load_progress(sub)
        assert cursors[0] == CursorState(4, [(5, 6)], 0)
        assert rows == [row(0, "retrying", next_ms=NOW_MS + 1000), row(1, "blocked")]
        assert await again.count_rows("billing") == {
            "retrying": 1,
            "blocked": 1,
            "dead": 1,
            "succeeded": 1,
        }
        assert await again.delivery_rows(ORDERS, 0, 2) == {"billing": row(2, "dead")}

        # When a row is deleted
        await again.commit_progress([Progress("billing", deleted=[(0, 0)])], NOW_MS)

        # Then it is gone
        _, rows = await again.load_progress(sub)
        assert [r.offset for r in rows] == [1]
    finally:
        await again.aclose()


async def test_committed_dead_letters_are_appended_to_their_topic(store: Store) -> None:
    # Given a dead-letter topic
    dlq = Topic(name="orders-dlq", partitions=1)
    await store.put_topic(dlq)
    await store.put_subscription(subscription("billing"))
    copy = event(0, payload=b'{"n":1}')

    # When progress carrying a dead letter is committed
    appended = await store.commit_progress(
        [Progress("billing", rows=[row(0, "dead")], dead_letters=[(dlq, copy)])], NOW_MS
    )

    # Then the copy is in the dead-letter topic's log
    assert [(e.id, e.topic, e.offset, e.payload) for e in appended] == [
        (copy.id, "orders-dlq", 0, b'{"n":1}')
    ]
    assert await store.log_ends(dlq) == [1, 0, 0]


async def test_deleting_a_subscription_removes_its_cursors_and_rows(store: Store) -> None:
    # Given a subscription with progress, and another one
    await store.put_subscription(subscription("billing"))
    await store.put_subscription(subscription("audit"))
    await store.commit_progress(
        [
            Progress("billing", rows=[row(0, "retrying", next_ms=NOW_MS)]),
            Progress("audit", rows=[row(0, "blocked")]),
        ],
        NOW_MS,
    )

    # When the first is deleted, twice
    deleted = await store.delete_subscription("billing")
    again = await store.delete_subscription("billing")

    # Then its cursors and rows are gone and the other's are kept
    assert (deleted, again) == (True, False)
    assert await store.load_progress(subscription("billing")) == ({}, [])
    assert await store.count_rows("billing") == {}
    assert await store.count_rows("audit") == {"blocked": 1}
    assert [s.name for s in await store.list_subscriptions()] == ["audit"]


# -- housekeeping ---------------------------------------------------------------------------------
async def test_sweep_removes_old_events_only_below_every_cursor(store: Store) -> None:
    # Given two subscriptions, four old events in partition 0, and cursors at 3 and 2
    await store.put_subscription(subscription("billing"))
    await store.put_subscription(subscription("audit"))
    events = [event(0) for _ in range(4)]
    await store.publish(ORDERS, events, NOW_MS, DEDUP_MS)
    await store.commit_progress(
        [
            Progress("billing", cursors={0: CursorState(3, [], 0)}),
            Progress("audit", cursors={0: CursorState(2, [], 0)}),
        ],
        NOW_MS,
    )

    # When the sweep runs past the topic's retention
    removed = await store.sweep(NOW_MS + ORDERS.retention_seconds * 1000 + 1, DEDUP_MS)

    # Then the events below both cursors are gone; those at or above a cursor are kept
    assert removed == 2
    assert [e.offset for e in await store.read_log(ORDERS, 0, 0, 10)] == [2, 3]
    assert await store.find_event(events[0].id) is None
    assert await store.log_ends(ORDERS) == [4, 0, 0, 0, 0, 0]


async def test_sweep_keeps_events_inside_retention_and_those_owned_by_live_rows(
    store: Store,
) -> None:
    # Given a finished subscription whose event 1 still waits for a retry
    await store.put_subscription(subscription("billing"))
    await store.publish(ORDERS, [event(0) for _ in range(3)], NOW_MS, DEDUP_MS)
    await store.publish(ORDERS, [event(0)], NOW_MS + 30_000, DEDUP_MS)
    await store.commit_progress(
        [
            Progress(
                "billing",
                cursors={0: CursorState(4, [], 0)},
                rows=[row(1, "retrying", next_ms=NOW_MS)],
            )
        ],
        NOW_MS,
    )

    # When the sweep runs after the first three are past retention, not the fourth
    removed = await store.sweep(NOW_MS + ORDERS.retention_seconds * 1000 + 1, DEDUP_MS)

    # Then only event 0 is removed: 1 is owned by its row, 3 is young
    assert removed == 1
    assert [e.offset for e in await store.read_log(ORDERS, 0, 0, 10)] == [1, 2, 3]


async def test_sweep_forgets_expired_idempotency_keys(store: Store) -> None:
    # Given an event published with an idempotency key
    first = await store.publish(ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS, 0)

    # When the sweep runs after the dedup window, and the request is replayed in a window
    # that would still cover the original
    await store.sweep(NOW_MS + DEDUP_MS + 1, DEDUP_MS)
    replay = await store.publish(
        ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS + DEDUP_MS + 1, 10 * DEDUP_MS
    )

    # Then the key was gone: the replay is stored as a new event
    assert not replay.stored[0].duplicate
    assert replay.stored[0].id != first.stored[0].id


async def test_find_event_finds_log_and_timer_events(store: Store) -> None:
    # Given one logged and one delayed event
    logged = event(1, payload=b'{"a":1}')
    delayed = event(0, deliver_at_ms=NOW_MS + 10_000)
    await store.publish(ORDERS, [logged, delayed], NOW_MS, DEDUP_MS)

    # When both are looked up, and an unknown id
    found_logged = await store.find_event(logged.id)
    found_delayed = await store.find_event(delayed.id)
    missing = await store.find_event(new_id(NOW_MS))

    # Then the logged one is in the log, the delayed one waits for its time
    assert found_logged is not None
    assert found_delayed is not None
    assert (found_logged[0].topic, found_logged[0].partition, found_logged[0].offset) == (
        "orders",
        1,
        0,
    )
    assert (found_logged[0].payload, found_logged[0].attributes) == (b'{"a":1}', {"source": "test"})
    assert found_logged[1] is False
    assert (found_delayed[0].deliver_at_ms, found_delayed[1]) == (NOW_MS + 10_000, True)
    assert missing is None


# -- group commit ---------------------------------------------------------------------------------
async def test_a_failing_operation_rolls_back_alone_inside_a_shared_transaction(
    store: Store, store_url: str
) -> None:
    # Given the store's transactions are observed
    sizes: list[int] = []
    # (a store internal, wrapped to count the operations per transaction; every adapter is
    # a SqlStore)
    assert isinstance(store, SqlStore)
    execute = store._commit._execute

    async def observed(ops: list[Callable[[], object]]) -> list[object]:
        sizes.append(len(ops))
        return await execute(ops)

    store._commit._execute = observed
    good_a, good_b = event(0), event(0)
    # (its first event takes an offset before its duplicate key fails the publish)
    bad = [event(0, idempotency_key="k", digest=b"1"), event(0, idempotency_key="k", digest=b"2")]

    # When a good, a failing and a good publish go to the store together
    outcomes = await asyncio.gather(
        store.publish(ORDERS, [good_a], NOW_MS, DEDUP_MS),
        store.publish(ORDERS, bad, NOW_MS, DEDUP_MS),
        store.publish(ORDERS, [good_b], NOW_MS, DEDUP_MS),
        return_exceptions=True,
    )

    # Then they shared one transaction, only the middle one failed, and offsets have no gap
    assert sizes == [3]
    assert isinstance(outcomes[1], Conflict)
    assert [e.id for e in await store.read_log(ORDERS, 0, 0, 10)] == [good_a.id, good_b.id]
    again = await reopened(store, store_url)
    try:
        assert await again.log_ends(ORDERS) == [2, 0, 0, 0, 0, 0]
    finally:
        await again.aclose()


async def test_group_commit_settles_each_operation_with_its_own_result() -> None:
    # Given a group commit over an execute function that records its batches
    batches: list[int] = []

    async def execute(ops: list[Callable[[], object]]) -> list[object]:
        batches.append(len(ops))
        results: list[object] = []
        for op in ops:
            try:
                results.append(op())
            except Exception as e:
                results.append(e)
        return results

    def fail() -> int:
        raise ValueError("this one only")

    commit = GroupCommit(execute)
    commit.start()

    # When three operations are submitted together, the middle one raising
    try:
        outcomes = await asyncio.gather(
            commit.submit(lambda: 1),
            commit.submit(fail),
            commit.submit(lambda: 3),
            return_exceptions=True,
        )
    finally:
        await commit.aclose()

    # Then they ran in one batch and only the middle one failed
    assert batches == [3]
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == 3


async def test_group_commit_acknowledges_nothing_before_the_transaction_is_durable() -> None:
    # Given an execute function whose commit waits to be released
    durable = asyncio.Event()

    async def execute(ops: list[Callable[[], object]]) -> list[object]:
        results = [op() for op in ops]
        await durable.wait()
        return results

    commit = GroupCommit(execute)
    commit.start()
    try:
        # When an operation is submitted and has run
        submitted = asyncio.ensure_future(commit.submit(lambda: "done"))
        for _ in range(10):
            await asyncio.sleep(0)

        # Then it is not acknowledged until the commit completes
        assert not submitted.done()
        durable.set()
        assert await submitted == "done"
    finally:
        durable.set()
        await commit.aclose()


async def test_a_failed_commit_fails_every_operation_with_store_unavailable() -> None:
    # Given an execute function whose commit fails

    async def execute(ops: list[Callable[[], object]]) -> list[object]:
        raise OSError("disk full")

    commit = GroupCommit(execute)
    commit.start()

    # When two operations are submitted together
    try:
        outcomes = await asyncio.gather(
            commit.submit(lambda: 1), commit.submit(lambda: 2), return_exceptions=True
        )
    finally:
        await commit.aclose()

    # Then both fail as StoreUnavailable, chained to the cause
    for outcome in outcomes:
        assert isinstance(outcome, StoreUnavailable)
        assert isinstance(outcome.__cause__, OSError)
    # And nothing is taken once closed
    never: Awaitable[int] = commit.submit(lambda: 3)
    with pytest.raises(StoreUnavailable, match="closed"):
        await never


async def test_endpoints_keep_their_place_version_health_url_and_static_flag(
    store: Store, store_url: str
) -> None:
    # Given a worker's endpoint and a static one
    worker = Endpoint(
        "billing", "w1", "http://10.0.0.5:9000/push", NOW_MS + 15_000, 16,
        "aws/us-east-1/us-east-1a", "2.1.0", False, "http://10.0.0.5:9000/health",
    )  # fmt: skip
    static = Endpoint("billing", "svc", "https://billing.internal/push", 0, 64, static=True)
    await store.put_endpoint(worker)
    await store.put_endpoint(static)
    # When the worker moves and upgrades, and the store is reopened
    moved = Endpoint(
        "billing", "w1", "http://10.0.0.5:9000/push", NOW_MS + 30_000, 16,
        "aws/us-east-1/us-east-1b", "2.2.0", False, "http://10.0.0.5:9000/health",
    )  # fmt: skip
    await store.put_endpoint(moved)
    again = await reopened(store, store_url)
    try:
        # Then
        assert sorted(await again.list_endpoints(), key=lambda e: e.id) == [static, moved]
        assert await again.delete_endpoint("billing", "svc")
        assert await again.list_endpoints() == [moved]
    finally:
        await again.aclose()
