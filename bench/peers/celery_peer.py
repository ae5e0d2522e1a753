"""Celery on Redis under bench.peers' workload (runs under ``.venv-peers``).

Workers: two ``celery worker`` processes with the solo pool (one per core; on this machine
they drained no-op tasks 1.4-1.6x faster than one worker with the prefork pool and two
children, whose parent process relays every task over a pipe), prefetch multiplier
``PREFETCH``, gossip, mingle and heartbeats off, results ignored; acks early (Celery's
default). The producer calls ``apply_async`` once per task (``countdown=`` for the delayed
case: Celery's ETA tasks, held by the worker until due; the latency case: paced at a steady
``--rate``/s, the same workers).

Usage: ``BENCH_PEER_BROKER=redis://… python -m bench.peers.celery_peer --case drain --tasks N
--out result.json`` (see :mod:`bench.peers.common`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from celery import Celery

from bench.peers.common import BROKER_ENV, Peer, main, note, spawn

PREFETCH = 64

app = Celery("bench_peers", broker=os.environ.get(BROKER_ENV, "redis://"))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
    worker_prefetch_multiplier=PREFETCH,
)


@app.task(name="bench.peers.record")
def record(task_id: int, due: float) -> None:
    """The task: note that it ran."""
    note(task_id, due)


class CeleryPeer(Peer):
    name = "celery"

    def start_workers(
        self, case: str, env: dict[str, str], log: Path
    ) -> list[subprocess.Popen[bytes]]:
        command = [sys.executable, "-m", "celery", "-A", "bench.peers.celery_peer", "worker"]
        command += ["--pool", "solo", "--loglevel", "WARNING", "--without-gossip"]
        command += ["--without-mingle", "--without-heartbeat"]
        return [spawn([*command, "-n", f"w{i}@%h"], env, log) for i in range(self.processes)]

    def send(self, task_id: int, due: float, delay: float) -> None:
        if delay:
            record.apply_async((task_id, due), countdown=delay)
        else:
            record.apply_async((task_id, due))

    def config(self) -> str:
        return (
            f"{self.processes} workers x solo pool, prefetch multiplier {PREFETCH}, acks early, "
            "results ignored; one apply_async per task (delayed: countdown=; latency: at a "
            "steady rate)"
        )

    def versions(self) -> str:
        import celery
        import kombu
        import redis

        return (
            f"Celery {celery.__version__}, kombu {kombu.__version__}, redis-py {redis.__version__}"
        )

    def close(self) -> None:
        app.close()


if __name__ == "__main__":
    main(CeleryPeer())
