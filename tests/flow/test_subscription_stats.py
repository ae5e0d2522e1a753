"""A subscription's figures count all its unfinished work and say what stops its delivery.

The backlog is what the autoscaler reads (execution/scaling.py): events waiting for a retry
and delayed events past their due time that no timer has fired are unfinished work too, and
a subscription whose lambda has no endpoint says so. Time is the FakeClock's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from node_harness import LAMBDA, SUB, advance_to, publish, request, running_node, subscribe
from node_harness import until_async as until
from push_double import PushEndpoint, each

from conveyor.clock import FakeClock
from conveyor.model import Outcome, RetryPolicy
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.push import PushEvent, PushResult
from conveyor.wire.schemas import SubscriptionStats

DELAY = 60.0  # beyond the timer window (30 s): a frontend-only node never holds these timers
OVERDUE_AFTER = NodeSettings().health_overdue_seconds


async def stats_of(node: Node) -> SubscriptionStats:
    return (await node.status.subscription(SUB)).stats


@asynccontextmanager
async def bare_node(store_url: str, clock: FakeClock, roles: str) -> AsyncIterator[Node]:
    """A started node with no endpoint registered."""
    settings = NodeSettings(store=store_url, cluster=False, roles=roles)
    async with Node(settings, clock=clock) as node:
        yield node


def fail(event: PushEvent) -> PushResult:
    return PushResult(event.id, Outcome.RETRY, error="boom")


async def test_events_waiting_for_a_retry_are_in_the_backlog(store_url: str) -> None:
    clock = FakeClock()
    async with (
        PushEndpoint(clock, each(fail)) as endpoint,
        running_node(store_url, clock, endpoint) as node,
    ):
        # Given a subscription whose lambda fails every event, retried a minute later
        await subscribe(node, retry=RetryPolicy(max_attempts=5, min_backoff=60.0))

        # When three events are published and each has failed once
        await publish(node, request(1), request(2), request(3))

        async def all_retrying() -> bool:
            return (await stats_of(node)).retrying == 3

        await until(all_retrying)

        # Then the backlog (the autoscaler's figure) still counts them
        stats = await stats_of(node)
        assert stats.backlog == 3
        assert stats.in_flight == 0


async def test_overdue_timers_are_in_the_backlog_and_the_oldest_age(store_url: str) -> None:
    clock = FakeClock()
    start = clock.now()
    # Given a node that fires no timers but its own near ones (no dispatch node runs)
    async with bare_node(store_url, clock, "frontend") as node:
        await subscribe(node)
        await publish(node, *(request(n, delay=DELAY) for n in range(3)))
        before = await stats_of(node)
        assert (before.backlog, before.overdue, before.oldest_pending_age) == (0, 0, None)

        # When their due time is 40 s past
        advance_to(clock, start + DELAY + 40)

        # Then they are overdue, in the backlog of their lane, and the oldest pending age
        stats = await stats_of(node)
        assert stats.overdue == 3
        assert stats.backlog == 3
        assert stats.backlog_by_priority["normal"] == 3
        assert stats.oldest_pending_age == 40.0
        # And the node's health says that timers are not firing
        (problem,) = await node.health.problems()
        assert "3 delayed events are overdue" in problem

        # When a dispatch node starts on the same store, it fires them
        async with bare_node(store_url, clock, "frontend,dispatch") as dispatcher:

            async def fired() -> bool:
                return (await stats_of(node)).overdue == 0

            await until(fired)
            assert await dispatcher.health.problems() == []

        # Then nothing is overdue any more, and the node is healthy again
        assert await node.health.problems() == []


async def test_timers_overdue_within_the_threshold_keep_the_node_healthy(store_url: str) -> None:
    clock = FakeClock()
    start = clock.now()
    async with bare_node(store_url, clock, "frontend") as node:
        await subscribe(node)
        await publish(node, request(1, delay=DELAY))
        # When the timer is overdue by exactly the threshold, it is counted, not alarmed on
        advance_to(clock, start + DELAY + OVERDUE_AFTER)
        assert (await stats_of(node)).overdue == 1
        assert await node.health.problems() == []
        # And past it, the node fails its health check
        advance_to(clock, start + DELAY + OVERDUE_AFTER + 0.01)
        assert len(await node.health.problems()) == 1


async def test_a_subscription_of_a_lambda_without_endpoints_says_so(store_url: str) -> None:
    clock = FakeClock()
    async with (
        PushEndpoint(clock) as endpoint,
        bare_node(store_url, clock, "frontend,dispatch") as node,
    ):
        # Given a subscription of a lambda that has no endpoint
        await subscribe(node)
        await publish(node, request(1))

        # Then its figures say why nothing is delivered
        (warning,) = (await stats_of(node)).warnings
        assert warning.startswith("no endpoints:")
        assert repr(LAMBDA) in warning

        # And once an endpoint registers, the warning is gone
        await node.register_endpoint(LAMBDA, "e1", endpoint.url, ttl=60, concurrency=8)
        assert (await stats_of(node)).warnings == []

        # And it comes back when the endpoint's registration runs out
        clock.advance(61)
        assert (await stats_of(node)).warnings[0].startswith("no endpoints:")
