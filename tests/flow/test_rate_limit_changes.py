"""A rate limit changed at run time on a real runner (FakeClock, real HTTP to a PushEndpoint):
a new burst takes effect at once, whether it is smaller (the tokens are clamped to it) or
larger (the bucket grows by the difference, so the new headroom is there at once)."""

from __future__ import annotations

import msgspec
from node_harness import SUB, publish, quietly, request, subscribe, until_received
from push_double import PushEndpoint

from conveyor.clock import FakeClock
from conveyor.model import RateLimit
from conveyor.node import Node


async def set_limit(node: Node, limit: RateLimit) -> None:
    control = msgspec.structs.replace(node.catalog.subscription(SUB).control, rate_limit=limit)
    await node.catalog.set_control(SUB, control)


async def test_a_smaller_burst_clamps_the_tokens_at_once(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given 1 event/s with a burst of 50, idle (a full bucket)
    await subscribe(node, partitions=1)
    await set_limit(node, RateLimit(per_second=1, burst=50))
    clock.advance(60)

    # When the burst is cut to 5, then 40 events arrive
    await set_limit(node, RateLimit(per_second=1, burst=5))
    await publish(node, *(request(i) for i in range(40)))

    # Then only the new burst goes at once
    await until_received(endpoint, 5)
    await quietly()
    assert len(endpoint.received) == 5


async def test_a_larger_burst_is_there_at_once(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given 1 event/s with a burst of 2, its tokens spent on a backlog
    await subscribe(node, partitions=1)
    await set_limit(node, RateLimit(per_second=1, burst=2))
    await publish(node, *(request(i) for i in range(40)))
    await until_received(endpoint, 2)
    await quietly()
    assert len(endpoint.received) == 2

    # When the burst is raised to 10 (no time passes)
    await set_limit(node, RateLimit(per_second=1, burst=10))

    # Then the 8 more the bucket may hold go at once
    await until_received(endpoint, 10)
    await quietly()
    assert len(endpoint.received) == 10
