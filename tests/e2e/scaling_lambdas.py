"""A lambda for the autoscaler's end-to-end test, served by ``conveyor worker --max N``.

Every handler call appends the event's id, and the pid of the process that ran it, as one
line to the file named by ``RECORD_FILE``, in one ``O_APPEND`` write, so that concurrent
processes never interleave their lines.
"""

from __future__ import annotations

import asyncio
import os

from conveyor import EventContext, Lambda

app = Lambda("scaling")
_record = os.environ.get("RECORD_FILE", "record.txt")

HANDLER_SECONDS = 0.03
"""Time one event takes, so that a few processes of small concurrency keep a backlog."""


@app.handler("scaling-work", max_concurrency=64, max_batch=4)
async def work(payload: dict[str, object], ctx: EventContext) -> None:
    """Take a while, then record the event."""
    await asyncio.sleep(HANDLER_SECONDS)
    fd = os.open(_record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
