"""Run a batch's coroutines concurrently without a Task per coroutine.

``asyncio.gather`` wraps every coroutine in a Task: a Task object, a scheduled first step, a
done callback, a loop iteration. For a push of 256 events whose handlers mostly finish
without ever suspending (a counter, a cache write, an in-memory check) that is most of the
worker's cost per event (``docs/performance.md``). Python 3.12's eager tasks remove the
scheduling; on 3.11 there are none, so this module does it by hand, and only where it is
safe:

* A *lane* is one Task. It starts the batch's coroutines one after another, each by one
  ``send(None)``. A coroutine that returns from that first step is finished: its result is
  stored and the lane starts the next one, in the same Task.
* A coroutine that suspends keeps the lane: the lane first starts a new lane for the rest of
  the batch, then drives the suspended coroutine to its end (forwarding what the event loop
  sends or throws), and ends. So a Task exists only per coroutine that suspends, plus one.

Invariants (what a handler can observe, the same as under ``gather``):

* **One task for a coroutine's whole life.** ``asyncio.current_task()`` is the lane for every
  step of a coroutine, the first included, and the lane serves no other coroutine after one
  suspends. So ``asyncio.timeout()`` entered before the first ``await`` cancels the right
  task, and only that coroutine.
* **Its own context.** Every coroutine's steps all run in its own copy of the caller's
  ``contextvars`` context, as a Task's would, so a handler's ``ContextVar.set`` never leaks to
  its batch-mates.
* **Concurrency.** A coroutine that waits does not hold up the ones after it: the next lane is
  started before the lane parks on the coroutine's first wait.
* **Cancellation.** Cancelling the caller cancels every lane still running; an exception a
  coroutine lets out (none should) cancels the other lanes and propagates to the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def run_all(
    items: Sequence[T],
    start: Callable[[T], Coroutine[Any, Any, R]],
    results: list[Any] | None = None,
) -> list[R]:
    """Run ``start(item)`` for every item concurrently; return the results in item order.

    Args:
        items: the batch.
        start: makes the coroutine of one item; it should not raise (a raise cancels the
            rest and propagates).
        results: where each result is stored as soon as its coroutine finishes (one slot
            per item), so a caller that cancels the batch (a deadline) keeps the finished
            ones; ``None``: a new list.

    Returns:
        One result per item, in the order of ``items``.
    """
    batch = _Batch(items, start, results)
    batch.open_lane(0)
    try:
        return await batch.done
    except BaseException:
        batch.cancel()
        raise


class _Batch(Generic[T, R]):
    """One ``run_all`` call: its results, its lanes, the future its caller awaits."""

    __slots__ = ("done", "items", "lanes", "left", "loop", "results", "start")

    def __init__(
        self,
        items: Sequence[T],
        start: Callable[[T], Coroutine[Any, Any, R]],
        results: list[Any] | None,
    ) -> None:
        self.items = items
        self.start = start
        self.loop = asyncio.get_running_loop()
        self.results: list[Any] = [None] * len(items) if results is None else results
        self.left = len(items)
        self.done: asyncio.Future[list[R]] = self.loop.create_future()
        self.lanes: set[asyncio.Task[None]] = set()
        if not items:
            self.done.set_result([])

    def open_lane(self, first: int) -> None:
        if first >= len(self.items):
            return
        lane = self.loop.create_task(self._lane(first))
        self.lanes.add(lane)
        lane.add_done_callback(self._lane_ended)

    def cancel(self) -> None:
        for lane in self.lanes:
            lane.cancel()

    async def _lane(self, first: int) -> None:
        results, items, start = self.results, self.items, self.start
        for index in range(first, len(items)):
            coro = start(items[index])
            context = contextvars.copy_context()
            try:
                waiting = context.run(coro.send, None)
            except StopIteration as stop:
                results[index] = stop.value
                self._finished()
                continue
            # It suspended: the rest of the batch moves to a new lane, this one stays with it.
            self.open_lane(index + 1)
            results[index] = await _drive(coro, waiting, context)
            self._finished()
            return

    def _finished(self) -> None:
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(self.results)

    def _lane_ended(self, lane: asyncio.Task[None]) -> None:
        self.lanes.discard(lane)
        if self.done.done():  # all finished, or the caller was cancelled (which cancels done)
            return
        # A coroutine let an exception out, or cancelled its own task: as under gather, the
        # caller gets it (the CancelledError included); the other lanes stop.
        error = asyncio.CancelledError() if lane.cancelled() else lane.exception()
        if error is not None:
            self.done.set_exception(error)
            self.cancel()


@types.coroutine
def _drive(
    coro: Coroutine[Any, Any, R], waiting: Any, context: contextvars.Context
) -> Generator[Any, Any, R]:
    # Awaiting it drives a coroutine that has taken its first step, in its own context: the
    # lane's Task sees the futures the coroutine yields as if it awaited them itself, and
    # what the Task sends or throws back is forwarded into the coroutine.
    run = context.run
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as thrown:  # noqa: BLE001 - forwarded, as a Task would
            try:
                waiting = run(coro.throw, thrown)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        try:
            waiting = run(coro.send, sent)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


__all__ = ["run_all"]
