"""Run-time gates and pacing on a real runner: pause, purge, rate limit, lanes, retry
duration, and delayed events fired ahead of time but never pushed early.

Time is a FakeClock moved by the test; pushes travel real HTTP to a PushEndpoint.
"""

from __future__ import annotations

import msgspec
import pytest
from node_harness import (
    SUB,
    advance_to,
    delivery,
    publish,
    quietly,
    request,
    subscribe,
    until,
    until_async,
    until_received,
    until_state,
)
from push_double import PushEndpoint, Reply, each

from conveyor.clock import FakeClock, to_ms
from conveyor.errors import InvalidRequest
from conveyor.model import Outcome, Priority, RateLimit, RetryPolicy
from conveyor.node import Node
from conveyor.wire.push import PushRequest, PushResult


async def set_control(node: Node, **changes: object) -> None:
    control = msgspec.structs.replace(node.catalog.subscription(SUB).control, **changes)
    await node.catalog.set_control(SUB, control)


async def test_a_paused_subscription_pushes_nothing_and_its_backlog_stays_visible(
    node: Node, endpoint: PushEndpoint
) -> None:
    # Given a paused subscription
    await subscribe(node)
    await set_control(node, paused=True)

    # When five events are published
    await publish(node, *(request(i) for i in range(5)))
    await quietly()

    # Then none is pushed, and the backlog shows them
    assert endpoint.received == []
    info = await node.status.subscription(SUB)
    assert (info.stats.paused, info.stats.backlog) == (True, 5)

    # And once resumed, all five go
    await set_control(node, paused=False)
    await until_received(endpoint, 5)
    assert sorted(endpoint.payloads()) == [0, 1, 2, 3, 4]  # type: ignore[type-var]


async def test_a_worker_re_registering_its_subscription_does_not_resume_it(node: Node) -> None:
    sub = await subscribe(node)
    await set_control(node, paused=True)

    # When the spec is replaced (as `conveyor worker` does at start)
    await node.catalog.put_subscription(msgspec.structs.replace(sub, max_batch=10))

    # Then it stays paused, in the cache and in the store
    assert node.catalog.subscription(SUB).control.paused
    (stored,) = [s for s in await node.store.list_subscriptions() if s.name == SUB]
    assert stored.control.paused
    assert stored.max_batch == 10


async def test_a_purge_drops_the_backlog_and_retrying_events_unpushed(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given one event that failed and waits 60 s for its retry
    endpoint.respond = each(lambda e: PushResult(e.id, Outcome.RETRY, after=60.0))
    await subscribe(node)
    (failing,) = await publish(node, request("failing"))
    await until_state(node, failing, "retrying", 1)
    # and three more held back by a pause
    await set_control(node, paused=True)
    backlog = await publish(node, *(request(i) for i in range(3)))

    # When the subscription is purged, resumed, and one more event published after it
    await set_control(node, purged_before_ms=to_ms(clock.now()) + 1)
    await set_control(node, paused=False)
    clock.advance(0.002)
    endpoint.respond = each(lambda e: PushResult(e.id, Outcome.SUCCESS))
    (after,) = await publish(node, request("after"))

    # Then only the later event is pushed; the others are dropped, the retrying one at once
    await until_received(endpoint, 2)
    await until_state(node, after, "succeeded", 1)
    for event_id in [failing, *backlog]:
        view = await until_state(node, event_id, "dropped", 1 if event_id == failing else 0)
        assert view.state == "dropped"
    assert [r.payload for r in endpoint.received] == ["failing", "after"]

    async def figures() -> bool:
        stats = (await node.status.subscription(SUB)).stats
        return (stats.dropped, stats.backlog, stats.retrying) == (4, 0, 0)

    await until_async(figures)


async def test_a_rate_limit_paces_pushes_as_a_token_bucket_and_changes_at_run_time(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given 10 events/s with a burst of 2, and 40 events waiting
    await subscribe(node, partitions=1)
    await set_control(node, rate_limit=RateLimit(per_second=10, burst=2))
    await publish(node, *(request(i) for i in range(40)))

    # Then the burst goes at once, and no more until time moves
    await until_received(endpoint, 2)
    await quietly()
    assert len(endpoint.received) == 2

    # When 1 s passes in steps of 0.1 s, one event goes per step (a microsecond past each
    # step: at epoch seconds a float is only ~0.2 us precise, and a token is never early)
    start = clock.now()
    for step in range(1, 11):
        advance_to(clock, start + step / 10 + 1e-6)
        await until_received(endpoint, 2 + step)
    await quietly()
    assert len(endpoint.received) == 12

    # And when the limit is raised at run time, the new rate applies from then on
    await set_control(node, rate_limit=RateLimit(per_second=100, burst=1))
    advance_to(clock, start + 1.1 + 1e-6)
    await until(lambda: len(endpoint.received) >= 13)
    await quietly()
    assert len(endpoint.received) <= 14  # 100/s over 0.1 s, up to the bucket's size

    # And when it is removed, everything left goes
    await set_control(node, rate_limit=None)
    await until_received(endpoint, 40)


async def test_high_goes_first_and_low_is_not_starved(node: Node, endpoint: PushEndpoint) -> None:
    # Given one event in flight at a time, and a paused backlog in all three lanes
    await subscribe(node, max_concurrency=1, max_batch=1, adaptive=False)
    await set_control(node, paused=True)
    await publish(node, *(request(f"low{i}", priority=Priority.LOW) for i in range(20)))
    await publish(node, *(request(f"normal{i}") for i in range(20)))
    await publish(node, *(request(f"high{i}", priority=Priority.HIGH) for i in range(5)))
    await quietly()

    # When it resumes
    await set_control(node, paused=False)
    await until_received(endpoint, 45)
    order = [str(p) for p in endpoint.payloads()]

    # Then every high event went among the first eight (weights 8:4:1), and a low one
    # within one round of 13
    assert max(order.index(f"high{i}") for i in range(5)) < 8
    assert any(p.startswith("low") for p in order[:13])
    # And the event view names the lane
    view = await node.status.event(endpoint.received[0].event.id)
    assert view.priority == Priority.HIGH


async def test_max_retry_duration_ends_retries_before_max_attempts(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given retries every 1 s for at most 2.5 s after the first attempt
    endpoint.respond = each(lambda e: PushResult(e.id, Outcome.RETRY, error="busy"))
    policy = RetryPolicy(max_attempts=100, min_backoff=1, max_backoff=1, max_retry_duration=2.5)
    await subscribe(node, retry=policy)
    (event_id,) = await publish(node, request("x"))
    start = clock.now()

    # When attempts run at 0, 1, 2 and 3 s
    for n in range(1, 4):
        await until_state(node, event_id, "retrying", n)
        advance_to(clock, start + n)

    # Then the fourth failure, 3 s after the first attempt, is final
    view = await until_state(node, event_id, "dead", 4)
    assert [a.attempt for a in view.history] == [1, 2, 3, 4]


async def test_a_delayed_event_fired_ahead_of_time_is_held_until_due(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given an event due in 5 s (the node fires timers 0.1 s ahead)
    await subscribe(node)
    (event_id,) = await publish(node, request("x", delay=5.0))
    due = clock.now() + 5.0

    # When time reaches 50 ms before it
    advance_to(clock, due - 0.05)
    runner = node.dispatcher.runner(SUB)
    assert runner is not None
    await until(lambda: runner.stats().held == 1)
    await quietly()

    # Then it is in the log, held, and reads scheduled, but was not pushed
    assert endpoint.received == []
    view = await delivery(node, event_id)
    assert view.state == "scheduled"

    # And at its time exactly it goes
    advance_to(clock, due)
    await until_received(endpoint, 1)
    assert endpoint.received[0].at >= due
    await until_state(node, event_id, "succeeded", 1)


async def test_the_limiter_is_visible_in_the_subscription_figures(
    node: Node, endpoint: PushEndpoint
) -> None:
    await subscribe(node, max_concurrency=64, adaptive=True)
    await publish(node, *(request(i) for i in range(10)))
    await until_received(endpoint, 10)
    info = await node.status.subscription(SUB)
    concurrency = info.stats.concurrency
    assert concurrency is not None
    assert concurrency.adaptive
    assert concurrency.cap == 64
    assert concurrency.floor == 1
    assert 1 <= concurrency.limit <= 64
    assert concurrency.recent_rtt_ms is not None


async def test_a_throttle_halves_the_adaptive_limit_without_counting_an_attempt(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given an adaptive subscription whose limit stands at 16 (raised by a floor of 16, then
    # the floor lowered to 1 at run time: the limit stays where it is)
    sub = await subscribe(node, max_concurrency=64, adaptive=True, max_batch=1)
    for floor in (16, 1):
        sub = msgspec.structs.replace(sub, min_concurrency=floor)
        await node.catalog.put_subscription(sub)
    runner = node.dispatcher.runner(SUB)
    assert runner is not None
    assert runner.limiter.limit == 16

    # When the lambda answers its first push with 429 and Retry-After
    def throttle_first(request: PushRequest, number: int) -> Reply:
        if number == 1:
            return Reply(status=429, headers={"Retry-After": "1"})
        return Reply()

    endpoint.respond = throttle_first
    (event_id,) = await publish(node, request("x"))
    await until(lambda: endpoint.pushes == 1)
    await quietly()

    # Then the limit was halved, and the event is not yet retried
    assert runner.limiter.limit == 8
    assert len(endpoint.received) == 1
    # And after the pause it goes through as its first attempt
    clock.advance(1.0)
    view = await until_state(node, event_id, "succeeded", 1)
    assert [(a.attempt, a.recorded) for a in view.history] == [(1, False)]  # none recorded


async def test_a_purge_while_paused_drops_the_backlog_before_any_resume(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given a paused ordered subscription with a backlog over two keys
    await subscribe(node, ordered=True)
    await set_control(node, paused=True)
    ids = await publish(node, *(request(i, key=f"k{i % 2}") for i in range(6)))

    # When it is purged, still paused
    await set_control(node, purged_before_ms=to_ms(clock.now()) + 1)

    # Then every event reads dropped and the backlog is empty, with nothing pushed
    for event_id in ids:
        await until_state(node, event_id, "dropped", 0)

    async def empty() -> bool:
        stats = (await node.status.subscription(SUB)).stats
        return (stats.backlog, stats.dropped, stats.paused) == (0, 6, True)

    await until_async(empty)
    assert endpoint.received == []

    # And events published after it flow once resumed, in key order
    clock.advance(0.002)
    later = await publish(node, *(request(f"late{i}", key="k0") for i in range(3)))
    await set_control(node, paused=False)
    await until_received(endpoint, 3)
    assert [r.event.id for r in endpoint.received] == later


async def test_events_off_the_filter_are_filtered_never_pushed_and_the_filter_changes_live(
    node: Node, endpoint: PushEndpoint
) -> None:
    # Given a subscription that wants EU orders of 100 or more
    sub = await subscribe(node)
    pattern: dict[str, object] = {
        "attributes": {"region": [{"prefix": "eu-"}]},
        "payload": {"amount": [{"numeric": [">=", 100]}]},
    }
    await node.catalog.put_subscription(msgspec.structs.replace(sub, filter=pattern))
    ids = await publish(
        node,
        request({"amount": 150}, attributes={"region": "eu-west"}),
        request({"amount": 50}, attributes={"region": "eu-west"}),
        request({"amount": 500}, attributes={"region": "us-east"}),
        request({"amount": 500}),
    )

    # Then only the first is pushed; the others read filtered, with no attempt
    await until_received(endpoint, 1)
    await until_state(node, ids[0], "succeeded", 1)
    for event_id in ids[1:]:
        await until_state(node, event_id, "filtered", 0)
    await quietly()
    assert [r.event.id for r in endpoint.received] == ids[:1]

    # And when the filter is removed at run time, the next event goes
    await node.catalog.put_subscription(msgspec.structs.replace(sub, filter=None))
    (later,) = await publish(node, request({"amount": 1}))
    await until_received(endpoint, 2)
    assert endpoint.received[1].event.id == later

    async def counted() -> bool:
        return (await node.status.subscription(SUB)).stats.filtered == 3

    await until_async(counted)


async def test_an_invalid_filter_is_refused_naming_its_place(node: Node) -> None:
    sub = await subscribe(node)
    bad = {"payload": {"amount": [{"numeric": [">", "ten"]}]}}
    with pytest.raises(InvalidRequest) as refused:
        await node.catalog.put_subscription(msgspec.structs.replace(sub, filter=bad))
    assert refused.value.field is not None
    assert refused.value.field.startswith("/filter/payload/amount")
    assert node.catalog.subscription(SUB).filter is None


async def test_a_push_holds_at_most_max_batch_bytes_and_always_one_event(
    node: Node, endpoint: PushEndpoint
) -> None:
    # Given pushes of at most 2 KiB and events of ~700 bytes, then one of 3 KiB
    sub = await subscribe(node, partitions=1, max_batch=100)
    await set_control(node, paused=True)
    await node.catalog.put_subscription(msgspec.structs.replace(sub, max_batch_bytes=2048))
    ids = await publish(node, *(request("x" * 700) for _ in range(5)), request("y" * 3000))

    # When it resumes
    await set_control(node, paused=False)
    await until_received(endpoint, 6)

    # Then pushes held 2, 2, 1 (the sixth alone: bigger than the limit, still delivered)
    sizes = [len(p.events) for p in endpoint.requests]
    assert sizes == [2, 2, 1, 1]
    assert [r.event.id for r in endpoint.received] == ids


async def test_a_push_lingers_up_to_max_wait_for_a_fuller_batch(
    node: Node, clock: FakeClock, endpoint: PushEndpoint
) -> None:
    # Given batches of 10 that may wait 2 s to fill
    sub = await subscribe(node, partitions=1, max_batch=10)
    await node.catalog.put_subscription(msgspec.structs.replace(sub, max_wait=2.0))

    # When 3 events come, nothing goes before 2 s
    await publish(node, *(request(i) for i in range(3)))
    await quietly()
    assert endpoint.received == []
    clock.advance(1.0)
    await quietly()
    assert endpoint.received == []

    # And 10 events go at once as a full batch, and the rest after the wait
    await publish(node, *(request(i) for i in range(3, 10)))
    await until_received(endpoint, 10)
    assert [len(p.events) for p in endpoint.requests] == [10]
    await publish(node, request(10))
    runner = node.dispatcher.runner(SUB)
    assert runner is not None
    await until(lambda: runner._batcher.linger_since is not None)  # its wait has started
    clock.advance(1.9)
    await quietly()
    assert len(endpoint.received) == 10
    clock.advance(0.1)
    await until_received(endpoint, 11)
