"""A lambda for the release process test.

Each call appends ``{"id", "version", "ok"}`` to ``RECORD_FILE``; ``VERSION`` is the worker's
``--version``. A worker started with ``FAIL_HALF=1`` (the bad release) fails every event whose
``n`` is odd.
"""

from __future__ import annotations

import json
import os

from conveyor import EventContext, Lambda, Retry, RetryPolicy

app = Lambda("released")
_record = os.environ.get("RECORD_FILE", "record.jsonl")
_version = os.environ.get("VERSION", "")
_fail_half = os.environ.get("FAIL_HALF") == "1"


@app.handler(
    "work",
    max_batch=1,
    retry=RetryPolicy(max_attempts=3, min_backoff=2.0, max_backoff=2.0),
)
async def handle(payload: dict[str, int], ctx: EventContext) -> None:
    """Succeed, or (the bad release) fail odd events."""
    ok = not (_fail_half and payload["n"] % 2)
    _write(ctx, ok)
    if not ok:
        raise Retry(reason=f"release {_version} cannot handle odd events")


def _write(ctx: EventContext, ok: bool) -> None:
    with open(_record, "a") as f:
        f.write(json.dumps({"id": ctx.id, "version": _version, "ok": ok}) + "\n")
