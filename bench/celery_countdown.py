"""Celery's side of the countdown comparison: tasks enqueued with ``countdown=2`` on Redis.

Runs under ``.venv-peers`` (Celery is never installed beside Conveyor): ``bench.timers``
starts a throwaway ``redis-server`` and runs
``.venv-peers/bin/python -m bench.celery_countdown --broker redis://… --out result.json``.
This process starts a real ``celery worker`` (prefork pool, ``--concurrency 2``: one child
per core), waits until it is ready, enqueues the tasks one ``apply_async`` at a time at a
steady rate, waits until all ran, stops the worker (warm shutdown) and writes what each task
noted to ``--out``. Each task notes its entry time (``time.time()``, first thing), the
producer's ``time.time()`` just before its ``apply_async`` and the ETA Celery gave it;
lateness = entry - (enqueue time + countdown).

Stdlib and Celery only: the project's package is not importable here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from celery import Celery, Task
from celery.signals import worker_ready

ROOT = Path(__file__).resolve().parent.parent

app = Celery("bench_countdown", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://"))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)

_out: dict[str, TextIO] = {}  # this child's record file, opened by its first task


@app.task(bind=True, name="bench.countdown")
def countdown_task(self: Task[Any, Any], enqueued: float, countdown: float) -> None:
    """Note when this task started against when it was enqueued and its ETA."""
    entry = time.time()
    out = _out.get("f")
    if out is None:
        path = Path(os.environ["BENCH_CELERY_RECORDS"], f"{os.getpid()}.txt")
        out = _out["f"] = path.open("a")
    out.write(f"{enqueued!r} {countdown!r} {entry!r} {self.request.eta or '-'}\n")
    out.flush()


@worker_ready.connect
def _ready(**_: object) -> None:
    Path(os.environ["BENCH_CELERY_RECORDS"], "ready").write_text(str(os.getpid()))


def _records(folder: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    for path in folder.glob("*.txt"):
        rows.extend(line.split() for line in path.read_text().splitlines() if line)
    return rows


def _wait_for(folder: Path, n: int, timeout: float) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _records(folder)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def start_worker(folder: Path, broker: str, concurrency: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_CELERY_BROKER": broker, "BENCH_CELERY_RECORDS": str(folder)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_countdown",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(folder / "worker.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not (folder / "ready").exists():
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_worker(worker)
            log = (folder / "worker.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"celery worker did not start:\n{log}")
        time.sleep(0.05)
    return worker


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def enqueue(tasks: int, countdown: float, rate: float) -> float:
    """Enqueue one ``apply_async`` at a time, at ``rate``/s (0: at once); the seconds taken."""
    start = time.perf_counter()
    for i in range(tasks):
        pause = start + i / rate - time.perf_counter() if rate > 0 else 0
        if pause > 0:
            time.sleep(pause)
        countdown_task.apply_async(args=(time.time(), countdown), countdown=countdown)
    return time.perf_counter() - start


def run(
    broker: str, tasks: int, countdown: float, rate: float, concurrency: int
) -> dict[str, object]:
    import celery
    import kombu
    import redis

    app.conf.broker_url = broker
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        folder = Path(tmp)
        worker = start_worker(folder, broker, concurrency)
        try:
            # Warm up the producer's connection and both children before measuring.
            for _ in range(concurrency * 2):
                countdown_task.apply_async(args=(time.time(), 0.0))
            _wait_for(folder, concurrency * 2, 30)
            enqueue_seconds = enqueue(tasks, countdown, rate)
            rows = _wait_for(folder, concurrency * 2 + tasks, countdown + 60)
        finally:
            stop_worker(worker)
    lateness: list[float] = []
    lateness_eta: list[float] = []
    for enqueued, cd, entry, eta in rows:
        if float(cd) == 0.0:
            continue  # warm-up
        lateness.append(float(entry) - (float(enqueued) + float(cd)))
        if eta != "-":
            lateness_eta.append(float(entry) - datetime.fromisoformat(eta).timestamp())
    return {
        "tasks": tasks,
        "countdown": countdown,
        "rate": rate,
        "concurrency": concurrency,
        "pool": "prefork",
        "enqueue_seconds": enqueue_seconds,
        "lateness": lateness,
        "lateness_eta": lateness_eta,
        "versions": f"Celery {celery.__version__}, kombu {kombu.__version__}, "
        f"redis-py {redis.__version__}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--countdown", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=0, help="tasks enqueued/s (0: at once)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run(args.broker, args.tasks, args.countdown, args.rate, args.concurrency)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
