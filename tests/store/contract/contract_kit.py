"""What the store contract suites share: the records they write and an opened store.

The contract suites (``test_contract_*.py``) state, port by port, what any store engine must
do; each test is typed against the one port it exercises, and runs on every engine of the
``store_url`` fixture (SQLite, and PostgreSQL when one is configured).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from conveyor._ids import new_id
from conveyor.model import Attempt, AttemptOutcome, Subscription, Topic
from conveyor.node import open_store
from conveyor.store.base import DeliveryRow, NewEvent, Store

NOW_MS = 1_700_000_000_000
DEDUP_MS = 60_000
ORDERS = Topic(name="orders", partitions=2, retention_seconds=60)


def event(
    partition: int = 0,
    *,
    key: str | None = None,
    payload: bytes = b"{}",
    idempotency_key: str | None = None,
    deliver_at_ms: int | None = None,
    publish_ms: int = NOW_MS,
    schema_id: int | None = None,
) -> NewEvent:
    """A new event; delayed when ``deliver_at_ms`` is after ``publish_ms``."""
    return NewEvent(
        id=new_id(publish_ms),
        partition=partition,
        key=key,
        attributes={"source": "contract"},
        payload=payload,
        publish_ms=publish_ms,
        deliver_at_ms=deliver_at_ms,
        delayed=deliver_at_ms is not None and deliver_at_ms > publish_ms,
        idempotency_key=idempotency_key,
        digest=None if idempotency_key is None else payload,
        schema_id=schema_id,
    )


def row(offset: int, state: str, *, partition: int = 0, error: str = "boom") -> DeliveryRow:
    """A delivery row with one failed attempt in its history."""
    return DeliveryRow(
        partition=partition,
        offset=offset,
        key="k",
        state=state,
        attempts=1,
        next_ms=None,
        last_error=error,
        history=[Attempt(1, NOW_MS, AttemptOutcome.RETRY, error, 5)],
        updated_ms=NOW_MS,
    )


def subscription(name: str, topic: str = "orders") -> Subscription:
    return Subscription(name=name, topic=topic, lambda_name="worker")


@pytest.fixture(name="store")
async def opened_store(store_url: str) -> AsyncIterator[Store]:
    """The store under contract, on each engine, with the ``orders`` topic created.

    A suite takes it with ``store_fixture = contract_kit.opened_store``.
    """
    async with open_store(store_url) as opened:
        await opened.put_topic(ORDERS)
        yield opened
