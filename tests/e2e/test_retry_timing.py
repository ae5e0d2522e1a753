"""Retries, backoff and dead-lettering through the real Lambda SDK, timed on the injected clock.

The node runs in process on a FakeClock behind its real HTTP API; the lambda is served by a
real :class:`~conveyor.Worker` on 127.0.0.1. Backoff jitter is pinned to its upper bound, so
the expected delays are exact: 1 s, 3 s, 9 s for ``min_backoff=1, multiplier=3``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor import AsyncClient, EventContext, Fatal, Lambda, RetryPolicy, Worker
from conveyor.api.app import Server
from conveyor.clock import FakeClock
from conveyor.node import Node
from conveyor.settings import NodeSettings

POLICY = RetryPolicy(max_attempts=4, min_backoff=1.0, max_backoff=60.0, multiplier=3.0)


@dataclass
class Rig:
    clock: FakeClock
    client: AsyncClient
    calls: list[tuple[str, int, float]]  # (subscription, attempt, fake time of the call)


def build_app(clock: FakeClock, calls: list[tuple[str, int, float]]) -> Lambda:
    app = Lambda("clocked")

    @app.handler("jobs", retry=POLICY)
    async def always_fails(payload: dict[str, object], ctx: EventContext) -> None:
        calls.append((ctx.subscription, ctx.attempt, clock.now()))
        raise RuntimeError(f"boom #{ctx.attempt}")

    @app.handler("jobs", subscription="clocked.fatal", retry=POLICY)
    async def refuses(payload: dict[str, object], ctx: EventContext) -> None:
        calls.append((ctx.subscription, ctx.attempt, clock.now()))
        raise Fatal("this event can never succeed")

    return app


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock()
    calls: list[tuple[str, int, float]] = []
    settings = NodeSettings(store=str(tmp_path / "c.db"), port=0)
    server = Server(settings, Node(settings, clock=clock, jitter=lambda lo, hi: hi))
    await server.start()
    try:
        async with (
            Worker(build_app(clock, calls), server=server.url, ttl_seconds=3600),
            AsyncClient(server.url) as client,
        ):
            yield Rig(clock, client, calls)
    finally:
        await server.aclose()


async def until(predicate: object, limit: float = 10.0) -> None:
    for _ in range(int(limit / 0.01)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    pytest.fail("condition not met in time")


def attempts_of(rig: Rig, subscription: str) -> list[int]:
    return [a for s, a, _ in rig.calls if s == subscription]


async def test_a_failing_handler_is_retried_with_growing_delays_then_lands_dead(rig: Rig) -> None:
    # Given a published event whose handler always raises
    result = await rig.client.publish("jobs", {"n": 1})
    start = rig.clock.now()
    await until(lambda: attempts_of(rig, "clocked.always_fails") == [1])
    # When time reaches each backoff (1 s, then 3 s, then 9 s), never before
    for attempt, delay in ((2, 1.0), (3, 3.0), (4, 9.0)):
        rig.clock.advance(delay - 0.001)
        await asyncio.sleep(0.2)
        assert attempts_of(rig, "clocked.always_fails") == list(range(1, attempt))
        view = await rig.client.get_event(result.id)
        mine = next(d for d in view.deliveries if d.subscription == "clocked.always_fails")
        assert mine.state == "retrying"
        rig.clock.advance(0.001)
        await until(lambda a=attempt: attempts_of(rig, "clocked.always_fails")[-1] == a)
    # Then the calls happened exactly at the backoff schedule on the injected clock
    times = [t - start for s, _, t in rig.calls if s == "clocked.always_fails"]
    assert times == pytest.approx([0.0, 1.0, 4.0, 13.0], abs=0.002)

    # And after max_attempts the event is dead with its whole history
    async def dead() -> bool:
        view = await rig.client.get_event(result.id)
        return any(
            d.subscription == "clocked.always_fails" and d.state == "dead" for d in view.deliveries
        )

    for _ in range(500):
        if await dead():
            break
        await asyncio.sleep(0.01)
    view = await rig.client.get_event(result.id)
    mine = next(d for d in view.deliveries if d.subscription == "clocked.always_fails")
    assert (mine.state, mine.attempts) == ("dead", 4)
    assert [h.attempt for h in mine.history] == [1, 2, 3, 4]
    assert mine.last_error is not None
    assert "boom #4" in mine.last_error
    # And nothing more is tried, however far time moves
    rig.clock.advance(3600)
    await asyncio.sleep(0.2)
    assert attempts_of(rig, "clocked.always_fails") == [1, 2, 3, 4]


async def test_a_fatal_result_goes_dead_at_once_without_retries(rig: Rig) -> None:
    # Given a published event whose handler raises Fatal
    result = await rig.client.publish("jobs", {"n": 2})
    # When its first attempt returns
    await until(lambda: attempts_of(rig, "clocked.fatal") == [1])

    async def state() -> str:
        view = await rig.client.get_event(result.id)
        return next(d.state for d in view.deliveries if d.subscription == "clocked.fatal")

    for _ in range(500):
        if await state() == "dead":
            break
        await asyncio.sleep(0.01)
    # Then it is dead after one attempt, and time passing brings no retry
    assert await state() == "dead"
    rig.clock.advance(3600)
    await asyncio.sleep(0.2)
    assert attempts_of(rig, "clocked.fatal") == [1]
