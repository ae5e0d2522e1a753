"""Releases across nodes: a release made or decided through one node reaches the others at
their catalog sync, before any endpoint of its version is pushed to there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from conveyor.clock import FakeClock
from conveyor.delivery.endpoints import VersionSplit
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.releases import ReleasePolicy

LAMBDA = "worker"
URL = "http://127.0.0.1:9/conveyor/push"  # never pushed to: no subscription
SYNC = 0.02  # real seconds between syncs


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.005)


@pytest.fixture
async def nodes(store_url: str) -> AsyncIterator[tuple[Node, Node]]:
    clock = FakeClock()
    started: list[Node] = []
    try:
        for node_id in ("a", "b"):
            settings = NodeSettings(
                store=store_url, cluster=True, node_id=node_id, sync_interval=SYNC
            )
            node = Node(settings, clock=clock)
            await node.start()
            started.append(node)
        yield started[0], started[1]
    finally:
        for node in reversed(started):
            await node.aclose()


async def test_a_canary_started_through_one_node_is_routed_as_such_by_the_other(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await a.releases.set_policy(LAMBDA, ReleasePolicy(share=0.3))

    # When workers of v1, then v2 register through node a
    await a.register_endpoint(LAMBDA, "e1", URL, 3600, 8, version="v1")
    await a.register_endpoint(LAMBDA, "e2", URL, 3600, 8, version="v2")

    # Then node b knows v2 as a canary by the time it knows its endpoint
    seen: list[tuple[int, VersionSplit]] = []

    def synced() -> bool:
        seen.append((len(b.pool.endpoints(LAMBDA)), b.releases.split(LAMBDA)))
        return seen[-1][0] == 2

    await until(synced)
    assert all(split.canary == "v2" for count, split in seen if count == 2)
    assert b.releases.split(LAMBDA) == VersionSplit("v2", 0.3, frozenset())


async def test_a_rollback_through_one_node_reaches_the_other(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.register_endpoint(LAMBDA, "e1", URL, 3600, 8, version="v1")
    await a.register_endpoint(LAMBDA, "e2", URL, 3600, 8, version="v2")
    await until(lambda: b.releases.split(LAMBDA).canary == "v2")

    await a.releases.roll_back(LAMBDA, "v2")

    await until(lambda: b.releases.split(LAMBDA) == VersionSplit(None, 0.0, frozenset({"v2"})))
