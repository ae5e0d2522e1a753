"""Flow control end to end: a Node in process pushing to a real endpoint on 127.0.0.1.

Time is a FakeClock that moves only when a test advances it, and the retry jitter is pinned
to the top of its range, so every retry's due time is known exactly. Pushes travel real HTTP,
so a test waits (bounded, in real time) for what must happen, and gives what must not happen
the same chance before asserting it did not.
"""

from __future__ import annotations

import asyncio

import msgspec
from node_harness import (
    LAMBDA,
    SUB,
    TOPIC,
    advance_to,
    delivery,
    highest,
    nudge,
    publish,
    quietly,
    request,
    runners,
    subscribe,
    until,
    until_async,
    until_received,
    until_state,
)
from push_double import PushEndpoint, Reply, each, succeed

from conveyor.clock import FakeClock, to_ms
from conveyor.model import AttemptOutcome, Outcome, RetryPolicy
from conveyor.node import Node, open_store
from conveyor.settings import NodeSettings
from conveyor.wire.push import PushEvent, PushRequest, PushResult
from conveyor.wire.schemas import AttemptView


# -- the success path -----------------------------------------------------------------------------
async def test_pushed_events_that_succeed_are_finished(node: Node, endpoint: PushEndpoint) -> None:
    # Given a subscription whose lambda succeeds
    await subscribe(node)

    # When three events are published
    ids = await publish(node, *(request({"n": n}, attributes={"a": "b"}) for n in range(3)))

    # Then each is pushed once, as its first attempt, and reads succeeded with that attempt
    # in its history (known, not recorded: no time, no duration)
    await until(lambda: len(endpoint.received) == 3)
    assert sorted(endpoint.payloads(), key=str) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {(r.event.id, r.event.attempt, r.subscription) for r in endpoint.received} == {
        (i, 1, SUB) for i in ids
    }
    assert all(r.event.attributes == {"a": "b"} for r in endpoint.received)
    for event_id in ids:
        view = await until_state(node, event_id, "succeeded", 1)
        assert view.history == [
            AttemptView(attempt=1, outcome=AttemptOutcome.SUCCESS, recorded=False)
        ]
    await quietly()
    assert len(endpoint.received) == 3


# -- retries --------------------------------------------------------------------------------------
async def test_a_retried_event_is_pushed_again_exactly_when_its_backoff_expires(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given a lambda that always asks for a retry, and backoffs of 1, 2 and 4 s
    endpoint.respond = each(lambda e: PushResult(e.id, Outcome.RETRY, error="not yet"))
    policy = RetryPolicy(max_attempts=4, min_backoff=1, max_backoff=4, multiplier=2)
    await subscribe(node, retry=policy)
    start_ms = to_ms(clock.now())

    # When an event is published
    (event_id,) = await publish(node, request({"n": 1}))
    await until(lambda: len(endpoint.received) == 1)

    # Then every retry comes exactly at its due time, never a millisecond before
    due_ms = start_ms
    for attempt, delay in enumerate((1, 2, 4), start=1):
        due_ms += delay * 1000
        view = await until_state(node, event_id, "retrying", attempt)
        assert view.next_attempt_at is not None
        assert to_ms(view.next_attempt_at.timestamp()) == due_ms
        advance_to(clock, (due_ms - 1) / 1000)
        await nudge(node, endpoint)
        await quietly()
        assert len(endpoint.received) == attempt
        advance_to(clock, due_ms / 1000)
        await until_received(endpoint, attempt + 1)
        latest = endpoint.received[-1]
        assert (latest.event.attempt, to_ms(latest.at)) == (attempt + 1, due_ms)

    # And after the fourth attempt it is dead, with every attempt in its history: the last
    # one, which left no attempt to retry with, reads dead
    view = await until_state(node, event_id, "dead", 4)
    assert [(a.attempt, a.outcome, a.error) for a in view.history] == [
        *((n, AttemptOutcome.RETRY, "not yet") for n in (1, 2, 3)),
        (4, AttemptOutcome.DEAD, "not yet"),
    ]
    assert [to_ms(a.at.timestamp()) - start_ms for a in view.history if a.at] == [
        0,
        1000,
        3000,
        7000,
    ]
    assert view.last_error == "not yet"
    clock.advance(3600)
    await quietly()
    assert len(endpoint.received) == 4


async def test_a_fatal_result_is_dead_at_once_and_copied_to_the_dead_letter_topic(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given a lambda that rejects every event as fatal, and a dead-letter topic
    endpoint.respond = each(lambda e: PushResult(e.id, Outcome.FATAL, error="bad order"))
    await subscribe(node, retry=RetryPolicy(max_attempts=5), dead_letter_topic="orders-dlq")

    # When an event is published
    (event_id,) = await publish(node, request({"n": 7}, key="k1", attributes={"tenant": "t"}))

    # Then it is dead after one attempt
    view = await until_state(node, event_id, "dead", 1)
    assert [(a.attempt, a.outcome, a.error) for a in view.history] == [
        (1, AttemptOutcome.FATAL, "bad order")
    ]
    # And the dead-letter topic holds a copy that names where it came from
    dlq = node.catalog.topic("orders-dlq")

    async def copied() -> bool:
        return await node.store.log_ends(dlq) == [1, 0, 0]

    await until_async(copied)
    (copy,) = await node.store.read_log(dlq, 0, 0, 10)
    assert (copy.payload, copy.key) == (b'{"n":7}', "k1")
    assert copy.id != event_id
    assert copy.attributes == {
        "tenant": "t",
        "conveyor.dead_letter.subscription": SUB,
        "conveyor.dead_letter.topic": TOPIC,
        "conveyor.dead_letter.event_id": event_id,
    }
    # And it is never pushed again
    clock.advance(3600)
    await quietly()
    assert len(endpoint.received) == 1


async def test_a_throttle_pauses_the_subscription_without_counting_an_attempt(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given a lambda whose first answer is 429 with Retry-After: 5
    def respond(push: PushRequest, number: int) -> Reply:
        if number == 1:
            return Reply(status=429, headers={"Retry-After": "5"})
        return Reply()

    endpoint.respond = respond
    await subscribe(node)
    paused_at = clock.now()

    # When an event is published, and another one during the pause
    (first,) = await publish(node, request({"n": 1}))
    await until(lambda: endpoint.pushes == 1)
    (second,) = await publish(node, request({"n": 2}))

    # Then nothing is pushed until the pause is over
    await quietly()
    advance_to(clock, paused_at + 4.999)
    await nudge(node, endpoint)
    await quietly()
    assert endpoint.pushes == 1
    advance_to(clock, paused_at + 5)
    await until(lambda: len(endpoint.received) == 3)

    # And the throttled event comes back as attempt 1: the throttle was not a failure
    retried = [r for r in endpoint.received[1:] if r.event.id == first]
    assert [(r.event.attempt, r.at) for r in retried] == [(1, paused_at + 5)]
    view = await until_state(node, first, "succeeded", 1)
    assert [(a.attempt, a.recorded) for a in view.history] == [(1, False)]  # none recorded
    await until_state(node, second, "succeeded", 1)


async def test_a_500_a_missing_result_and_a_closed_connection_each_count_as_a_retry(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given a lambda that drops the connection, then answers 500, then leaves the event out
    # of its answer, then succeeds
    def respond(push: PushRequest, number: int) -> Reply:
        return {
            1: Reply(close=True),
            2: Reply(status=500),
            3: Reply(results=[]),
        }.get(number, Reply())

    endpoint.respond = respond
    await subscribe(node, retry=RetryPolicy(max_attempts=5, min_backoff=1, max_backoff=1))

    # When an event is published and every retry comes due
    (event_id,) = await publish(node, request({"n": 1}))
    for attempt in (1, 2, 3):
        view = await until_state(node, event_id, "retrying", attempt)
        assert view.next_attempt_at is not None
        advance_to(clock, view.next_attempt_at.timestamp())

    # Then it succeeds on the fourth attempt, after three failures counted as retries
    view = await until_state(node, event_id, "succeeded", 4)
    assert [(a.attempt, a.outcome) for a in view.history] == [
        (1, AttemptOutcome.RETRY),
        (2, AttemptOutcome.RETRY),
        (3, AttemptOutcome.RETRY),
        (4, AttemptOutcome.SUCCESS),
    ]
    errors = [a.error or "" for a in view.history[:3]]
    assert "connection broken" in errors[0]
    assert "HTTP 500" in errors[1]
    assert "no result" in errors[2]
    assert [r.event.attempt for r in endpoint.received] == [1, 2, 3, 4]


# -- ordering and concurrency ---------------------------------------------------------------------
async def test_an_ordered_key_waits_on_its_own_retry_while_other_keys_flow(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given an ordered subscription on one partition, and a lambda that fails A1 once
    def decide(event: PushEvent) -> PushResult:
        payload = msgspec.json.decode(event.payload)
        if payload == "A1" and event.attempt == 1:
            return PushResult(event.id, Outcome.RETRY, error="later")
        return succeed(event)

    endpoint.respond = each(decide)
    policy = RetryPolicy(max_attempts=5, min_backoff=1, max_backoff=1)
    await subscribe(node, partitions=1, ordered=True, retry=policy)

    # When keys A and B publish three events each, interleaved
    names = ["A1", "B1", "A2", "B2", "A3", "B3"]
    ids = dict(zip(names, await publish(node, *(request(n, key=n[0]) for n in names)), strict=True))

    # Then all of B is delivered while A's head waits for its retry, and A's followers wait
    await until(lambda: [r.payload for r in endpoint.received if r.event.key == "B"] == names[1::2])
    await until_state(node, ids["A1"], "retrying", 1)
    await quietly()
    assert [r.payload for r in endpoint.received if r.event.key == "A"] == ["A1"]

    # When A's head comes due and succeeds
    clock.advance(1)

    # Then A's followers arrive after it, in order, one at a time
    def of_a() -> list[tuple[object, int]]:
        return [(r.payload, r.event.attempt) for r in endpoint.received if r.event.key == "A"]

    await until(lambda: len(of_a()) == 4)
    assert of_a() == [("A1", 1), ("A1", 2), ("A2", 1), ("A3", 1)]
    assert endpoint.max_key_in_flight == 1
    for name in names:
        await until_state(node, ids[name], "succeeded", 2 if name == "A1" else 1)


async def test_the_subscriptions_max_concurrency_is_never_exceeded(
    node: Node, endpoint: PushEndpoint
) -> None:
    # Given a subscription allowing 3 events in flight, and a lambda that holds each push
    endpoint.hold = 0.02
    await subscribe(node, max_concurrency=3, max_batch=2)

    # When 20 events are published at once
    ids = await publish(node, *(request({"n": n}) for n in range(20)))

    # Then all are delivered, never more than 3 at a time, and the limit was used
    await until(lambda: len(endpoint.received) == 20, within=5)
    assert endpoint.max_in_flight == 3
    assert sorted(r.event.id for r in endpoint.received) == sorted(ids)
    for event_id in ids:
        await until_state(node, event_id, "succeeded", 1)


# -- delayed events -------------------------------------------------------------------------------
async def test_a_delayed_event_is_not_pushed_before_its_time(
    node: Node, endpoint: PushEndpoint, clock: FakeClock
) -> None:
    # Given a subscription
    await subscribe(node)
    due_ms = to_ms(clock.now()) + 10_000

    # When an event is published for delivery in 10 s
    (event_id,) = await publish(node, request({"n": 1}, delay=10.0))

    # Then it is scheduled and not pushed a millisecond before its time
    assert (await delivery(node, event_id)).state == "scheduled"
    advance_to(clock, (due_ms - 1) / 1000)
    await nudge(node, endpoint)
    await quietly()
    assert endpoint.received == []

    # And it is pushed once its time comes
    advance_to(clock, due_ms / 1000)
    await until(lambda: len(endpoint.received) == 1)
    (received,) = endpoint.received
    assert (received.event.id, received.event.deliver_at_ms, to_ms(received.at)) == (
        event_id,
        due_ms,
        due_ms,
    )
    await until_state(node, event_id, "succeeded", 1)


# -- shutdown -------------------------------------------------------------------------------------
async def test_closing_a_node_inside_a_flush_interval_commits_progress_and_returns(
    store_url: str, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given a node that commits progress every 0.5 s, and an event it just delivered
    settings = NodeSettings(store=store_url, flush_interval=0.5, cluster=False)
    node = Node(settings, clock=clock, jitter=highest)
    await node.start()
    await node.register_endpoint(LAMBDA, "e1", endpoint.url, ttl=3600, concurrency=64)
    sub = await subscribe(node, partitions=1)
    await publish(node, request({"n": 1}))
    await until(lambda: endpoint.pushes == 1)
    await until(lambda: all(r.in_flight == 0 for r in runners(node)))

    # When the node is closed before the progress is flushed
    closing = asyncio.ensure_future(node.aclose())
    done, _ = await asyncio.wait({closing}, timeout=2)
    if not done:
        node.dispatcher.stop()  # repeat the lost stop, so the node still closes
        await closing

    # Then it closes, having committed the subscription's cursor past the event
    assert done, "Node.aclose() did not return: the stop was lost by the flush loop"
    async with open_store(store_url) as store:
        cursors, _ = await store.load_progress(sub)
    assert cursors[0].cursor == 1
