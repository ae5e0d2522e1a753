"""Outlier ejection end to end: a node pushing over real HTTP to two endpoints on 127.0.0.1,
one of which fails every push; on the injected clock."""

from __future__ import annotations

import pytest
from node_harness import LAMBDA, SUB, advance_to, publish, request, running_node, subscribe, until
from push_double import PushEndpoint, Reply

from conveyor.clock import FakeClock
from conveyor.delivery.health import HealthPolicy
from conveyor.model import RetryPolicy
from conveyor.wire.push import PushRequest

BASE_EJECTION = HealthPolicy().ejection_time


def failing(request: PushRequest, number: int) -> Reply:
    return Reply(status=500)


async def test_a_failing_endpoint_is_ejected_then_readmitted(store_url: str) -> None:
    clock = FakeClock()
    async with (
        PushEndpoint(clock) as good,
        PushEndpoint(clock, failing) as bad,
        running_node(store_url, clock, good) as node,
    ):
        await node.register_endpoint(LAMBDA, "bad", bad.url, ttl=3600, concurrency=64)
        retry = RetryPolicy(max_attempts=100, min_backoff=0, max_backoff=0)
        await subscribe(node, max_batch=1, max_concurrency=1, retry=retry)

        # When events flow, the bad endpoint fails until it is ejected
        await publish(node, *(request(i) for i in range(40)))
        await until(lambda: len(good.received) >= 40, within=10)
        state = next(e for e in node.pool.endpoints(LAMBDA) if e.id == "bad")
        assert state.ejections == 1
        assert bad.pushes == 5  # five failures in a row, then no more pushes
        ejected_until = state.ejected_until

        # And once its time is up it gets pushes again (and, failing, goes out for longer)
        advance_to(clock, ejected_until)
        await publish(node, *(request(i) for i in range(40, 80)))
        await until(lambda: state.ejections == 2, within=10)
        assert state.ejected_until - clock.now() == pytest.approx(2 * BASE_EJECTION)
        assert node.dispatcher.runner(SUB) is not None
