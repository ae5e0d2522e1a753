"""Real processes for the end-to-end tests: ``conveyor serve`` and ``conveyor worker``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 20.0


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process with its log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.log = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def stop(self, timeout: float = 20.0) -> int:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(args: list[str], tmp: Path, env: dict[str, str], log: str = "worker.log") -> Proc:
    """A ``conveyor worker`` process (run in tests/e2e), once it says it is serving (in its
    own log: a log shared with an earlier worker would say so at once)."""
    proc = Proc([str(BIN / "conveyor"), "worker", *args], tmp / log, env, HERE)
    deadline = time.monotonic() + START_TIMEOUT
    while "serving" not in proc.output():
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError("conveyor worker did not start:\n" + proc.output())
        time.sleep(0.05)
    return proc


class Platform:
    """A ``conveyor serve`` process on a fixed port (so it can restart on the same one)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = str(tmp / "conveyor.db")  # a SQLite file, or a PostgreSQL URL
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Proc | None = None
        self.workers: list[Proc] = []
        self.record = tmp / "record.jsonl"
        self.env = {**os.environ, "RECORD_FILE": str(self.record), "PYTHONUNBUFFERED": "1"}
        self.serve_args: list[str] = []  # extra ``conveyor serve`` options

    def start(self) -> None:
        ready = self.tmp / "ready"
        ready.unlink(missing_ok=True)
        self.proc = Proc(
            [
                str(BIN / "conveyor"),
                "serve",
                "--store",
                str(self.db),
                "--port",
                str(self.port),
                "--ready-file",
                str(ready),
                *self.serve_args,
            ],
            self.tmp / "serve.log",
            self.env,
            self.tmp,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not (ready.exists() and ready.read_text().strip()):
            if not self.proc.alive() or time.monotonic() > deadline:
                raise RuntimeError("conveyor serve did not start:\n" + self.proc.output())
            time.sleep(0.05)

    def worker(
        self, ref: str = "e2e_lambdas:app", *extra: str, env: dict[str, str] | None = None
    ) -> Proc:
        proc = start_worker(
            [ref, "--server", self.url, *extra],
            self.tmp,
            {**self.env, **(env or {})},
            log=f"worker{len(self.workers)}.log",
        )
        self.workers.append(proc)
        return proc

    def records(self) -> list[dict[str, object]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]


@pytest.fixture
def platform(tmp_path: Path, store_url: str) -> Iterator[Platform]:
    """A running ``conveyor serve`` on a fresh store (SQLite file, or PostgreSQL schema);
    stopped after the test."""
    p = Platform(tmp_path)
    p.db = store_url
    p.start()
    yield p
    for worker in p.workers:
        worker.stop()
    if p.proc is not None:
        p.proc.stop()


def wait_for(predicate: object, timeout: float = 20.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")
