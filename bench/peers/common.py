"""One workload through any task library, counted one way: the driver and the task's record.

Stdlib only. Each peer's module (``celery_peer``, ``dramatiq_peer``, ``taskiq_peer``) runs under
``.venv-peers`` and subclasses :class:`Peer`; ``python -m bench.peers.<peer> --case
drain|delayed|latency --tasks N --out result.json``, with ``BENCH_PEER_BROKER`` naming the Redis,
then:

1. starts the library's worker processes (:meth:`Peer.start_workers`);
2. enqueues ``WARM_UP`` tasks and waits until they ran, in every worker process;
3. enqueues the tasks from this one process (:meth:`Peer.enqueue`: as fast as the library goes,
   or paced at ``--rate``/s), each with a delay of ``--delay`` seconds for the delayed case
   (the latency case: single tasks at a steady ``--rate``/s, no delay);
4. waits until every task ran, or until nothing new ran for ``STALL`` seconds;
5. stops the workers (warm shutdown: SIGTERM), then counts.

Every task calls :func:`note` first thing: one line ``id entry due`` appended by a single
``write(2)`` to its process's file (``BENCH_PEER_RECORDS/<pid>.txt``): a few microseconds,
against the hundreds a task costs these libraries. Losses and duplicates are counted from these
lines; in the timed cases (``TIMED``) ``due`` is the producer's ``time.time()`` just before the
send, plus the delay (:func:`stamp`), so lateness = entry - due, on one clock, whatever the
library's own idea of the ETA; in the latency case (no delay) that is the send→entry latency, as
Conveyor's side measures publish→handler latency. A drain task carries 0: nothing to time.

:func:`tally` turns records into the figures for the peers and for the Conveyor side alike.
"""

from __future__ import annotations

import abc
import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDS_ENV = "BENCH_PEER_RECORDS"
BROKER_ENV = "BENCH_PEER_BROKER"
WARM_UP = 100
"""Tasks run before measuring, so every worker process is up and connected."""
STALL = 30.0
"""Seconds without a new record after which a run stops waiting (the rest counts as lost)."""
CASES = ("drain", "delayed", "latency")
TIMED = ("delayed", "latency")
"""The cases whose tasks carry the send time (:func:`stamp`)."""

Row = tuple[str, float, float]
"""(task id, entry time, due time or 0) as noted by a task."""

_fd: dict[int, int] = {}  # pid -> the record file of this process (a forked child opens its own)


def note(task_id: object, due: float) -> None:
    """Record that a task runs now (first thing in the task): one line, one write(2)."""
    entry = time.time()
    pid = os.getpid()
    fd = _fd.get(pid)
    if fd is None:
        path = os.path.join(os.environ[RECORDS_ENV], f"{pid}.txt")
        fd = _fd[pid] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{task_id} {entry!r} {due!r}\n".encode())


def stamp(delay: float, timed: bool) -> float:
    """The ``due`` a task carries: the producer's ``time.time()`` now (just before the send)
    plus ``delay`` when ``timed``, else 0 (untimed: no lateness counted)."""
    return time.time() + delay if timed else 0.0


def pause(start: float, n: int, rate: float) -> float:
    """Seconds to wait before the ``n``-th send of a steady ``rate``/s begun at ``start``
    (``time.perf_counter()``); 0 or less: send now (a rate of 0 means as fast as it goes)."""
    return start + n / rate - time.perf_counter() if rate > 0 else 0.0


def read_rows(folder: Path) -> list[Row]:
    """Every complete line noted in ``folder`` so far."""
    rows: list[Row] = []
    for path in folder.glob("*.txt"):
        for line in path.read_text().split("\n")[:-1]:  # the last piece may be half-written
            task_id, entry, due = line.split()
            rows.append((task_id, float(entry), float(due)))
    return rows


def wait_rows(folder: Path, expected: int, timeout: float) -> list[Row]:
    """Wait until ``expected`` rows were noted, nothing new came for ``STALL`` s, or timeout."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while True:
        rows = read_rows(folder)
        now = time.monotonic()
        if len(rows) != seen:
            seen, since = len(rows), now
        if len(rows) >= expected or now > deadline or now - since > STALL:
            return rows
        time.sleep(0.05)


def tally(rows: Sequence[Row], tasks: int, start: float, enqueued: float) -> dict[str, object]:
    """The figures of one run from its measured rows (warm-ups left out).

    Args:
        rows: what the tasks noted.
        tasks: how many were enqueued.
        start: ``time.time()`` before the first enqueue.
        enqueued: ``time.time()`` once the last enqueue returned.
    """
    distinct = {r[0] for r in rows}
    last = max((r[1] for r in rows), default=start)
    return {
        "tasks": tasks,
        "enqueue_seconds": enqueued - start,
        "drain_seconds": last - start,
        "ran": len(rows),
        "lost": tasks - len(distinct),
        "duplicates": len(rows) - len(distinct),
        "lateness": [entry - due for _, entry, due in rows if due > 0],
    }


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a worker process in a session of its own (so its children can be killed too)."""
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (each library's warm shutdown), then SIGKILL to the whole session if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Peer(abc.ABC):
    """A task library under the common workload: how to start its workers and enqueue."""

    name = ""
    processes = 2
    """Worker processes the library runs tasks in (each is waited for before measuring)."""
    stop_timeout = 30.0
    """Seconds a warm shutdown may take before the workers are killed (all tasks ran by then:
    the counts do not depend on it)."""

    @abc.abstractmethod
    def start_workers(
        self, case: str, env: dict[str, str], log: Path
    ) -> list[subprocess.Popen[bytes]]:
        """Start the processes that run the tasks (``case``: one of ``CASES``)."""

    @abc.abstractmethod
    def send(self, task_id: int, due: float, delay: float) -> None:
        """Enqueue one task that calls ``note(task_id, due)``, ``delay`` seconds from now."""

    @abc.abstractmethod
    def config(self) -> str:
        """The configuration measured, in words."""

    @abc.abstractmethod
    def versions(self) -> str:
        """The library's packages and their versions."""

    def enqueue(self, ids: range, delay: float, rate: float, timed: bool) -> None:
        """Send every task, one call at a time, paced at ``rate``/s (0: as fast as it goes),
        each carrying its send time (+ ``delay``) when ``timed``."""
        start = time.perf_counter()
        for n, task_id in enumerate(ids):
            if (wait := pause(start, n, rate)) > 0:
                time.sleep(wait)
            self.send(task_id, stamp(delay, timed), delay)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the producer's connections."""


def _warm_up(peer: Peer, folder: Path, log: Path) -> int:
    """Run warm-up tasks until every worker process ran some; how many were sent."""
    sent = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(read_rows(folder)) >= sent:
            if sent and len(list(folder.glob("*.txt"))) >= peer.processes:
                return sent
            peer.enqueue(range(-WARM_UP, 0), 0.0, 0.0, False)  # (again: one process took all)
            sent += WARM_UP
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{peer.name}: the workers did not start\n{tail}")


def run(peer: Peer, case: str, tasks: int, delay: float, rate: float) -> dict[str, object]:
    """One measured run of ``case`` (see the module's docstring); the figures."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{peer.name}-") as tmp:
        folder = Path(tmp)
        log = Path(tempfile.gettempdir(), f"bench-{peer.name}-{os.getpid()}.log")
        env = {**os.environ, RECORDS_ENV: str(folder)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        workers = peer.start_workers(case, env, log)
        try:
            warm = _warm_up(peer, folder, log)
            time.sleep(0.5)
            start = time.time()
            peer.enqueue(range(tasks), delay, rate, case in TIMED)
            enqueued = time.time()
            wait_rows(folder, warm + tasks, delay + 900)
        finally:
            for worker in workers:
                stop(worker, peer.stop_timeout)
            peer.close()
        rows = [r for r in read_rows(folder) if not r[0].startswith("-")]
        log.unlink(missing_ok=True)
    figures = tally(rows, tasks, start, enqueued)
    figures.update(
        peer=peer.name,
        case=case,
        delay=delay,
        rate=rate,
        config=peer.config(),
        versions=peer.versions(),
    )
    return figures


def main(peer: Peer) -> None:
    """The command line of a peer's module."""
    parser = argparse.ArgumentParser(description=f"{peer.name} under bench.peers' workload")
    parser.add_argument("--case", choices=CASES, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds (the delayed case)")
    parser.add_argument("--rate", type=float, default=0.0, help="tasks sent/s (0: at once)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figures = run(peer, args.case, args.tasks, args.delay, args.rate)
    args.out.write_text(json.dumps(figures))
