"""The processes under test — ``conveyor serve`` nodes and ``conveyor worker`` processes — and
the faults done to them.

The processes are started the way the end-to-end suite starts them (its ``Platform`` and
``start_worker``, imported from tests/e2e/conftest.py, not copied). Only processes started
here are signalled, by their own ``Popen``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from bench.drain import pythonpath

from conftest import Platform, Proc, start_worker
from faults.lambdas import PUSH_TIMEOUT

__all__ = ["System"]

LAMBDA = "faults.lambdas:app"
# A killed worker's endpoint leaves the pool when its registration expires (and earlier by
# outlier ejection); short, so that runs do not wait on a dead endpoint for 15 s.
WORKER_TTL = 3 * PUSH_TIMEOUT


class System:
    """``nodes`` serve processes on one store, and ``workers`` worker processes.

    Args:
        tmp: a directory for logs, ready files and the lambda's record.
        store: the store URL every node serves (a SQLite file, or a PostgreSQL URL).
        nodes: serve processes (more than one needs PostgreSQL).
        workers: worker processes, registered through every node's URL.
        serve_args: extra ``conveyor serve`` options for every node.
    """

    def __init__(
        self,
        tmp: Path,
        store: str,
        *,
        nodes: int = 1,
        workers: int = 2,
        serve_args: Sequence[str] = (),
    ) -> None:
        self.tmp = tmp
        self.record = tmp / "record.txt"
        self.env = {
            **os.environ,
            "FAULTS_RECORD": str(self.record),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": pythonpath(),
        }
        self.nodes: list[Platform] = []
        for i in range(nodes):
            (tmp / f"n{i}").mkdir(parents=True, exist_ok=True)
            node = Platform(tmp / f"n{i}")
            node.db = store
            node.env = self.env
            node.serve_args = ["--node-id", f"n{i}", *serve_args]
            self.nodes.append(node)
        self.workers: list[Proc | None] = [None] * workers
        self._started = 0  # worker processes started so far (names their logs)
        self.down: set[str] = set()  # processes a fault took down on purpose

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def store(self) -> str:
        return self.nodes[0].db

    def start(self) -> None:
        """Start the nodes one after the other (the first migrates the store alone), then
        the workers."""
        for node in self.nodes:
            node.start()
        for j in range(len(self.workers)):
            self.start_worker(j)

    def start_worker(self, j: int) -> int:
        """Start worker ``j`` (again); return its pid."""
        self._started += 1
        args = [LAMBDA, "--server", ",".join(self.urls), "--ttl", str(WORKER_TTL)]
        proc = start_worker(args, self.tmp, self.env, log=f"worker{j}.{self._started}.log")
        self.workers[j] = proc
        self.down.discard(f"worker {j}")
        return proc.popen.pid

    def start_node(self, i: int) -> None:
        self.nodes[i].start()
        self.down.discard(self.node_name(i))

    def node_name(self, i: int) -> str:
        return "serve" if len(self.nodes) == 1 else f"serve n{i}"

    def node_proc(self, i: int) -> Proc:
        proc = self.nodes[i].proc
        if proc is None:
            raise RuntimeError(f"{self.node_name(i)} was never started")
        return proc

    def worker_proc(self, j: int) -> Proc:
        proc = self.workers[j]
        if proc is None:
            raise RuntimeError(f"worker {j} was never started")
        return proc

    def kill9_node(self, i: int) -> None:
        self.down.add(self.node_name(i))
        self.node_proc(i).kill9()

    def kill9_worker(self, j: int) -> None:
        self.down.add(f"worker {j}")
        self.worker_proc(j).kill9()

    def signal_node(self, i: int, sig: signal.Signals) -> None:
        self.node_proc(i).popen.send_signal(sig)

    def signal_worker(self, j: int, sig: signal.Signals) -> None:
        self.worker_proc(j).popen.send_signal(sig)

    def wipe_store(self) -> None:
        """Delete the SQLite store's files (the negative control: the store is lost)."""
        for suffix in ("", "-wal", "-shm"):
            Path(self.store + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        """SIGCONT everything (a stopped process cannot handle SIGTERM), then stop the workers
        and the nodes."""
        procs = [w for w in self.workers if w is not None]
        procs += [n.proc for n in self.nodes if n.proc is not None]
        for proc in procs:
            if proc.alive():
                proc.popen.send_signal(signal.SIGCONT)
        for proc in procs:
            proc.stop()
