"""One idempotency key raced through two stores on one database (two nodes of a cluster).

Two Store objects opened on the same URL are two writers with their own connections and
transactions, as two ``conveyor serve`` processes are: on PostgreSQL their transactions
overlap; on SQLite ``BEGIN IMMEDIATE`` makes them take turns. Either way a key must be stored
once, and both publishes must answer with the one stored id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from test_store_adapters import DEDUP_MS, NOW_MS, ORDERS, event

from conveyor.errors import Conflict
from conveyor.node import open_store
from conveyor.store.base import NewEvent, PublishBatchResult, Store

ROUNDS = 6
KEYS_PER_ROUND = 50  # each round's publishes share group-committed transactions


@pytest.fixture
async def two_nodes(store_url: str) -> AsyncIterator[tuple[Store, Store]]:
    async with open_store(store_url) as a:
        await a.put_topic(ORDERS)
        async with open_store(store_url) as b:
            yield a, b


async def logged_ids(store: Store) -> list[str]:
    ids: list[str] = []
    for partition, end in enumerate(await store.log_ends(ORDERS)):
        ids += [e.id for e in await store.read_log(ORDERS, partition, 0, end + 1)]
    return ids


async def test_a_key_raced_through_two_nodes_is_stored_once_and_answered_with_one_id(
    two_nodes: tuple[Store, Store],
) -> None:
    a, b = two_nodes
    answers: list[tuple[PublishBatchResult, PublishBatchResult]] = []
    for round_ in range(ROUNDS):
        keys = [f"r{round_}-k{i}" for i in range(KEYS_PER_ROUND)]

        # Given the same request (same key, same body) sent to both nodes at once, for many
        # keys at a time, in opposite orders (each node's batch takes the keys in its order)
        def send(node: Store, key: str) -> asyncio.Task[PublishBatchResult]:
            ev = event(len(key) % 2, idempotency_key=key, digest=b"same body")
            return asyncio.ensure_future(node.publish(ORDERS, [ev], NOW_MS, DEDUP_MS))

        first = [send(a, k) for k in keys]
        second = [send(b, k) for k in reversed(keys)]
        done_a = await asyncio.gather(*first)
        done_b = list(reversed(await asyncio.gather(*second)))
        answers += zip(done_a, done_b, strict=True)

    # Then each pair was answered with one id, exactly one of the two as the original
    for one, other in answers:
        (x,), (y,) = one.stored, other.stored
        assert (x.id, x.partition, x.offset) == (y.id, y.partition, y.offset)
        assert sorted([x.duplicate, y.duplicate]) == [False, True]
    # And every key was stored once: the log holds exactly the answered ids
    ids = await logged_ids(a)
    assert len(ids) == len(set(ids)) == ROUNDS * KEYS_PER_ROUND
    assert set(ids) == {one.stored[0].id for one, _ in answers}


async def test_a_key_raced_with_two_bodies_stores_one_and_refuses_the_other(
    two_nodes: tuple[Store, Store],
) -> None:
    a, b = two_nodes
    keys = [f"k{i}" for i in range(KEYS_PER_ROUND)]

    # Given each key sent at once to both nodes, with a different body on each
    outcomes = await asyncio.gather(
        *(a.publish(ORDERS, [event(0, idempotency_key=k, digest=b"a")], NOW_MS, DEDUP_MS)
          for k in keys),
        *(b.publish(ORDERS, [event(0, idempotency_key=k, digest=b"b")], NOW_MS, DEDUP_MS)
          for k in keys),
        return_exceptions=True,
    )  # fmt: skip

    # Then per key one was stored and the other is a conflict (a 409), never both stored
    for i in range(len(keys)):
        pair = [outcomes[i], outcomes[len(keys) + i]]
        assert sum(isinstance(o, Conflict) for o in pair) == 1, pair
        assert sum(isinstance(o, PublishBatchResult) for o in pair) == 1, pair
    assert len(await logged_ids(a)) == len(keys)


async def test_a_lost_race_fails_no_other_publish_of_its_transaction(
    two_nodes: tuple[Store, Store],
) -> None:
    a, b = two_nodes
    # Given a key stored through node a
    await a.publish(ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS, DEDUP_MS)

    # When node b's transaction holds a duplicate, a conflicting reuse and new events
    results = await asyncio.gather(
        b.publish(ORDERS, [event(1)], NOW_MS, DEDUP_MS),
        b.publish(ORDERS, [event(0, idempotency_key="k", digest=b"d")], NOW_MS, DEDUP_MS),
        b.publish(ORDERS, [event(1), event(0, idempotency_key="k", digest=b"x")], NOW_MS, 1000),
        b.publish(ORDERS, [event(1, idempotency_key="new", digest=b"n")], NOW_MS, DEDUP_MS),
        return_exceptions=True,
    )

    # Then only the conflicting publish failed; the duplicate stored nothing
    assert isinstance(results[2], Conflict)
    new, duplicate, new_keyed = results[0], results[1], results[3]
    assert isinstance(new, PublishBatchResult)
    assert isinstance(new_keyed, PublishBatchResult)
    assert isinstance(duplicate, PublishBatchResult)
    assert duplicate.stored[0].duplicate
    assert duplicate.appended == []
    assert await b.log_ends(ORDERS) == [1, 2, 0, 0, 0, 0]


async def test_batches_sharing_keys_raced_through_two_nodes_store_each_key_once(
    two_nodes: tuple[Store, Store],
) -> None:
    a, b = two_nodes
    keys = [f"k{i}" for i in range(20)]

    def batch(order: list[str]) -> list[NewEvent]:
        return [event(i % 2, idempotency_key=k, digest=b"same") for i, k in enumerate(order)]

    # When the same keys go to both nodes at once, in batches of opposite key order
    results = await asyncio.gather(
        *(node.publish(ORDERS, batch(order), NOW_MS, DEDUP_MS)
          for _ in range(3)
          for node, order in ((a, keys), (b, keys[::-1]))),
    )  # fmt: skip

    # Then every key was stored once, and every answer for a key names that one event
    ids_by_key: dict[str, set[str]] = {}
    for result, order in zip(results, [keys, keys[::-1]] * 3, strict=True):
        for key, stored in zip(order, result.stored, strict=True):
            ids_by_key.setdefault(key, set()).add(stored.id)
    assert all(len(ids) == 1 for ids in ids_by_key.values()), ids_by_key
    logged = await logged_ids(a)
    assert sorted(logged) == sorted(next(iter(ids)) for ids in ids_by_key.values())
