"""A lambda for the per-key order test of delayed events, served by a real ``conveyor worker``.

Its handler is ordered. Every call records one line in the file named by ``RECORD_FILE``::

    <event id> <key> <payload name> <time.time() at entry>

written with one ``os.write`` on an ``O_APPEND`` descriptor, so lines are whole and in the
order of entry.
"""

from __future__ import annotations

import os
import time

from conveyor import EventContext, Lambda

app = Lambda("order")
_fd = os.open(
    os.environ.get("RECORD_FILE", "record.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
)


@app.handler("sequenced", ordered=True)
async def record(payload: str, ctx: EventContext) -> None:
    """Record the event's id, key, name and the wall time of entry."""
    os.write(_fd, f"{ctx.id} {ctx.key} {payload} {time.time():.6f}\n".encode())
