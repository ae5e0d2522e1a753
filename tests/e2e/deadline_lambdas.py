"""A lambda whose handlers take 1.5 s, on subscriptions whose push timeout is 1 s.

Each call appends ``{"id", "attempt", "step", "sub"}`` to ``RECORD_FILE`` when it starts
(``step: start``) and when it completes (``step: done``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from conveyor import EventContext, Lambda, RetryPolicy

app = Lambda("deadline")
_record = os.environ.get("RECORD_FILE", "record.jsonl")
HANDLER_SECONDS = 1.5
POLICY = RetryPolicy(max_attempts=3, min_backoff=0.05, max_backoff=0.1)


def _write(ctx: EventContext, step: str) -> None:
    line = json.dumps({"id": ctx.id, "attempt": ctx.attempt, "step": step, "sub": ctx.subscription})
    with open(_record, "a") as f:
        f.write(line + "\n")


@app.handler("slow", push_timeout=1.0, retry=POLICY)
async def slow(payload: dict[str, object], ctx: EventContext) -> None:
    """Take 1.5 s: past the push timeout, every time."""
    _write(ctx, "start")
    await asyncio.sleep(HANDLER_SECONDS)
    _write(ctx, "done")


@app.handler("slow", subscription="deadline.blocking", push_timeout=1.0, retry=POLICY)
def blocking(payload: dict[str, object], ctx: EventContext) -> None:
    """The same in a sync handler, which runs in a thread and cannot be stopped."""
    _write(ctx, "start")
    time.sleep(HANDLER_SECONDS)
    _write(ctx, "done")


@app.handler(
    "quick",
    push_timeout=1.0,
    retry=RetryPolicy(max_attempts=20, min_backoff=0.2, max_backoff=0.5),
)
async def quick(payload: dict[str, object], ctx: EventContext) -> None:
    """Take 0.3 s: well within the push timeout, when the worker runs."""
    _write(ctx, "start")
    await asyncio.sleep(0.3)
    _write(ctx, "done")
