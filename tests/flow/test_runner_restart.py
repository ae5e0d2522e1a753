"""Flow control across a restart: a new Node over the same store carries on.

Progress (cursors and delivery rows) is committed in batches; after a graceful close the next
node must neither lose an event waiting for its retry nor break a key's order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from node_harness import (
    advance_to,
    nudge,
    publish,
    quietly,
    request,
    running_node,
    subscribe,
    until,
    until_state,
)
from push_double import PushEndpoint, Responder, each, succeed

from conveyor.clock import FakeClock, to_ms
from conveyor.model import AttemptOutcome, Outcome, RetryPolicy
from conveyor.wire.push import PushEvent, PushResult

POLICY = RetryPolicy(max_attempts=5, min_backoff=2, max_backoff=2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def endpoint(clock: FakeClock) -> AsyncIterator[PushEndpoint]:
    async with PushEndpoint(clock) as served:
        yield served


def fail_first_attempt_of(name: str) -> Responder:
    def decide(event: PushEvent) -> PushResult:
        if msgspec.json.decode(event.payload) == name and event.attempt == 1:
            return PushResult(event.id, Outcome.RETRY, error="later")
        return succeed(event)

    return each(decide)


async def test_an_event_waiting_for_its_retry_is_retried_on_time_after_a_restart(
    store_url: str, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given an event that failed once and waits 2 s for its retry, and a node that closed
    endpoint.respond = fail_first_attempt_of("E")
    async with running_node(store_url, clock, endpoint) as node:
        await subscribe(node, retry=POLICY)
        (event_id,) = await publish(node, request("E"))
        view = await until_state(node, event_id, "retrying", 1)
        assert view.next_attempt_at is not None
        due_ms = to_ms(view.next_attempt_at.timestamp())

    # When a new node starts over the same store
    async with running_node(store_url, clock, endpoint) as node:
        # Then the event is not pushed before its time, nor anything else again
        await quietly()
        advance_to(clock, (due_ms - 1) / 1000)
        await nudge(node, endpoint)
        await quietly()
        assert len(endpoint.received) == 1

        # And it is pushed as attempt 2 when due, and succeeds with its history
        advance_to(clock, due_ms / 1000)
        await until(lambda: len(endpoint.received) == 2)
        assert (endpoint.received[1].event.attempt, to_ms(endpoint.received[1].at)) == (2, due_ms)
        view = await until_state(node, event_id, "succeeded", 2)
        assert [(a.attempt, a.outcome) for a in view.history] == [
            (1, AttemptOutcome.RETRY),
            (2, AttemptOutcome.SUCCESS),
        ]


async def test_a_finished_event_is_not_delivered_again_after_a_restart(
    store_url: str, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given three events delivered and a node that closed
    async with running_node(store_url, clock, endpoint) as node:
        await subscribe(node)
        ids = await publish(node, *(request(n) for n in range(3)))
        for event_id in ids:
            await until_state(node, event_id, "succeeded", 1)

    # When a new node starts over the same store and one more event is published
    async with running_node(store_url, clock, endpoint) as node:
        (later,) = await publish(node, request(3))

        # Then only the new event is pushed
        await until_state(node, later, "succeeded", 1)
        await quietly()
        assert sorted(r.event.id for r in endpoint.received) == sorted([*ids, later])


async def test_a_keys_order_holds_across_a_restart(
    store_url: str, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given an ordered subscription whose key A waits on its head's retry with two followers
    endpoint.respond = fail_first_attempt_of("A1")
    async with running_node(store_url, clock, endpoint) as node:
        await subscribe(node, partitions=1, ordered=True, retry=POLICY)
        names = ["A1", "A2", "B1", "A3"]
        ids = dict(
            zip(names, await publish(node, *(request(n, key=n[0]) for n in names)), strict=True)
        )
        await until_state(node, ids["B1"], "succeeded", 1)
        view = await until_state(node, ids["A1"], "retrying", 1)
        assert view.next_attempt_at is not None
        due = view.next_attempt_at.timestamp()

    # When a new node starts over the same store, and key A publishes again
    async with running_node(store_url, clock, endpoint) as node:
        (a4,) = await publish(node, request("A4", key="A"))
        ids["A4"] = a4
        await quietly()

        # Then nothing of A moves before its head's retry
        assert [r.payload for r in endpoint.received if r.event.key == "A"] == ["A1"]

        # And once the head succeeds, the followers come in order, one at a time
        advance_to(clock, due)
        await until(lambda: len([r for r in endpoint.received if r.event.key == "A"]) == 5)
        assert [r.payload for r in endpoint.received if r.event.key == "A"] == [
            "A1",
            "A1",
            "A2",
            "A3",
            "A4",
        ]
        assert endpoint.max_key_in_flight == 1
        for name in ("A2", "A3", "A4"):
            await until_state(node, ids[name], "succeeded", 1)
