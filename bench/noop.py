"""The benchmark's lambda: handlers that do nothing but count and time what they receive.

A daemon thread writes the figures to the file named by ``BENCH_STATS`` every 20 ms, so the
benchmark sees the drain finish without asking the platform.
"""

from __future__ import annotations

import json
import os
import threading
import time

from conveyor import Lambda

app = Lambda("bench")

_stats: dict[str, object] = {"count": 0, "first": None, "last": None, "latency_count": 0}
_latencies: list[float] = []


@app.handler("bench", max_concurrency=1024, max_batch=500)
async def drain(payload: dict[str, object]) -> None:
    """Count one event."""
    now = time.time()
    if _stats["first"] is None:
        _stats["first"] = now
    _stats["last"] = now
    _stats["count"] = int(_stats["count"]) + 1  # type: ignore[call-overload]


@app.handler("latency", max_concurrency=256, max_batch=100)
async def latency(payload: dict[str, float]) -> None:
    """Record publish→handler latency (the publisher put its send time in ``t``)."""
    _latencies.append(time.time() - payload["t"])


def _writer(path: str) -> None:
    while True:
        time.sleep(0.02)
        snapshot = dict(_stats, latencies=list(_latencies))
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(snapshot, f)
        os.replace(tmp, path)


if os.environ.get("BENCH_STATS"):
    threading.Thread(target=_writer, args=(os.environ["BENCH_STATS"],), daemon=True).start()
