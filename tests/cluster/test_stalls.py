"""A stalled node (GC pause, SIGSTOP) must not stall the cluster; nodes may start together.

PostgreSQL only: these are properties of a shared database.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import psycopg
import pytest

from conveyor.clock import FakeClock, to_ms
from conveyor.cluster import LeaseManager
from conveyor.errors import StoreUnavailable
from conveyor.model import Topic
from conveyor.node import open_store
from conveyor.store.sql import SqlStore

PG_ONLY = "several processes on one database: a PostgreSQL deployment (SQLite is embedded)"
# Only the PostgreSQL case of `store_url`.
pytestmark = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.pg)], indirect=True
)


def pg_only(url: str) -> None:
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip(PG_ONLY)


async def test_nodes_starting_together_on_an_empty_database_migrate_once(store_url: str) -> None:
    # Given an empty schema
    pg_only(store_url)
    async with AsyncExitStack() as stack:
        # When three stores open it at the same moment
        stores = await asyncio.gather(
            *(stack.enter_async_context(open_store(store_url)) for _ in range(3))
        )
        # Then all opened, and the schema is at the latest version once
        assert all(isinstance(s, SqlStore) for s in stores)
        with psycopg.connect(store_url) as conn:
            rows = conn.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchall()
        assert rows == [(str(stores[0].schema_version),)]  # type: ignore[attr-defined]


async def test_a_lease_row_held_by_a_stalled_transaction_delays_nobody(store_url: str) -> None:
    # Given a partition whose lease row is share-locked by a transaction that went idle (as a
    # node paused in the middle of committing its progress leaves it)
    pg_only(store_url)
    clock = FakeClock()
    async with open_store(store_url) as store:
        await store.put_topic(Topic(name="orders", partitions=1))
        with psycopg.connect(store_url) as stalled:
            stalled.execute("BEGIN")
            stalled.execute("SELECT epoch FROM leases FOR SHARE").fetchall()
            # When another node tries to take it
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.acquire_lease(
                    "orders", 0, "n2", to_ms(clock.now()), to_ms(clock.now() + 10)
                )
            # Then it gives up within the lock timeout instead of waiting, and a lease round
            # carries on (the partition is taken at a later round)
            assert time.monotonic() - started < 2.0
            manager = LeaseManager(
                store, clock, node_id="n2", url="", roles=frozenset({"dispatch"}), ttl=10.0,
                on_change=_ignore,
            )  # fmt: skip
            await manager.round()
            assert manager.owned == {}
            stalled.rollback()
        # And once the stalled transaction is gone the next round takes it
        await manager.round()
        assert list(manager.owned) == [("orders", p) for p in range(3)]  # one per lane


async def test_the_server_ends_a_stalled_transaction_so_its_locks_go(store_url: str) -> None:
    # Given a store whose writer sits inside a transaction (its process paused)
    pg_only(store_url)
    async with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        await store.put_topic(Topic(name="orders", partitions=1))
        writer = store._wc
        await asyncio.to_thread(writer.execute, "BEGIN")
        await asyncio.to_thread(writer.execute, "SELECT epoch FROM leases FOR SHARE")
        # When it stays idle past the idle-in-transaction timeout
        await asyncio.sleep(1.5)
        # Then another session can take the row, and the store itself works again
        with psycopg.connect(store_url, autocommit=True) as other:
            other.execute("SET lock_timeout = 500")
            other.execute("UPDATE leases SET epoch = epoch + 1")
        await store.list_topics()  # the reader was not stalled: it is fine
        with pytest.raises(StoreUnavailable):  # the writer's link was ended: this one fails
            await store.put_topic(Topic(name="more", partitions=1))
        await store.put_topic(Topic(name="more", partitions=1))  # and the next works
        assert [t.name for t in await store.list_topics()] == ["more", "orders"]


async def _ignore(owned: object) -> None:
    del owned
