"""A push's deadline in ``run_batch``, on the injected clock: handler calls still running when it
strikes are cancelled (``async``) or no longer waited for (sync, in a thread), their events
answer ``retry``, the answer says ``deadline_exceeded``, and what finished in time keeps its
result. Also the ``Conveyor-Timeout`` header's reading and the worker's headroom."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from execution_fakes import push

from conveyor.clock import FakeClock
from conveyor.execution import Lambda
from conveyor.model import Outcome
from conveyor.wire.push import PushResponse, handler_budget, parse_timeout


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_async_handler_running_at_the_deadline_is_cancelled_and_never_completes() -> None:
    # Given a handler that finishes only when released, and a push due in 0.9 s
    clock = FakeClock()
    app = Lambda("billing")
    release = asyncio.Event()
    completed: list[object] = []
    cancelled: list[object] = []

    @app.handler("orders")
    async def charge(payload: object) -> None:
        if payload == "slow":
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.append(payload)
                raise
        completed.append(payload)

    running = asyncio.ensure_future(
        app.run_batch(
            push("billing.charge", "fast", "slow"), deadline=clock.now() + 0.9, clock=clock
        )
    )
    await settle()
    assert not running.done()

    # When the deadline strikes
    clock.advance(0.9)
    response = await asyncio.wait_for(running, 2)

    # Then the fast event keeps its success, the slow one is retried, and the push is marked
    assert [r.status for r in response.results] == [Outcome.SUCCESS, Outcome.RETRY]
    assert "did not finish by the push's deadline (cancelled)" in (response.results[1].error or "")
    assert response.deadline_exceeded
    # And the slow call was cancelled: releasing it now completes nothing
    release.set()
    await settle()
    assert (completed, cancelled) == (["fast"], ["slow"])


async def test_a_single_event_push_is_cut_off_at_its_deadline_too() -> None:
    clock = FakeClock()
    app = Lambda("billing")
    completed: list[object] = []

    @app.handler("orders")
    async def charge(payload: object) -> None:
        await asyncio.Event().wait()
        completed.append(payload)

    running = asyncio.ensure_future(
        app.run_batch(push("billing.charge", 1), deadline=clock.now() + 1, clock=clock)
    )
    await settle()
    clock.advance(1)
    response = await asyncio.wait_for(running, 2)

    assert [r.status for r in response.results] == [Outcome.RETRY]
    assert response.deadline_exceeded
    assert completed == []


async def test_a_sync_handler_past_the_deadline_is_not_waited_for_and_its_result_is_ignored() -> (
    None
):
    # Given a sync handler (in a thread, which cannot be stopped) that blocks until released
    clock = FakeClock()
    app = Lambda("billing")
    started, release = threading.Event(), threading.Event()

    @app.handler("orders")
    def charge(payload: object) -> None:
        started.set()
        release.wait(5)

    with ThreadPoolExecutor(2) as executor:
        running = asyncio.ensure_future(
            app.run_batch(
                push("billing.charge", 1),
                executor=executor,
                deadline=clock.now() + 1,
                clock=clock,
            )
        )
        await asyncio.to_thread(started.wait, 5)

        # When the deadline strikes, the answer goes at once, with the event to retry
        clock.advance(1)
        response = await asyncio.wait_for(running, 2)
        release.set()

    # Then its result (a success, later) is not what the platform hears
    assert [r.status for r in response.results] == [Outcome.RETRY]
    assert "still running in its thread, ignored" in (response.results[0].error or "")
    assert response.deadline_exceeded


async def test_a_push_finished_before_its_deadline_answers_as_usual() -> None:
    clock = FakeClock()
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: object) -> None:
        await asyncio.sleep(0)

    response = await app.run_batch(
        push("billing.charge", 1, 2, 3), deadline=clock.now() + 1, clock=clock
    )
    assert response == PushResponse(response.results)
    assert [r.status for r in response.results] == [Outcome.SUCCESS] * 3
    # And its timer is gone: moving past the deadline later changes nothing
    clock.advance(5)
    await settle()


async def test_a_push_cancelled_from_outside_stays_cancelled() -> None:
    clock = FakeClock()
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: object) -> None:
        await asyncio.Event().wait()

    running = asyncio.ensure_future(
        app.run_batch(push("billing.charge", 1, 2), deadline=clock.now() + 1, clock=clock)
    )
    await settle()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("1", 1.0), ("30.0", 30.0), ("0.25", 0.25), (None, None), ("0", None), ("-1", None),
     ("inf", None), ("nan", None), ("soon", None)],
)  # fmt: skip
def test_the_timeout_header_is_a_positive_number_of_seconds(
    header: str | None, seconds: float | None
) -> None:
    assert parse_timeout(header) == seconds


def test_the_worker_stops_its_handlers_a_headroom_before_the_platforms_timeout() -> None:
    assert handler_budget(1.0) == pytest.approx(0.9)
    assert handler_budget(30.0) == pytest.approx(29.5)  # the headroom is at most 0.5 s
