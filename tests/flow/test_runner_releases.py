"""Releases end to end: a node pushing to a stable endpoint (v1) and a canary (v2) on
127.0.0.1, on the injected clock. A canary failing half its events is rolled back by itself
and every event still ends ``succeeded`` on the stable version; a healthy one is promoted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from node_harness import LAMBDA, highest, publish, request, subscribe, until, until_async
from push_double import PushEndpoint, each, succeed

from conveyor.clock import FakeClock
from conveyor.delivery.endpoints import NO_SPLIT
from conveyor.model import Outcome, RetryPolicy
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.push import PushEvent, PushResult
from conveyor.wire.releases import ReleasePolicy, ReleaseState

EVENTS = 60
# Decide early in the trial, on a canary that gets half the pushes.
POLICY = ReleasePolicy(share=0.5, min_pushes=10, window_seconds=30)
# Two attempts: a failure on the canary that counted as an attempt would go dead on its next.
# Retries wait longer than the releases' tick, so the rollback comes before any retry.
RETRY = RetryPolicy(max_attempts=2, min_backoff=5, max_backoff=5)


def half_failing(event: PushEvent) -> PushResult:
    """The canary's bug: every odd event fails."""
    payload = msgspec.json.decode(event.payload)
    assert isinstance(payload, dict)
    if payload["n"] % 2:
        return PushResult(event.id, Outcome.RETRY, error="canary bug")
    return succeed(event)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def stable(clock: FakeClock) -> AsyncIterator[PushEndpoint]:
    async with PushEndpoint(clock) as served:
        yield served


async def node_with(
    store_url: str, clock: FakeClock, stable: PushEndpoint, canary: PushEndpoint
) -> Node:
    """A started node: v1 stable on ``stable``, v2 on trial on ``canary``."""
    node = Node(NodeSettings(store=store_url, cluster=False), clock=clock, jitter=highest)
    await node.start()
    await node.releases.set_policy(LAMBDA, POLICY)
    await node.register_endpoint(LAMBDA, "stable", stable.url, 3600, 64, version="v1")
    await node.register_endpoint(LAMBDA, "canary", canary.url, 3600, 64, version="v2")
    await subscribe(node, retry=RETRY, max_batch=1)
    return node


async def states(node: Node, ids: list[str]) -> dict[str, str]:
    return {i: (await node.status.event(i)).deliveries[0].state for i in ids}


async def release_state(node: Node, version: str) -> ReleaseState:
    view = await node.releases.describe(LAMBDA)
    assert view is not None
    (release,) = [r for r in view.releases if r.version == version]
    return release.state


async def test_a_canary_failing_half_its_events_is_rolled_back_and_every_event_succeeds(
    store_url: str, clock: FakeClock, stable: PushEndpoint
) -> None:
    async with PushEndpoint(clock, each(half_failing)) as canary:
        node = await node_with(store_url, clock, stable, canary)
        try:
            # Given events pushed to both versions, half of the canary's failing
            ids = await publish(node, *(request({"n": n}) for n in range(EVENTS)))
            await until(lambda: len(stable.received) + len(canary.received) >= EVENTS)
            failed_on_canary = {
                r.event.id for r in canary.received if msgspec.json.decode(r.event.payload)["n"] % 2
            }
            assert failed_on_canary, "the canary got no failing event"

            # When the release is judged (the next tick of the clock)
            clock.advance(1)
            await until(lambda: node.releases.split(LAMBDA).excluded == {"v2"})

            # Then it is rolled back, and the retries go to the stable version and succeed
            clock.advance(RETRY.max_backoff)
            await until_async(lambda: _all_succeeded(node, ids))
            assert await release_state(node, "v2") is ReleaseState.ROLLED_BACK
            assert failed_on_canary <= {r.event.id for r in stable.received}
            assert (await node.store.count_rows("billing")).get("dead", 0) == 0
        finally:
            await node.aclose()


async def _all_succeeded(node: Node, ids: list[str]) -> bool:
    return set((await states(node, ids)).values()) == {"succeeded"}


async def test_a_healthy_canary_is_promoted_after_its_window(
    store_url: str, clock: FakeClock, stable: PushEndpoint
) -> None:
    async with PushEndpoint(clock) as canary:
        node = await node_with(store_url, clock, stable, canary)
        try:
            # Given events delivered by both versions
            ids = await publish(node, *(request({"n": n}) for n in range(EVENTS)))
            await until_async(lambda: _all_succeeded(node, ids))
            assert len(canary.received) >= POLICY.min_pushes

            # When its window has passed
            clock.advance(POLICY.window_seconds)
            await until(lambda: node.releases.split(LAMBDA) == NO_SPLIT)

            # Then it is stable, the version before it superseded
            assert await release_state(node, "v2") is ReleaseState.STABLE
            assert await release_state(node, "v1") is ReleaseState.SUPERSEDED
        finally:
            await node.aclose()


async def test_a_canary_failure_answered_after_its_rollback_is_still_retried_not_buried(
    store_url: str, clock: FakeClock, stable: PushEndpoint
) -> None:
    # Given one attempt only, and a canary that takes its pushes 0.5 s to fail
    def all_fail(event: PushEvent) -> PushResult:
        return PushResult(event.id, Outcome.RETRY, error="canary bug")

    async with PushEndpoint(clock, each(all_fail), hold=0.5) as canary:
        node = Node(NodeSettings(store=store_url, cluster=False), clock=clock, jitter=highest)
        await node.start()
        try:
            await node.releases.set_policy(LAMBDA, ReleasePolicy(share=1.0, auto_promote=False))
            await node.register_endpoint(LAMBDA, "stable", stable.url, 3600, 64, version="v1")
            await node.register_endpoint(LAMBDA, "canary", canary.url, 3600, 64, version="v2")
            one_try = RetryPolicy(max_attempts=1, min_backoff=1, max_backoff=1)
            await subscribe(node, retry=one_try, max_batch=1)

            # When an event is pushed to the canary, and the canary is rolled back while the
            # push is in flight
            (event_id,) = await publish(node, request({"n": 1}))
            await until(lambda: len(canary.received) == 1)
            await node.releases.roll_back(LAMBDA, "v2")
            await until(lambda: canary.in_flight == 0)

            # Then its failure is retried (not dead, though its one attempt is spent), and
            # the retry goes to the stable version
            await until_async(lambda: _state_is(node, event_id, "retrying"))
            clock.advance(one_try.max_backoff)
            await until_async(lambda: _state_is(node, event_id, "succeeded"))
            assert [r.event.id for r in stable.received] == [event_id]
        finally:
            await node.aclose()


async def _state_is(node: Node, event_id: str, state: str) -> bool:
    return (await states(node, [event_id]))[event_id] == state
