"""The fault suite's lambda: records every call it gets, and does nothing else.

Each call appends one line to the file named by ``FAULTS_RECORD`` with a single ``os.write``
on an ``O_APPEND`` descriptor, before the handler returns: a line is in the file, whole,
before the platform can hear of the success, and stays there when the worker is killed or
stopped right after. The line is::

    <event id> <idempotency key> <key> <seq> <deliver_at ms|-1> <entered, epoch s> <attempt> <pid>
"""

from __future__ import annotations

import os
import time

from conveyor import EventContext, Lambda, RetryPolicy

app = Lambda("faults")

TOPIC = "faults"
SUBSCRIPTION = "faults.record"
# A stopped worker's pushes time out within PUSH_TIMEOUT and go to another worker; the retry
# policy never lets an event go dead under faults (a dead event would read as lost).
PUSH_TIMEOUT = 2.0
RETRY = RetryPolicy(max_attempts=1000, min_backoff=0.1, max_backoff=1.0)

_fd = os.open(
    os.environ.get("FAULTS_RECORD", "faults-record.txt"),
    os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    0o644,
)
_pid = os.getpid()


@app.handler(TOPIC, ordered=True, push_timeout=PUSH_TIMEOUT, retry=RETRY, max_batch=32)
async def record(payload: dict[str, object], ctx: EventContext) -> None:
    """Record the call: which event, its key and sequence number, when it was due and ran."""
    entered = time.time()
    due = -1 if ctx.deliver_at is None else round(ctx.deliver_at.timestamp() * 1000)
    line = (
        f"{ctx.id} {payload['idem']} {ctx.key} {payload['seq']} {due} {entered:.6f} "
        f"{ctx.attempt} {_pid}\n"
    )
    os.write(_fd, line.encode())
