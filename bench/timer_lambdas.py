"""The delayed-events benchmark's lambda: handlers that only note when each event arrived.

A handler appends ``(topic, event id, ctx.deliver_at, time.time() at entry, payload "t")`` to
a list and returns; nothing is formatted or written while events flow. A daemon thread writes
the record count to ``BENCH_TIMERS_DIR/count`` every 50 ms, and when the benchmark writes a
number *n* to ``BENCH_TIMERS_DIR/dump.req`` it writes the records noted since the last dump to
``BENCH_TIMERS_DIR/dump-<n>.jsonl`` (one JSON array per line). ``bench.timers`` dumps only
once a case is over, so the file work never overlaps the events it measures.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path

from conveyor import EventContext, Lambda

app = Lambda("timers")

Record = tuple[str, str, datetime | None, float, float | None]
_records: list[Record] = []


@app.handler("delayed", max_concurrency=1024, max_batch=500)
async def delayed(payload: dict[str, float], ctx: EventContext) -> None:
    """Case A: 100,000 events due 2 to 10 s after their publish."""
    _records.append((ctx.topic, ctx.id, ctx.deliver_at, time.time(), payload.get("t")))


@app.handler("countdown", max_concurrency=1024, max_batch=500)
async def countdown(payload: dict[str, float], ctx: EventContext) -> None:
    """Case B: single events published with ``delay: 2`` (Celery's ``countdown=2``)."""
    _records.append((ctx.topic, ctx.id, ctx.deliver_at, time.time(), payload.get("t")))


@app.handler("probe", max_concurrency=1024, max_batch=500)
async def probe(payload: dict[str, float], ctx: EventContext) -> None:
    """Case C: the small lateness check run with and without the far backlog."""
    _records.append((ctx.topic, ctx.id, ctx.deliver_at, time.time(), payload.get("t")))


@app.handler("far", max_concurrency=1024, max_batch=500)
async def far(payload: dict[str, float], ctx: EventContext) -> None:
    """Case C's backlog: due in hours to days, so never called during a run."""
    _records.append((ctx.topic, ctx.id, ctx.deliver_at, time.time(), payload.get("t")))


def _dump(path: Path, records: list[Record]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for topic, event_id, deliver_at, entry, sent in records:
            due = None if deliver_at is None else deliver_at.timestamp()
            f.write(json.dumps([topic, event_id, due, entry, sent]) + "\n")
    os.replace(tmp, path)


def _writer(folder: Path) -> None:
    dumped = 0
    served = 0
    while True:
        time.sleep(0.05)
        count = len(_records)
        tmp = folder / "count.tmp"
        tmp.write_text(str(count))
        os.replace(tmp, folder / "count")
        try:
            wanted = int((folder / "dump.req").read_text())
        except (OSError, ValueError):
            continue
        if wanted > served:
            _dump(folder / f"dump-{wanted}.jsonl", _records[dumped:count])
            dumped = count
            served = wanted


if os.environ.get("BENCH_TIMERS_DIR"):
    threading.Thread(
        target=_writer, args=(Path(os.environ["BENCH_TIMERS_DIR"]),), daemon=True
    ).start()
