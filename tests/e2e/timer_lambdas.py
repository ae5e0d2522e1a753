"""A lambda for the delayed-delivery crash test, served by a real ``conveyor worker``.

Every handler call records one line in the file named by ``RECORD_FILE``::

    <event id> <payload seq> <ctx.deliver_at, epoch seconds> <time.time() at entry>

Lines are plain text, not JSON, so that 100,000 of them cost little to write and to read back.
They are gathered in memory and written with one ``os.write`` per turn of the event loop
(``O_APPEND``), so a reader sees each push's lines within a tick, whole, in the order of
entry, even if the worker is stopped right after; nothing stays in a user-space buffer.
"""

from __future__ import annotations

import asyncio
import os
import time

from conveyor import EventContext, Lambda

app = Lambda("timers")
_fd = os.open(
    os.environ.get("RECORD_FILE", "record.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
)
_pending: list[str] = []


def _flush() -> None:
    data = "".join(_pending).encode()
    _pending.clear()
    while data:
        data = data[os.write(_fd, data) :]


@app.handler("delayed")
async def record(payload: dict[str, int], ctx: EventContext) -> None:
    """Record the event's id, sequence number, scheduled time and the wall time of entry."""
    entered = time.time()
    due = -1.0 if ctx.deliver_at is None else ctx.deliver_at.timestamp()
    if not _pending:
        asyncio.get_running_loop().call_soon(_flush)
    _pending.append(f"{ctx.id} {payload['seq']} {due:.6f} {entered:.6f}\n")
