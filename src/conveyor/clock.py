"""Time, injected.

Every component that waits (timers, backoff, leases, heartbeats) asks a :class:`Clock` rather
than the ``time`` module, so tests drive time with :class:`FakeClock` and run instantly and
deterministically (trio's ``autojump_clock`` is the model).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Cancel the callback; a no-op when it already ran."""


class Clock(Protocol):
    """The source of wall time and timers for every Conveyor component."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` in the event loop once ``now() >= when``."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class SystemClock:
    """The real clock: wall time from ``time.time``, timers on the running event loop."""

    def now(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - time.time()), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _FakeHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told to.

    Invariant: a callback scheduled for ``when`` runs during the first :meth:`advance` that
    brings ``now()`` to ``when`` or past it, never earlier, in order of ``when``; one that is
    already due when scheduled runs soon on the event loop, as with :class:`SystemClock`.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, _FakeHandle, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        if when <= self._now:
            # Already due: run it soon, as SystemClock does, not at the next advance().
            return asyncio.get_running_loop().call_soon(callback)
        handle = _FakeHandle()
        heapq.heappush(self._heap, (when, next(self._seq), handle, callback))
        return handle

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        self.call_at(self._now + seconds, wake)
        await done

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and run every callback that fell due."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        target = self._now + seconds
        while self._heap and self._heap[0][0] <= target:
            when, _, handle, callback = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not handle.cancelled:
                callback()
        self._now = target

    def next_deadline(self) -> float | None:
        """The time of the earliest pending callback, or ``None``."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None


class Alarm:
    """One timer of ``clock`` that calls ``callback`` at the time last set.

    Setting the time it already has does nothing: its owner sets it after every step.
    """

    __slots__ = ("_at", "_callback", "_clock", "_handle")

    def __init__(self, clock: Clock, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._handle: TimerHandle | None = None
        self._at: float | None = None

    def set(self, at: float | None) -> None:
        """Call back at ``at`` (``None``: not at all) instead of at the time set before."""
        if at == self._at:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None if at is None else self._clock.call_at(at, self._fire)
        self._at = at

    def _fire(self) -> None:
        self._at = None
        self._handle = None
        self._callback()


def to_ms(seconds: float) -> int:
    """Seconds since the epoch to whole milliseconds, truncating.

    The microsecond of slack absorbs float error, so ``to_ms(ms / 1000) == ms``: a timer
    armed for ``ms / 1000`` seconds sees itself due, never a millisecond early or late.
    """
    return int(seconds * 1000 + 1e-3)


async def sleep_unless_stopped(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    """Sleep ``seconds`` on ``clock``, or less if ``stop`` is set first (for loops that run
    every interval of the injected clock until told to stop)."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
