"""Roles: a frontend-only node takes publishes and delivers nothing; a dispatch node delivers.

Two in-process nodes share one store in cluster mode (leases on), as two hosts would.
"""

from __future__ import annotations

import asyncio

import pytest
from node_harness import LAMBDA, SUB, TOPIC, request, subscribe
from push_double import PushEndpoint

from conveyor.clock import SystemClock
from conveyor.model import Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings


def settings(store_url: str, node_id: str, roles: str) -> NodeSettings:
    return NodeSettings(store=store_url, cluster=True, node_id=node_id, roles=roles, lease_ttl=2.0)


async def eventually(condition: object, within: float = 8.0) -> None:
    for _ in range(int(within / 0.02)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    pytest.fail("condition not met in time")


async def test_a_frontend_node_stores_publishes_and_a_dispatch_node_delivers_them(
    store_url: str,
) -> None:
    # Given a frontend-only node with a subscription and a worker endpoint
    clock = SystemClock()
    async with (
        PushEndpoint(clock) as endpoint,  # type: ignore[arg-type]
        Node(settings(store_url, "front", "frontend"), clock=clock) as front,
    ):
        await subscribe(front)
        await front.register_endpoint(LAMBDA, "w1", endpoint.url, ttl=60, concurrency=64)
        # When events are published through it
        results = await front.publisher.publish(
            TOPIC, [request({"n": n}, key=f"k{n}") for n in range(20)], batch=True
        )
        # Then they are stored but nobody delivers them: the node leases nothing
        await asyncio.sleep(0.5)
        assert len(results) == 20
        assert endpoint.received == []
        assert front.dispatcher.runner(SUB) is None
        assert all(lease.owner is None for lease in await front.store.list_leases())
        # And the subscription's figures, read from the store, show the whole backlog
        stats = (await front.status.subscription(SUB)).stats
        assert (stats.backlog, stats.in_flight) == (20, 0)
        assert stats.oldest_pending_age is not None

        # When a dispatch node joins the same store
        async with Node(settings(store_url, "back", "dispatch"), clock=clock) as back:
            # Then it leases every partition and delivers every event
            await eventually(lambda: len(endpoint.received) == 20)
            owners = {lease.owner for lease in await back.store.list_leases()}
            assert owners == {"back"}
            assert sorted(r.payload["n"] for r in endpoint.received) == list(range(20))  # type: ignore[index]
            await eventually(lambda: back.dispatcher.runner(SUB) is not None)


async def test_a_topic_created_on_another_node_is_leased_and_delivered_at_once(
    store_url: str,
) -> None:
    # Given a dispatch node and a frontend node on one store
    clock = SystemClock()
    async with (
        PushEndpoint(clock) as endpoint,  # type: ignore[arg-type]
        Node(settings(store_url, "back", "dispatch"), clock=clock) as back,
        Node(settings(store_url, "front", "frontend"), clock=clock) as front,
    ):
        # When the topic, subscription and endpoint are created through the frontend node
        await subscribe(front)
        await front.register_endpoint(LAMBDA, "w1", endpoint.url, ttl=60, concurrency=64)
        await front.publisher.publish(TOPIC, [request({"n": 1})], batch=True)
        # Then the dispatch node learns them, takes the new partitions and delivers
        await eventually(lambda: len(endpoint.received) == 1, within=5.0)
        assert back.catalog.find_topic(TOPIC) == Topic(name=TOPIC, partitions=4)
