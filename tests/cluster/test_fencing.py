"""Fencing and concurrent writers: what the store refuses or serialises when nodes overlap.

Progress carries the lease epoch its partition was acquired under; the store refuses it once
the epoch moved on (on SQLite and PostgreSQL, ``store_url``). Appends and timers need no
lease, so two store instances on one PostgreSQL schema (two nodes) write the same partitions
at once: offsets must stay unique and gap-free, and a timer must fire once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import TypeVar

import pytest

from conveyor._ids import new_id
from conveyor.errors import LeaseLost, StoreUnavailable
from conveyor.model import Attempt, AttemptOutcome, Event, Subscription, Topic
from conveyor.node import open_store
from conveyor.store.base import CursorState, DeliveryRow, NewEvent, Progress, Store

NOW_MS = 1_700_000_000_000
TTL_MS = 10_000
ORDERS = Topic(name="orders", partitions=2)
DEAD = Topic(name="dead", partitions=1)
SUB = "billing"
MAX_ATTEMPTS = 50  # retries of writes that lost a compare-and-set, before the test gives up
T = TypeVar("T")
PG_ONLY = "two store instances on one database: a PostgreSQL deployment (SQLite is embedded)"


def event(partition: int, *, deliver_at_ms: int | None = None) -> NewEvent:
    return NewEvent(
        id=new_id(NOW_MS),
        partition=partition,
        key=None,
        attributes=None,
        payload=b"{}",
        publish_ms=NOW_MS,
        deliver_at_ms=deliver_at_ms,
        delayed=deliver_at_ms is not None,
    )


def progress(epochs: dict[int, int], *, partition: int = 0, sub: str = SUB) -> Progress:
    """Progress in ``partition``: the cursor to 3, offset 5 acked, a retrying row for 4, and
    a dead letter."""
    row = DeliveryRow(
        partition=partition,
        offset=4,
        key=None,
        state="retrying",
        attempts=1,
        next_ms=NOW_MS + 1000,
        last_error="boom",
        history=[Attempt(1, NOW_MS, AttemptOutcome.RETRY, "boom", 5)],
        updated_ms=NOW_MS,
    )
    return Progress(
        sub,
        cursors={partition: CursorState(3, [(5, 6)], 0)},
        rows=[row],
        dead_letters=[(DEAD, event(0))],
        topic=ORDERS.name,
        epochs=epochs,
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        await opened.put_topic(ORDERS)
        await opened.put_topic(DEAD)
        await opened.put_subscription(Subscription(name=SUB, topic=ORDERS.name, lambda_name="w"))
        await opened.put_subscription(
            Subscription(name="audit", topic=ORDERS.name, lambda_name="w")
        )
        await opened.publish(ORDERS, [event(p) for p in (0, 0, 0, 0, 0, 0, 1)], NOW_MS, 0)
        yield opened


async def acquire(store: Store, owner: str, partition: int = 0, *, at_ms: int = NOW_MS) -> int:
    epoch = await store.acquire_lease(ORDERS.name, partition, owner, at_ms, at_ms + TTL_MS)
    assert epoch is not None
    return epoch


async def taken_over(store: Store) -> tuple[int, int]:
    """Partition 0 acquired by a, then by b once a's lease expired: (a's epoch, b's epoch)."""
    old = await acquire(store, "a")
    new = await acquire(store, "b", at_ms=NOW_MS + TTL_MS + 1)
    return old, new


async def assert_untouched(store: Store, partition: int = 0) -> None:
    """No progress of the fixture's subscriptions was written, and no dead letter."""
    for sub, cursor in (await store.cursors_of(ORDERS, partition)).items():
        assert (cursor.cursor, cursor.acked) == (0, []), sub
        assert await store.count_rows(sub) == {}
    assert await store.log_ends(DEAD) == [0, 0, 0]


async def assert_committed(store: Store, partition: int = 0, sub: str = SUB) -> None:
    cursor = (await store.cursors_of(ORDERS, partition))[sub]
    assert (cursor.cursor, cursor.acked) == (3, [(5, 6)])
    assert await store.count_rows(sub) == {"retrying": 1}
    assert await store.log_ends(DEAD) == [1, 0, 0]


# -- fencing --------------------------------------------------------------------------------------
async def test_progress_under_an_epoch_that_moved_on_is_refused_and_writes_nothing(
    store: Store,
) -> None:
    # Given a's lease expired and b took the partition over
    old, new = await taken_over(store)
    assert new == old + 1

    # When a commits progress under its old epoch
    with pytest.raises(LeaseLost) as refused:
        await store.commit_progress([progress({0: old})], NOW_MS)

    # Then it is refused, naming the subscription, and nothing is written
    assert refused.value.subscription == SUB
    await assert_untouched(store)


async def test_progress_under_the_current_epoch_commits(store: Store) -> None:
    # Given
    _, new = await taken_over(store)

    # When
    appended = await store.commit_progress([progress({0: new})], NOW_MS)

    # Then
    assert [e.topic for e in appended] == [DEAD.name]
    await assert_committed(store)


async def test_progress_without_epochs_is_not_checked(store: Store) -> None:
    # Given a partition held by another node
    await taken_over(store)

    # When a single node (no leases) commits progress without epochs
    await store.commit_progress([progress({})], NOW_MS)

    # Then
    await assert_committed(store)


async def test_progress_writing_a_partition_it_holds_no_epoch_for_is_refused(
    store: Store,
) -> None:
    # Given a holds partition 0 and partition 1 was never leased
    epoch = await acquire(store, "a")

    # When its progress also writes partition 1
    with pytest.raises(LeaseLost):
        await store.commit_progress([progress({0: epoch}, partition=1)], NOW_MS)

    # Then
    await assert_untouched(store, partition=1)


async def test_a_batch_with_one_refused_progress_writes_none_of_it(store: Store) -> None:
    # Given a holds partition 1; partition 0 was taken over from it
    current = await acquire(store, "a", 1)
    old, _ = await taken_over(store)

    # When one commit carries a good progress and a fenced one
    with pytest.raises(LeaseLost):
        await store.commit_progress(
            [progress({1: current}, partition=1, sub="audit"), progress({0: old})], NOW_MS
        )

    # Then neither is written
    await assert_untouched(store, partition=0)
    await assert_untouched(store, partition=1)


async def test_release_then_acquire_by_the_same_owner_bumps_the_epoch(store: Store) -> None:
    # Given
    first = await acquire(store, "a")

    # When
    await store.release_lease(ORDERS.name, 0, "a", first)
    (lease,) = [x for x in await store.list_leases() if x.topic == ORDERS.name and not x.partition]
    assert (lease.owner, lease.epoch) == (None, first)
    second = await acquire(store, "a")

    # Then the old epoch is fenced off, the new one commits
    assert second == first + 1
    with pytest.raises(LeaseLost):
        await store.commit_progress([progress({0: first})], NOW_MS)
    await assert_untouched(store)
    await store.commit_progress([progress({0: second})], NOW_MS)
    await assert_committed(store)


# -- two writers on one PostgreSQL schema -------------------------------------------------------
# Only the PostgreSQL case of `store_url`: two stores on one database is a PostgreSQL setup.
POSTGRES_ONLY = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.pg)], indirect=True
)


async def two_stores(url: str, stack: AsyncExitStack) -> tuple[Store, Store]:
    """Two store instances on the same PostgreSQL schema, with the topics in place."""
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip(PG_ONLY)
    one = await stack.enter_async_context(open_store(url))
    await one.put_topic(ORDERS)
    two = await stack.enter_async_context(open_store(url))
    return one, two


async def until_stored(calls: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run every call concurrently; again those that lost a compare-and-set, until none did."""
    done: list[T] = []
    for _ in range(MAX_ATTEMPTS):
        results = await asyncio.gather(*(call() for call in calls), return_exceptions=True)
        retry = []
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, StoreUnavailable):
                retry.append(call)
            elif isinstance(result, BaseException):
                raise result
            else:
                done.append(result)
        calls = retry
        if not calls:
            return done
    pytest.fail(f"{len(calls)} writes still failing after {MAX_ATTEMPTS} attempts")


@POSTGRES_ONLY
async def test_two_writers_appending_to_the_same_partitions_keep_offsets_unique_and_gap_free(
    store_url: str,
) -> None:
    async with AsyncExitStack() as stack:
        # Given two nodes' stores on one database
        one, two = await two_stores(store_url, stack)
        events = [event(i % 2) for i in range(160)]

        def publish_via(writer: Store, ev: NewEvent) -> Callable[[], Awaitable[list[Event]]]:
            async def call() -> list[Event]:
                return (await writer.publish(ORDERS, [ev], NOW_MS, 0)).appended

            return call

        # When both publish to the same partitions at once (the losers retrying)
        calls = [publish_via((one, two)[i % 4 // 2], ev) for i, ev in enumerate(events)]
        batches = await until_stored(calls)

        # Then every publish stored its event once, at an offset no other got
        appended = [e for batch in batches for e in batch]
        assert sorted(e.id for e in appended) == sorted(ev.id for ev in events)
        refs = [(e.partition, e.offset) for e in appended]
        assert len(set(refs)) == len(refs)
        # ... and each partition's log is 0..n-1 holding exactly those events
        for part in range(ORDERS.partitions):
            log = await one.read_log(ORDERS, part, 0, 1000)
            mine = {e.id for e in appended if e.partition == part}
            assert [e.offset for e in log] == list(range(len(mine)))
            assert {e.id for e in log} == mine
            assert {(e.id, e.offset) for e in log} == {
                (e.id, e.offset) for e in appended if e.partition == part
            }
        heads = {(ORDERS.name, p): 80 if p < 2 else 0 for p in range(ORDERS.log_partitions)}
        assert await two.heads() == heads


@POSTGRES_ONLY
async def test_two_nodes_firing_the_same_timers_append_each_event_once(store_url: str) -> None:
    async with AsyncExitStack() as stack:
        # Given two nodes' stores on one database, and delayed events
        one, two = await two_stores(store_url, stack)
        fired: list[Event] = []
        ids: list[str] = []
        for _ in range(3):
            delayed = [event(i % 2, deliver_at_ms=NOW_MS + 1000) for i in range(20)]
            await one.publish(ORDERS, delayed, NOW_MS, 0)
            batch = [ev.id for ev in delayed]
            ids += batch

            # When both fire them at once (those that lost a compare-and-set again)
            results = await until_stored(
                [
                    partial(one.fire_timers, batch),
                    partial(two.fire_timers, batch),
                    partial(two.fire_timers, batch[::2]),
                ]
            )
            fired += [e for events in results for e in events]

        # Then each event was appended once in all, and no timer is left
        assert Counter(e.id for e in fired) == dict.fromkeys(ids, 1)
        logged = [e.id for part in range(2) for e in await two.read_log(ORDERS, part, 0, 1000)]
        assert sorted(logged) == sorted(ids)
        assert await one.due_timers(NOW_MS + 10**9, 1000) == []
