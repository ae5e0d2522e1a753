"""An ordered subscription delivers a key's delayed events in (due time, publish order).

A Node in process pushes to a real endpoint on 127.0.0.1; time is a FakeClock. The runner
holds an event fired ahead of its time (the timer service's lead) as its key's head: what the
log puts behind it waits behind it, so the log must already be in due order when it is
appended (store/_key_order.py).
"""

from __future__ import annotations

import pytest
from node_harness import (
    LAMBDA,
    TOPIC,
    advance_to,
    highest,
    nudge,
    publish,
    quietly,
    request,
    subscribe,
    until,
    until_async,
    until_state,
)
from push_double import PushEndpoint

from conveyor._ids import new_id
from conveyor.clock import FakeClock, to_ms
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.store.base import NewEvent

LEAD = NodeSettings().timer_lead_seconds


async def publish_elsewhere(node: Node, clock: FakeClock, key: str, due_ms: int) -> str:
    """A delayed event stored as another node's publish would be: this node's timer service
    is not told of it (it learns of it at its next full refill, far off)."""
    topic = node.catalog.find_topic(TOPIC)
    assert topic is not None
    assert topic.partitions == 1
    now_ms = to_ms(clock.now())
    event = NewEvent(new_id(now_ms), 0, key, None, b'"A"', now_ms, due_ms, delayed=True)
    await node.store.publish(topic, [event], now_ms, 0)
    return event.id


async def test_a_key_s_earlier_due_event_goes_first_when_a_later_one_is_fired_early(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given an ordered subscription, B (key k) due in 10 s published here, and A (key k) due
    # 1 s before B published through another node
    await subscribe(node, partitions=1, ordered=True)
    t2 = to_ms(clock.now()) + 10_000
    (b,) = await publish(node, request("B", key="k", delay=10.0))
    a = await publish_elsewhere(node, clock, "k", t2 - 1000)

    # When this node's timer service fires B ahead of its time (the lead): A is due by then
    advance_to(clock, t2 / 1000 - LEAD)
    await until(lambda: len(endpoint.received) == 1)

    # Then A was appended with B, ahead of it, and is pushed at once; B is held to its time
    assert [r.event.id for r in endpoint.received] == [a]
    await until_state(node, a, "succeeded", 1)
    await nudge(node, endpoint)
    await quietly()
    assert len(endpoint.received) == 1
    advance_to(clock, t2 / 1000)
    await until(lambda: len(endpoint.received) == 2)
    assert [r.event.id for r in endpoint.received] == [a, b]
    assert all(to_ms(r.at) >= (r.event.deliver_at_ms or 0) for r in endpoint.received)


async def test_an_overdue_same_key_publish_waits_for_the_earlier_due_timer(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given an ordered subscription and A (key k) due in 1 s, published through another node
    await subscribe(node, partitions=1, ordered=True)
    a = await publish_elsewhere(node, clock, "k", to_ms(clock.now()) + 1000)

    # When, 16 s later, B (key k) is published with a deliver_at after A's, now past
    advance_to(clock, clock.now() + 16)
    (b,) = await publish(node, request("B", key="k", delay=-15.0))

    # Then A is delivered, and only then B
    await until(lambda: len(endpoint.received) == 2)
    assert [r.event.id for r in endpoint.received] == [a, b]
    await until_state(node, b, "succeeded", 1)


@pytest.mark.parametrize(("lead", "first"), [(0.1, "A"), (0.0, "B")])
async def test_an_event_published_within_the_lead_of_a_same_key_timer_goes_after_it(
    store_url: str, clock: FakeClock, endpoint: PushEndpoint, lead: float, first: str
) -> None:
    # Given a node appending timers `lead` seconds early, an ordered subscription, and A
    # (key k) due in 1 s
    settings = NodeSettings(store=store_url, cluster=False, timer_lead_seconds=lead)
    node = Node(settings, clock=clock, jitter=highest)
    await node.start()
    try:
        await node.register_endpoint(LAMBDA, "e1", endpoint.url, ttl=3600, concurrency=64)
        await subscribe(node, partitions=1, ordered=True)
        t1 = clock.now() + 1.0
        (a,) = await publish(node, request("A", key="k", delay=1.0))

        # When B (key k, no delay) is published 50 ms before A is due
        advance_to(clock, t1 - 0.05)

        async def a_placed() -> bool:  # in the log (lead) or still a timer (no lead)
            found = await node.store.find_event(a)
            return found is not None and found[1] is (lead == 0)

        await until_async(a_placed)
        (b,) = await publish(node, request("B", key="k"))
        await quietly()
        advance_to(clock, t1)

        # Then with a lead, A is already in the log, held as the key's head: B goes after it
        # (the documented exception, within the lead); without one, B goes first
        await until(lambda: len(endpoint.received) == 2)
        names = {a: "A", b: "B"}
        assert [names[r.event.id] for r in endpoint.received] == [
            first,
            "B" if first == "A" else "A",
        ]
    finally:
        await node.aclose()
