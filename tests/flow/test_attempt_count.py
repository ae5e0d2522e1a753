"""Every attempt counts, whatever way a push fails, on a real runner (FakeClock for backoff
and cool-downs, real HTTP to a PushEndpoint, a real refused port): with ``max_attempts: 2``
an event is dead after exactly two pushes, its history holds attempts 1 and 2, and nothing
is pushed after. A throttle (429/503 with ``Retry-After``) is the one answer that does not
count: the lambda ran nothing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from node_harness import (
    LAMBDA,
    SUB,
    TOPIC,
    delivery,
    publish,
    quietly,
    request,
    running_node,
    until,
    until_state,
)
from push_double import PushEndpoint, Reply, Responder

from conveyor.clock import FakeClock
from conveyor.model import Outcome, RetryPolicy, Subscription, Topic
from conveyor.node import Node
from conveyor.wire.push import PushRequest, PushResult

PUSH_TIMEOUT = 0.2  # real seconds: a push held longer times out
POLICY = RetryPolicy(max_attempts=2, min_backoff=1.0, max_backoff=1.0)


def responder(kind: str) -> Responder:
    """Fails every push that way (a timeout: answers too late)."""

    def respond(push: PushRequest, number: int) -> Reply:
        if kind == "throttled_first" and number == 1:
            return Reply(status=503, headers={"Retry-After": "1"})
        if kind == "http_500":
            return Reply(status=500)
        if kind == "broken_connection":
            return Reply(close=True)
        return Reply(results=[PushResult(e.id, Outcome.RETRY) for e in push.events])

    return respond


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def node(store_url: str, clock: FakeClock) -> AsyncIterator[Node]:
    async with PushEndpoint(clock) as placeholder, running_node(store_url, clock, placeholder) as n:
        await n.deregister_endpoint(LAMBDA, "e1")
        yield n


async def subscribe(node: Node) -> None:
    await node.catalog.put_topic(Topic(name=TOPIC, partitions=1))
    await node.catalog.put_subscription(
        Subscription(
            name=SUB, topic=TOPIC, lambda_name=LAMBDA, push_timeout=PUSH_TIMEOUT, retry=POLICY
        )
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def dead_after_two(node: Node, clock: FakeClock, event_id: str) -> list[int]:
    """Move time through the backoff until the event is dead; its history's attempts."""
    for _ in range(50):
        if (await delivery(node, event_id)).state == "dead":
            break
        clock.advance(0.5)
        await quietly()
    view = await until_state(node, event_id, "dead", 2)
    return [a.attempt for a in view.history]


@pytest.mark.parametrize(
    "kind", ["retry", "http_500", "broken_connection", "timeout", "throttled_first"]
)
async def test_every_failed_push_counts_as_one_attempt(
    node: Node, clock: FakeClock, kind: str
) -> None:
    # Given a lambda whose pushes fail that way, and max_attempts 2
    hold = PUSH_TIMEOUT * 3 if kind == "timeout" else 0.0
    async with PushEndpoint(clock, responder(kind), hold=hold) as lam:
        await node.register_endpoint(LAMBDA, "lam", lam.url, ttl=3600, concurrency=8)
        await subscribe(node)

        # When an event is published
        (event_id,) = await publish(node, request(1))

        # Then it is dead after attempts 1 and 2, and the lambda got two pushes (plus the
        # throttled one, which did not count)
        assert await dead_after_two(node, clock, event_id) == [1, 2]
        await until(lambda: lam.pushes == (3 if kind == "throttled_first" else 2))
        clock.advance(60)
        await quietly()
        assert lam.pushes == (3 if kind == "throttled_first" else 2)
        assert [e.attempt for p in lam.requests[-2:] for e in p.events] == [1, 2]


async def test_refused_connections_count_as_attempts_too(node: Node, clock: FakeClock) -> None:
    # Given the lambda's only endpoint on a port where nothing listens
    url = f"http://127.0.0.1:{closed_port()}/conveyor/push"
    await node.register_endpoint(LAMBDA, "gone", url, ttl=3600, concurrency=8)
    await subscribe(node)

    # When an event is published, then it is dead after exactly two refused attempts
    (event_id,) = await publish(node, request(1))
    assert await dead_after_two(node, clock, event_id) == [1, 2]
    view = await delivery(node, event_id)
    assert "cannot connect" in (view.last_error or "")

    # And no third attempt follows, however long we wait
    clock.advance(60)
    await quietly()
    view = await delivery(node, event_id)
    assert (view.state, view.attempts, len(view.history)) == ("dead", 2, 2)
