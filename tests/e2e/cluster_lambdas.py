"""Lambdas served by real ``conveyor worker`` processes in the cluster end-to-end tests.

Every handler call appends one JSON line to the file named by ``RECORD_FILE``: the event id,
key, partition, offset, attempt, the payload's ``seq`` and the wall time the call finished.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from conveyor import EventContext, Lambda

ordered_app = Lambda("cl-ordered")
slow_app = Lambda("cl-slow")
_record = os.environ.get("RECORD_FILE", "record.jsonl")


def _write(ctx: EventContext, payload: dict[str, object]) -> None:
    line = json.dumps(
        {
            "id": ctx.id,
            "key": ctx.key,
            "partition": ctx.partition,
            "offset": ctx.offset,
            "attempt": ctx.attempt,
            "seq": payload.get("seq"),
            "at": time.time(),
        }
    )
    with open(_record, "a") as f:
        f.write(line + "\n")


@ordered_app.handler("cl-orders", ordered=True, max_concurrency=64, max_batch=32)
async def ordered(payload: dict[str, object], ctx: EventContext) -> None:
    """Per-key FIFO: record the event after a short pause, so pushes are in flight."""
    await asyncio.sleep(0.002)
    _write(ctx, payload)


@slow_app.handler("cl-slow", max_concurrency=20, max_batch=5)
async def slow(payload: dict[str, object], ctx: EventContext) -> None:
    """Take 50 ms per event, so that work is in flight when a test stops a node."""
    await asyncio.sleep(0.05)
    _write(ctx, payload)
