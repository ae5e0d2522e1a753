"""Lambdas served by real ``conveyor worker`` processes in the end-to-end tests.

Every handler call appends one JSON line to the file named by ``RECORD_FILE``: the event id,
its key, its attempt, the payload and the wall time of the call.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from conveyor import EventContext, Lambda, Retry, RetryPolicy

app = Lambda("e2e")
_record = os.environ.get("RECORD_FILE", "record.jsonl")


def _write(ctx: EventContext, payload: dict[str, object]) -> None:
    line = json.dumps(
        {
            "id": ctx.id,
            "key": ctx.key,
            "attempt": ctx.attempt,
            "payload": payload,
            "at": time.time(),
            "sub": ctx.subscription,
        }
    )
    with open(_record, "a") as f:
        f.write(line + "\n")


@app.handler("orders", max_batch=100)
async def record(payload: dict[str, object], ctx: EventContext) -> None:
    """Record the event."""
    _write(ctx, payload)


@app.handler(
    "ledger", ordered=True, retry=RetryPolicy(max_attempts=10, min_backoff=0.1, max_backoff=0.2)
)
async def ledger(payload: dict[str, object], ctx: EventContext) -> None:
    """Record the event; events with ``fail_until`` fail until that attempt."""
    fail_until = int(payload.get("fail_until", 0))  # type: ignore[call-overload]
    if ctx.attempt <= fail_until:
        raise Retry(f"failing on purpose until attempt {fail_until}", after=0.1)
    _write(ctx, payload)


@app.handler("later")
def later(payload: dict[str, object], ctx: EventContext) -> None:
    """A sync handler: record the event."""
    _write(ctx, payload)


@app.handler("slow", max_concurrency=20, max_batch=5)
async def slow(payload: dict[str, object], ctx: EventContext) -> None:
    """Take 50 ms per event, so that work is in flight when a test stops the node."""
    await asyncio.sleep(0.05)
    _write(ctx, payload)
