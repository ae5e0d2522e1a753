"""A throwaway ``redis-server`` on a free 127.0.0.1 port, killed on exit: in memory only, or
with an append-only file fsynced every second (``appendonly yes``, ``appendfsync everysec``).

Stdlib only: the project's venv (which starts it) and ``.venv-peers`` both import it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


def redis_server_path() -> str | None:
    """The ``redis-server`` binary on PATH, or ``None`` when Redis is not installed."""
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``with RedisServer() as redis: redis.url`` — a fresh, empty, in-memory Redis.

    Args:
        binary: the ``redis-server`` to run (default: the one on PATH).
        appendonly: persist every write to an append-only file, fsynced once a second
            (``appendonly yes``, ``appendfsync everysec``); RDB snapshots stay off.
    """

    def __init__(self, binary: str | None = None, *, appendonly: bool = False) -> None:
        found = binary or redis_server_path()
        if found is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = found
        self.appendonly = appendonly
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _persistence_args(self) -> list[str]:
        if self.appendonly:
            return ["--appendonly", "yes", "--appendfsync", "everysec"]
        return ["--appendonly", "no"]

    def version(self) -> str:
        out = subprocess.run(
            [self.binary, "--version"], check=False, capture_output=True, text=True
        ).stdout
        for word in out.split():
            if word.startswith("v="):
                return word[2:]
        return out.strip()

    def start(self) -> RedisServer:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        for _ in range(5):  # another process may take the free port first
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    *self._persistence_args(),
                    "--dir",
                    self._dir.name,
                ],
                stdout=open(Path(self._dir.name) / "redis.log", "wb"),
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _ping(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
            self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
