"""run_all: a batch's coroutines run concurrently, with a Task only for those that suspend.

Each test states an invariant of ``conveyor.execution._lanes`` that a handler can observe, and
would fail if the batch ran its coroutines one after another in one task, or stepped them in
the caller's task or context.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from conveyor.execution._lanes import run_all

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_results_come_back_in_item_order() -> None:
    async def double(n: int) -> int:
        if n % 3 == 0:
            await asyncio.sleep(0)
        return 2 * n

    assert await run_all(list(range(20)), double) == [2 * n for n in range(20)]


async def test_an_empty_batch_is_an_empty_list() -> None:
    async def never(n: int) -> int:
        raise AssertionError("called")

    assert await run_all([], never) == []


async def test_coroutines_that_never_suspend_share_one_task() -> None:
    caller = asyncio.current_task()
    seen: list[asyncio.Task[object] | None] = []

    async def note(n: int) -> int:
        seen.append(asyncio.current_task())
        return n

    await run_all(list(range(50)), note)
    assert len(set(map(id, seen))) == 1
    assert seen[0] is not caller  # the caller's task never runs a handler


async def test_suspending_coroutines_run_at_the_same_time() -> None:
    # Every coroutine waits until all of them have started: one at a time would never end.
    started = 0
    everyone = asyncio.Event()

    async def meet(n: int) -> int:
        nonlocal started
        started += 1
        if started == 10:
            everyone.set()
        await everyone.wait()
        return n

    assert await asyncio.wait_for(run_all(list(range(10)), meet), 5) == list(range(10))


async def test_a_coroutine_keeps_one_task_of_its_own_across_its_awaits() -> None:
    tasks: dict[int, tuple[object, object]] = {}

    async def hop(n: int) -> int:
        before = asyncio.current_task()
        await asyncio.sleep(0)
        tasks[n] = (before, asyncio.current_task())
        return n

    await run_all(list(range(8)), hop)
    assert all(before is after for before, after in tasks.values())
    assert len({id(before) for before, _ in tasks.values()}) == 8


async def test_a_timeout_entered_before_the_first_await_cancels_only_its_coroutine() -> None:
    # asyncio.timeout() takes current_task() on entry: were the first step run in another
    # task, the timeout would cancel that task (its batch-mates, or the caller).
    async def slow_or_fast(n: int) -> str:
        try:
            async with asyncio.timeout(0 if n == 2 else 30):
                if n == 2:
                    await asyncio.Event().wait()
                await asyncio.sleep(0)
        except TimeoutError:
            return "timed out"
        return "done"

    results = await run_all(list(range(5)), slow_or_fast)
    assert results == ["done", "done", "timed out", "done", "done"]


async def test_each_coroutine_has_its_own_context() -> None:
    request_id.set("caller")

    async def tag(n: int) -> tuple[str, str]:
        at_start = request_id.get()
        request_id.set(f"event-{n}")
        if n % 2:
            await asyncio.sleep(0)
        return at_start, request_id.get()

    results = await run_all(list(range(6)), tag)
    assert results == [("caller", f"event-{n}") for n in range(6)]
    assert request_id.get() == "caller"


async def test_cancelling_the_caller_cancels_the_waiting_coroutines() -> None:
    cancelled: list[int] = []
    parked = asyncio.Event()

    async def park(n: int) -> int:
        try:
            parked.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    caller = asyncio.create_task(run_all(list(range(3)), park))
    await parked.wait()
    for _ in range(5):  # let every lane start and park
        await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(cancelled) == [0, 1, 2]


async def test_an_exception_let_out_reaches_the_caller_and_stops_the_rest() -> None:
    cancelled: list[int] = []

    async def work(n: int) -> int:
        if n == 3:
            await asyncio.sleep(0)
            raise RuntimeError("boom")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(run_all(list(range(5)), work), 5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(cancelled) == [0, 1, 2, 4]


async def test_a_coroutine_that_cancels_its_own_task_does_not_hang_the_batch() -> None:
    async def quit_(n: int) -> int:
        if n == 1:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
        return n

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run_all(list(range(3)), quit_), 5)


async def test_a_coroutine_sees_what_its_futures_resolve_to_and_raise() -> None:
    loop = asyncio.get_running_loop()

    async def relay(n: int) -> str:
        ok: asyncio.Future[str] = loop.create_future()
        bad: asyncio.Future[str] = loop.create_future()
        loop.call_soon(ok.set_result, f"value-{n}")
        loop.call_soon(bad.set_exception, KeyError(n))
        got = await ok
        try:
            await bad
        except KeyError as e:
            return f"{got}, raised {e.args[0]}"
        return "no raise"

    assert await run_all([1, 2], relay) == ["value-1, raised 1", "value-2, raised 2"]
