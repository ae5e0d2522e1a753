"""A lambda for the locality and host-health process tests.

Each call appends ``{"id", "zone", "pid"}`` to ``RECORD_FILE``; ``ZONE`` names the worker's
place (the same as its ``--locality``). A worker started with ``CAN_HANG=1`` hangs in every
handler call for ``HANG_SECONDS`` while the file ``HANG_FILE`` exists, past the push timeout.
"""

from __future__ import annotations

import asyncio
import json
import os

from conveyor import EventContext, Lambda, RetryPolicy

ZONE_A = "test/r1/a"
ZONE_B = "test/r1/b"

app = Lambda("zoned")
_record = os.environ.get("RECORD_FILE", "record.jsonl")
_zone = os.environ.get("ZONE", "")
_hang_file = os.environ.get("HANG_FILE", "")
_can_hang = os.environ.get("CAN_HANG") == "1"


@app.handler(
    "jobs",
    max_batch=10,
    push_timeout=1.0,
    locality=[ZONE_A, ZONE_B],
    retry=RetryPolicy(max_attempts=100, min_backoff=0.05, max_backoff=0.2),
)
async def run(payload: dict[str, object], ctx: EventContext) -> None:
    """Record where the event ran (after hanging, when told to)."""
    if _hanging():
        await asyncio.sleep(float(os.environ.get("HANG_SECONDS", "3")))
        return  # too late: the platform has given the push up and retries elsewhere
    _write(ctx)


def _hanging() -> bool:
    return _can_hang and bool(_hang_file) and os.path.exists(_hang_file)


def _write(ctx: EventContext) -> None:
    line = json.dumps({"id": ctx.id, "zone": _zone, "pid": os.getpid()})
    with open(_record, "a") as f:
        f.write(line + "\n")
