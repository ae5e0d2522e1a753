"""Running a Node in process against a PushEndpoint: setup, publishing, and waiting.

A test waits (bounded, in real time) for what must happen, and gives what must not happen
``QUIET`` seconds of real time before asserting it did not.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from push_double import PushEndpoint

from conveyor.clock import FakeClock
from conveyor.flow.runner import Runner
from conveyor.model import Priority, RetryPolicy, Subscription, Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.schemas import DeliveryView, PublishRequest

TOPIC = "orders"
SUB = "billing"
LAMBDA = "worker"
QUIET = 0.05  # real seconds given to something that must not happen
FLUSH_INTERVAL = NodeSettings().flush_interval
NUDGE_TOPIC = "nudges"  # has no subscription: publishing to it only wakes the timer service


def highest(low: float, high: float) -> float:
    return high


@asynccontextmanager
async def running_node(
    store_url: str | Path, clock: FakeClock, endpoint: PushEndpoint
) -> AsyncIterator[Node]:
    """A started node on the store at ``store_url`` (the ``store_url`` fixture, or a SQLite
    file), with the endpoint registered."""
    # One node, no leases: these tests are about flow control, and move the FakeClock far
    # past any lease TTL (leases have their own tests in tests/cluster).
    node = Node(NodeSettings(store=str(store_url), cluster=False), clock=clock, jitter=highest)
    await node.start()
    try:
        await node.register_endpoint(LAMBDA, "e1", endpoint.url, ttl=3600, concurrency=64)
        yield node
    finally:
        await node.aclose()


_nudges = itertools.count()


async def nudge(node: Node, endpoint: PushEndpoint) -> None:
    """Wake the subscription's runner and the timer service without moving time.

    A component that only ever wakes at its armed deadline cannot show that it would act
    early; this gives it a reason to look: a new endpoint (the runner re-checks its work) and
    a far-off delayed event (the timer service re-checks its heap).
    """
    await node.register_endpoint(
        LAMBDA, f"nudge-{next(_nudges)}", endpoint.url, ttl=3600, concurrency=64
    )
    if node.catalog.find_topic(NUDGE_TOPIC) is None:
        await node.catalog.put_topic(Topic(name=NUDGE_TOPIC, partitions=1))
    far = PublishRequest(payload=msgspec.Raw(b"0"), delay=365 * 86400.0)
    await node.publisher.publish(NUDGE_TOPIC, [far], batch=False)


def runners(node: Node) -> list[Runner]:
    return [r for s in node.catalog.subscriptions() if (r := node.dispatcher.runner(s.name))]


async def subscribe(
    node: Node,
    *,
    partitions: int = 4,
    retry: RetryPolicy | None = None,
    ordered: bool = False,
    max_concurrency: int = 512,
    max_batch: int = 256,
    dead_letter_topic: str | None = None,
    adaptive: bool = False,
) -> Subscription:
    await node.catalog.put_topic(Topic(name=TOPIC, partitions=partitions))
    if dead_letter_topic is not None:
        await node.catalog.put_topic(Topic(name=dead_letter_topic, partitions=1))
    sub = Subscription(
        name=SUB,
        topic=TOPIC,
        lambda_name=LAMBDA,
        ordered=ordered,
        max_concurrency=max_concurrency,
        max_batch=max_batch,
        retry=retry or RetryPolicy(),
        dead_letter_topic=dead_letter_topic,
        adaptive=adaptive,
    )
    await node.catalog.put_subscription(sub)
    return sub


def request(
    payload: object,
    *,
    key: str | None = None,
    attributes: dict[str, str] | None = None,
    delay: float | None = None,
    priority: Priority = Priority.NORMAL,
) -> PublishRequest:
    return PublishRequest(
        payload=msgspec.Raw(msgspec.json.encode(payload)),
        key=key,
        attributes=attributes,
        delay=delay,
        priority=priority,
    )


async def publish(node: Node, *requests: PublishRequest) -> list[str]:
    results = await node.publisher.publish(TOPIC, list(requests), batch=True)
    return [r.id for r in results]


async def delivery(node: Node, event_id: str) -> DeliveryView:
    view = await node.status.event(event_id)
    (found,) = [d for d in view.deliveries if d.subscription == SUB]
    return found


async def until(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.002)


async def until_received(endpoint: PushEndpoint, count: int) -> None:
    await until(lambda: len(endpoint.received) == count)


async def until_async(condition: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.002)


async def until_state(
    node: Node, event_id: str, state: str, attempts: int, within: float = 3.0
) -> DeliveryView:
    """Wait until the event's delivery reads ``state`` after ``attempts``, committed."""
    seen: list[DeliveryView] = []

    async def reached() -> bool:
        view = await delivery(node, event_id)
        seen.append(view)
        return view.state == state and view.attempts == attempts

    try:
        await until_async(reached, within)
    except AssertionError as e:
        raise AssertionError(f"last seen: {seen[-1] if seen else None}") from e
    return seen[-1]


def advance_to(clock: FakeClock, when: float) -> None:
    """Move the clock to exactly ``when`` (float-exact: when - now is exact nearby)."""
    clock.advance(when - clock.now())


async def quietly() -> None:
    await asyncio.sleep(QUIET)
