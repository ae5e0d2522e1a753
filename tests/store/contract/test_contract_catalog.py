"""CatalogPort: topics, subscriptions and endpoints, created, replaced, listed, deleted."""

from __future__ import annotations

import contract_kit
import pytest
from contract_kit import ORDERS, subscription

from conveyor.errors import Conflict, NotFound
from conveyor.model import Control, Topic
from conveyor.store.base import Endpoint
from conveyor.store.ports import CatalogPort

store_fixture = contract_kit.opened_store


async def test_topics_are_created_once_and_keep_their_partitions(store: CatalogPort) -> None:
    assert not await store.put_topic(ORDERS)
    assert await store.put_topic(Topic(name="audit", partitions=1))
    assert [t.name for t in await store.list_topics()] == ["audit", "orders"]
    with pytest.raises(Conflict):
        await store.put_topic(Topic(name="audit", partitions=3))


async def test_a_subscription_keeps_its_control_when_replaced(store: CatalogPort) -> None:
    assert await store.put_subscription(subscription("billing"))
    paused = await store.set_control("billing", Control(paused=True))
    assert not await store.put_subscription(subscription("billing"))
    (listed,) = await store.list_subscriptions()
    assert listed.control == paused.control
    with pytest.raises(NotFound):
        await store.set_control("nobody", Control())
    assert await store.delete_subscription("billing")
    assert not await store.delete_subscription("billing")


async def test_endpoints_are_upserted_by_lambda_and_id(store: CatalogPort) -> None:
    await store.put_endpoint(Endpoint("worker", "a", "http://a", 10, 4))
    await store.put_endpoint(Endpoint("worker", "a", "http://b", 20, 8, "eu", "v2", True, "/h"))
    assert await store.list_endpoints() == [
        Endpoint("worker", "a", "http://b", 20, 8, "eu", "v2", True, "/h")
    ]
    assert await store.delete_endpoint("worker", "a")
    assert not await store.delete_endpoint("worker", "a")
