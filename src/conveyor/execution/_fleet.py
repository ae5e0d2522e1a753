"""The supervisor's child processes: single-process ``conveyor worker`` children kept at a
target count.

A child is ready once it prints the line ``run_worker`` prints when it serves (its push URL
is read from it; its output is relayed, prefixed with its number). A surplus child is drained
with SIGTERM (the worker deregisters, answers what it accepted, and exits), and killed only
if it takes longer than ``kill_after``. A child that exits on its own is replaced after a
backoff, except one that refused its command line, which no replacement would do better.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import signal
import sys
from collections.abc import Callable, Sequence

from conveyor._resource import AsyncResource
from conveyor.clock import Clock, TimerHandle

logger = logging.getLogger("conveyor.execution.supervisor")

FIRST_RESTART_BACKOFF = 0.5
MAX_RESTART_BACKOFF = 30.0
"""Seconds before a child that exited on its own is replaced (doubling per failure)."""
STABLE_UPTIME = 60.0
"""Seconds a child must serve for the restart backoff to start again from the first step."""
KILL_AFTER = 90.0
"""Seconds a draining child may take before SIGKILL (its own drain bound is 60 s)."""
USAGE_ERROR = 2
"""The exit status of a command line refused (click's); a child exiting so is not replaced."""

# The line `conveyor worker` prints once it serves (see run_worker).
_SERVING = re.compile(r"^conveyor worker: lambda \S+ serving (\S+) ")
_CHILD_MAIN = "import sys; sys.argv[0] = 'conveyor'; from conveyor.cli import main; main()"


def worker_command(worker_args: Sequence[str]) -> list[str]:
    """The command line of one single-process ``conveyor worker`` child."""
    return [sys.executable, "-c", _CHILD_MAIN, "worker", *worker_args]


class _Child:
    """One worker process of a :class:`Fleet`."""

    def __init__(self, number: int, process: asyncio.subprocess.Process) -> None:
        self.number = number
        self.process = process
        self.url: str | None = None
        """Its push URL, once it serves."""
        self.ready_at: float | None = None
        self.draining = False
        self.kill_timer: TimerHandle | None = None


class Fleet(AsyncResource):
    """Child worker processes kept at a target count.

    Children beyond the target are drained (SIGTERM, then SIGKILL after ``kill_after``);
    missing ones are started at once, except after a child exited on its own, when the next
    start waits for the restart backoff.

    Args:
        command: a child's command line (see :func:`worker_command`).
        clock: times restarts and the drain bound.
        on_restart: called when a child that exited on its own is to be replaced.
        on_fatal: called, with the reason, when a child refuses its command line (exit
            status 2 before it served): no replacement would do better, so none is started.
        first_backoff: seconds before the first replacement.
        max_backoff: the longest wait before a replacement.
        stable_uptime: seconds of serving after which the backoff starts over.
        kill_after: seconds a draining child may take before it is killed.
        label: prefix of the children's output lines, with their number.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        clock: Clock,
        on_restart: Callable[[], None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
        first_backoff: float = FIRST_RESTART_BACKOFF,
        max_backoff: float = MAX_RESTART_BACKOFF,
        stable_uptime: float = STABLE_UPTIME,
        kill_after: float = KILL_AFTER,
        label: str = "worker",
    ) -> None:
        self._command = list(command)
        self._clock = clock
        self._on_restart = on_restart
        self._on_fatal = on_fatal
        self.failure: str | None = None
        """Why the fleet gave up starting children, once it has."""
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._stable_uptime = stable_uptime
        self._kill_after = kill_after
        self._label = label
        self._numbers = itertools.count(1)
        self._children: list[_Child] = []
        self._target = 0
        self._failures = 0
        self._not_before = 0.0
        self._backoff_timer: TimerHandle | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        # Invariant: _tasks is not None exactly while the fleet runs; every child has a
        # watcher task in it until the child has exited.
        self._tasks: asyncio.TaskGroup | None = None

    @property
    def target(self) -> int:
        """The process count the fleet is heading to."""
        return self._target

    def serving(self) -> list[str]:
        """Push URLs of the children serving (ready and not draining)."""
        return [c.url for c in self._children if c.url is not None and not c.draining]

    def pids(self) -> list[int]:
        """Process ids of every child alive, draining ones included."""
        return [c.process.pid for c in self._children]

    def scale_to(self, count: int) -> None:
        """Set the target count; the fleet starts or drains children to reach it.

        Raises:
            ValueError: ``count`` is negative.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self._target = count
        self._wake.set()

    async def _enter(self) -> None:
        tasks = asyncio.TaskGroup()
        await tasks.__aenter__()
        self._tasks = tasks
        tasks.create_task(self._reconcile_forever())

    async def aclose(self) -> None:
        """Drain every child and wait until all have exited; idempotent."""
        tasks, self._tasks = self._tasks, None
        if tasks is None:
            return
        self._stopping = True
        self._target = 0
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
        self._wake.set()
        # Waits for the loop, which drains every child, and for every watcher, that is
        # until every child has exited.
        await tasks.__aexit__(None, None, None)

    async def _reconcile_forever(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await self._reconcile()
        # Every child, including one started while the fleet began to stop.
        for child in list(self._children):
            self._drain(child)

    async def _reconcile(self) -> None:
        active = [c for c in self._children if not c.draining]
        surplus = len(active) - self._target
        if surplus > 0:
            # Starting children go first, then the newest.
            for child in sorted(active, key=lambda c: (c.url is not None, -c.number))[:surplus]:
                self._drain(child)
            return
        if surplus == 0 or self._stopping or self.failure is not None:
            return
        if self._clock.now() < self._not_before:
            if self._backoff_timer is not None:
                self._backoff_timer.cancel()
            self._backoff_timer = self._clock.call_at(self._not_before, self._wake.set)
            return
        for _ in range(-surplus):
            await self._start()

    async def _start(self) -> None:
        if self._tasks is None or self._stopping:
            return
        number = next(self._numbers)
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command,
                stdout=asyncio.subprocess.PIPE,
                # Its own session: a terminal's Ctrl-C reaches the supervisor only, which
                # then drains the children itself.
                start_new_session=True,
            )
        except OSError as e:
            logger.error("cannot start %s %d: %s", self._label, number, e)
            self._back_off(None)
            return
        child = _Child(number, process)
        self._children.append(child)
        logger.info("started %s %d (pid %d)", self._label, number, process.pid)
        self._tasks.create_task(self._watch(child))

    async def _watch(self, child: _Child) -> None:
        try:
            await self._relay_output(child)
            code = await child.process.wait()
        finally:
            if child.process.returncode is None:  # cancelled: leave no orphan behind
                child.process.kill()
            if child.kill_timer is not None:
                child.kill_timer.cancel()
            self._children.remove(child)
        if child.draining:
            logger.info("%s %d drained (exit status %d)", self._label, child.number, code)
        elif code == USAGE_ERROR and child.url is None:
            self.failure = (
                f"{self._label} {child.number} refused its command line (exit status {code})"
            )
            logger.error("%s: not starting any more", self.failure)
            if self._on_fatal is not None:
                self._on_fatal(self.failure)
        else:
            self._back_off(child)
            logger.warning(
                "%s %d (pid %d) exited on its own with status %d; replacing it in %.1fs",
                self._label,
                child.number,
                child.process.pid,
                code,
                max(0.0, self._not_before - self._clock.now()),
            )
            if self._on_restart is not None:
                self._on_restart()
        self._wake.set()

    async def _relay_output(self, child: _Child) -> None:
        stream = child.process.stdout
        if stream is None:
            return
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line past the stream's limit: skipped
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\n")
            sys.stdout.write(f"[{self._label} {child.number}] {text}\n")
            sys.stdout.flush()
            found = _SERVING.match(text)
            if found and child.url is None:
                child.url, child.ready_at = found.group(1), self._clock.now()

    def _drain(self, child: _Child) -> None:
        if child.draining:
            return
        child.draining = True
        try:
            child.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return  # already gone; its watcher finishes the bookkeeping
        logger.info("draining %s %d (pid %d)", self._label, child.number, child.process.pid)
        child.kill_timer = self._clock.call_at(
            self._clock.now() + self._kill_after, lambda: _kill(child)
        )

    def _back_off(self, child: _Child | None) -> None:
        now = self._clock.now()
        ready_at = None if child is None else child.ready_at
        if ready_at is not None and now - ready_at >= self._stable_uptime:
            self._failures = 0
        self._failures += 1
        delay = min(self._max_backoff, self._first_backoff * 2 ** (self._failures - 1))
        self._not_before = now + delay


def _kill(child: _Child) -> None:
    if child.process.returncode is None:
        logger.warning("worker pid %d did not drain in time: killing it", child.process.pid)
        child.process.kill()


__all__ = ["Fleet", "worker_command"]
