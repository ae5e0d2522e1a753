"""What the fault suite observed: the lambda's calls, and the faults it did, with their times."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["Call", "Fault", "Records"]


class Call(NamedTuple):
    """One handler call, as :mod:`faults.lambdas` wrote it."""

    id: str
    idem: str
    key: str
    seq: int
    deliver_at_ms: int | None
    entered: float
    attempt: int
    pid: int


@dataclass
class Fault:
    """One fault done to a process, and when the suite undid it.

    Attributes:
        kind: ``kill -9``, ``SIGSTOP``, ``disk full``, ``wipe`` (the negative control).
        target: ``serve``, ``serve n1``, ``worker 0`` …
        at: wall time of the fault.
        restored: wall time the restart (or SIGCONT, or freeing the disk) was issued.
        pid: for a worker, the pid that serves after the restore (its first call counts as
            the worker's recovery), else ``None``: any call counts.
    """

    kind: str
    target: str
    at: float
    restored: float | None = None
    pid: int | None = None


class Records:
    """The lambda's record file, read incrementally (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: list[Call] = []
        self.handled: set[str] = set()  # idempotency keys with at least one call
        self._offset = 0

    def read(self) -> list[Call]:
        """Read what was appended since the last read; return every call so far."""
        if not self.path.exists():
            return self.calls
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].decode().splitlines():
            event_id, idem, key, seq, due, entered, attempt, pid = line.split()
            due_ms = int(due)
            call = Call(
                event_id,
                idem,
                key,
                int(seq),
                None if due_ms < 0 else due_ms,
                float(entered),
                int(attempt),
                int(pid),
            )
            self.calls.append(call)
            self.handled.add(idem)
        return self.calls
