"""taskiq on Redis (taskiq-redis) under bench.peers' workload (runs under ``.venv-peers``).

Broker: taskiq-redis's ``RedisStreamBroker`` (a Redis stream read by a consumer group; a
message is acknowledged once its task ran, taskiq's default ``when_saved``), the one of its
Redis brokers that acknowledges: ``ListQueueBroker`` pops a message and forgets it, so a
worker that dies loses what it held, and it drained no faster here (~10%, within the noise).
Workers: ``taskiq worker --workers 2`` (one process per core), ``--max-async-tasks
MAX_ASYNC``. The producer is one asyncio process keeping ``WINDOW``
``kiq()`` calls in flight (taskiq's producer is async: this is its fast way from one process);
the latency case: the same, paced at a steady ``--rate``/s (each task stamped as its ``kiq()``
starts), the same workers.

Delayed tasks: taskiq has no delayed delivery in the Redis broker; a task is scheduled with
``schedule_by_time`` into a ``ListRedisScheduleSource`` and a ``taskiq scheduler`` process
(``--update-interval 1``, its shortest: it reads new schedules once a second and looks for due
ones once a second) sends it when due.

Usage: ``BENCH_PEER_BROKER=redis://… python -m bench.peers.taskiq_peer --case drain --tasks N
--out result.json`` (see :mod:`bench.peers.common`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from taskiq import TaskiqScheduler
from taskiq_redis import ListRedisScheduleSource, RedisStreamBroker

from bench.peers.common import BROKER_ENV, Peer, main, note, pause, spawn, stamp

MAX_ASYNC = 100  # taskiq's default
WINDOW = 8  # kiq() calls in flight in the producer (64 enqueued half as fast, 1 no faster)

_URL = os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0")
broker = RedisStreamBroker(_URL)
source = ListRedisScheduleSource(_URL)
scheduler = TaskiqScheduler(broker, sources=[source])


@broker.task(task_name="bench_peers_record")
async def record(task_id: int, due: float) -> None:
    """The task: note that it ran."""
    note(task_id, due)


class TaskiqPeer(Peer):
    name = "taskiq"
    stop_timeout = 5.0  # its workers stop, but the main process then waits on them for ever

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._started = False

    def start_workers(
        self, case: str, env: dict[str, str], log: Path
    ) -> list[subprocess.Popen[bytes]]:
        command = [sys.executable, "-m", "taskiq", "worker", "bench.peers.taskiq_peer:broker"]
        command += ["--workers", str(self.processes), "--max-async-tasks", str(MAX_ASYNC)]
        command += ["--log-level", "WARNING"]
        workers = [spawn(command, env, log)]
        if case == "delayed":
            command = [sys.executable, "-m", "taskiq", "scheduler"]
            command += ["bench.peers.taskiq_peer:scheduler", "--update-interval", "1"]
            command += ["--log-level", "WARNING"]
            workers.append(spawn(command, env, log))
        return workers

    def send(self, task_id: int, due: float, delay: float) -> None:
        self._loop.run_until_complete(self._send(task_id, due, delay))

    async def _send(self, task_id: int, due: float, delay: float) -> None:
        if not self._started:
            await broker.startup()
            await source.startup()
            self._started = True
        if delay:
            when = datetime.fromtimestamp(due, UTC)
            await record.kicker().schedule_by_time(source, when, task_id, due)
        else:
            await record.kiq(task_id, due)

    def enqueue(self, ids: range, delay: float, rate: float, timed: bool) -> None:
        self._loop.run_until_complete(self._enqueue(ids, delay, rate, timed))

    async def _enqueue(self, ids: range, delay: float, rate: float, timed: bool) -> None:
        window = asyncio.Semaphore(WINDOW)
        pending: set[asyncio.Task[None]] = set()

        async def one(task_id: int) -> None:
            try:
                await self._send(task_id, stamp(delay, timed), delay)
            finally:
                window.release()

        start = time.perf_counter()
        for n, task_id in enumerate(ids):
            if (wait := pause(start, n, rate)) > 0:
                await asyncio.sleep(wait)
            await window.acquire()
            task = asyncio.create_task(one(task_id))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)

    def config(self) -> str:
        return (
            f"{type(broker).__name__}, taskiq worker --workers {self.processes} "
            f"--max-async-tasks {MAX_ASYNC}, acks when_saved; producer: {WINDOW} kiq() in "
            "flight (latency: at a steady rate); delayed: schedule_by_time + "
            "ListRedisScheduleSource + taskiq scheduler --update-interval 1"
        )

    def versions(self) -> str:
        from importlib.metadata import version

        return f"taskiq {version('taskiq')}, taskiq-redis {version('taskiq-redis')}"

    def close(self) -> None:
        if self._started:
            self._loop.run_until_complete(broker.shutdown())
            self._loop.run_until_complete(source.shutdown())
        self._loop.close()


if __name__ == "__main__":
    main(TaskiqPeer())
