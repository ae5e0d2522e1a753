"""Fixtures of the flow tests that run a whole Node in process: the fake clock, the push
endpoint it delivers to (a real HTTP server on 127.0.0.1), and the node itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from node_harness import running_node
from push_double import PushEndpoint

from conveyor.clock import FakeClock
from conveyor.node import Node


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def endpoint(clock: FakeClock) -> AsyncIterator[PushEndpoint]:
    async with PushEndpoint(clock) as served:
        yield served


@pytest.fixture
async def node(store_url: str, clock: FakeClock, endpoint: PushEndpoint) -> AsyncIterator[Node]:
    # Torn down before the endpoint, so that in-flight pushes settle against a live server.
    async with running_node(store_url, clock, endpoint) as started:
        yield started
