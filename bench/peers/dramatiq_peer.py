"""Dramatiq on Redis under bench.peers' workload (runs under ``.venv-peers``).

Workers: ``dramatiq --processes 2 --threads THREADS`` (one process per core) with the default
middleware; the RedisBroker acks a message once its actor returned. An idle consumer polls
Redis every ``dramatiq_worker_timeout`` ms: 1,000 by default, which makes a delayed message up
to a second late (it is moved from the delay queue to the queue when due, then waits for the
next poll); set to ``POLL_MS``. The producer calls
``send_with_options`` once per task (``delay=`` in milliseconds for the delayed case: Dramatiq
puts the message on the queue's delay queue and a worker moves it back when due; the latency
case: no delay, paced at a steady ``--rate``/s, the same workers).

Usage: ``BENCH_PEER_BROKER=redis://… python -m bench.peers.dramatiq_peer --case drain --tasks N
--out result.json`` (see :mod:`bench.peers.common`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.peers.common import BROKER_ENV, Peer, main, note, spawn

THREADS = 8  # Dramatiq's default; 1, 2 and 4 drained no faster here
POLL_MS = 100  # how often an idle consumer polls Redis (dramatiq_worker_timeout, default 1000)

broker = RedisBroker(url=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench_peers_record", max_retries=0)
def record(task_id: int, due: float) -> None:
    """The task: note that it ran."""
    note(task_id, due)


class DramatiqPeer(Peer):
    name = "dramatiq"

    def start_workers(
        self, case: str, env: dict[str, str], log: Path
    ) -> list[subprocess.Popen[bytes]]:
        command = [sys.executable, "-m", "dramatiq", "bench.peers.dramatiq_peer"]
        command += ["--processes", str(self.processes), "--threads", str(THREADS)]
        return [spawn(command, {**env, "dramatiq_worker_timeout": str(POLL_MS)}, log)]

    def send(self, task_id: int, due: float, delay: float) -> None:
        record.send_with_options(args=(task_id, due), delay=round(delay * 1000) or None)

    def config(self) -> str:
        return (
            f"{self.processes} processes x {THREADS} threads, default middleware, acks after "
            f"the actor, dramatiq_worker_timeout={POLL_MS} ms; one send_with_options per task "
            "(delayed: delay=; latency: at a steady rate)"
        )

    def versions(self) -> str:
        import redis

        return f"Dramatiq {dramatiq.__version__}, redis-py {redis.__version__}"

    def close(self) -> None:
        broker.close()


if __name__ == "__main__":
    main(DramatiqPeer())
