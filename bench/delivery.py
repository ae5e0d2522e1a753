"""Delivery's benchmark: the drain rate by push size, the per-push overhead, and a drain over
three worker processes in two localities.

Starts a real ``conveyor serve`` (SQLite, durable acks) and real ``conveyor worker`` processes
serving ``bench.noop:app`` on 127.0.0.1, then:

1. For pushes of at most 1, 10 and 100 events (the subscription's ``max_batch``), publishes
   N events and measures the drain rate with one worker. The cost per event at batch size b
   is fitted as ``c(b) = per_event + per_push / b`` (least squares over the three runs), which
   gives the per-push overhead: what one push costs beyond its events (HTTP request and
   answer, encoding, scheduling, the ack's bookkeeping).
2. Three workers, two in zone A and one in zone B, drain N events: once with the
   subscription preferring zone A (the two zone-A workers take every push), once with no
   preference (all three share). Reports the drain rate and each zone's share.

Usage: ``python -m bench.delivery [--events 30000] [--write-doc docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.drain import (
    BIN,
    ROOT,
    machine,
    publish_all,
    pythonpath,
    read_stats,
    start_serve,
    wait_ready,
    write_doc,
)

ZONE_A = "bench/r1/a"
ZONE_B = "bench/r1/b"
SUBSCRIPTION = "bench.drain"


@dataclass
class Drain:
    label: str
    events: int
    seconds: float
    by_zone: dict[str, int]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def fit(batches: Sequence[int], costs: Sequence[float]) -> tuple[float, float]:
    """Least squares of ``cost = per_event + per_push / batch``: (per_event, per_push)."""
    xs = [1 / b for b in batches]
    n = len(xs)
    mx, my = sum(xs) / n, sum(costs) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, costs, strict=True)) / sxx
    return my - slope * mx, slope


async def _drain(
    events: int,
    *,
    max_batch: int,
    zones: Sequence[str],
    locality: Sequence[str],
    label: str,
) -> Drain:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-delivery-") as tmp:
        d = Path(tmp)
        env = {**os.environ, "PYTHONPATH": pythonpath()}
        serve = start_serve(str(d / "bench.db"), d, 0, env)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            base = "http://" + await wait_ready(d / "ready0", serve, "conveyor serve")
            for i, zone in enumerate(zones):
                workers.append(
                    subprocess.Popen(
                        [
                            str(BIN / "conveyor"),
                            "worker",
                            "bench.noop:app",
                            "--server",
                            base,
                            "--concurrency",
                            "1024",
                            "--locality",
                            zone,
                        ],
                        stdout=open(d / f"worker{i}.log", "wb"),
                        stderr=subprocess.STDOUT,
                        env={**env, "BENCH_STATS": str(d / f"stats{i}.json")},
                        cwd=ROOT,
                    )
                )
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
                await _until_endpoints(s, base, len(zones))
                await _configure(s, base, max_batch, locality)
                start = await publish_all(
                    s, [f"{base}/v1/topics/bench/events/batch"], events, 1000, 4
                )
                counts, last = await _until_handled(d, len(zones), events)
            by_zone: dict[str, int] = {}
            for zone, count in zip(zones, counts, strict=True):
                by_zone[zone] = by_zone.get(zone, 0) + count
            return Drain(label, events, last - start, by_zone)
        finally:
            for proc in (*workers, serve):
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()


async def _until_endpoints(session: aiohttp.ClientSession, base: str, n: int) -> None:
    for _ in range(400):
        async with session.get(f"{base}/v1/lambdas") as resp:
            lambdas = await resp.json()
        if sum(len(item["endpoints"]) for item in lambdas) >= n:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the workers did not register")


async def _configure(
    session: aiohttp.ClientSession, base: str, max_batch: int, locality: Sequence[str]
) -> None:
    """Set the drain subscription's push size and locality preference."""
    url = f"{base}/v1/subscriptions/{SUBSCRIPTION}"
    async with session.get(url) as resp:
        spec = (await resp.json())["subscription"]
    spec.pop("control", None)
    spec.update(max_batch=max_batch, locality=list(locality))
    async with session.put(url, json=spec) as resp:
        if resp.status >= 300:
            raise RuntimeError(f"cannot configure the subscription: {await resp.text()}")


async def _until_handled(d: Path, workers: int, events: int) -> tuple[list[int], float]:
    deadline = time.time() + 600
    while time.time() < deadline:
        stats = [read_stats(d / f"stats{i}.json") for i in range(workers)]
        counts = [int(s.get("count", 0)) for s in stats]  # type: ignore[call-overload]
        if sum(counts) >= events:
            last = max(float(s["last"]) for s in stats if s.get("last"))  # type: ignore[arg-type]
            return counts, last
        await asyncio.sleep(0.02)
    raise RuntimeError("the drain did not finish in 600 s")


async def run(events: int, batches: Sequence[int]) -> tuple[list[Drain], list[Drain]]:
    by_batch = [
        await _drain(events, max_batch=b, zones=[ZONE_A], locality=[], label=f"{b}")
        for b in batches
    ]
    three = [ZONE_A, ZONE_A, ZONE_B]
    placed = [
        await _drain(
            events,
            max_batch=100,
            zones=three,
            locality=[ZONE_A, ZONE_B],
            label="prefer zone A, spill to zone B",
        ),
        await _drain(events, max_batch=100, zones=three, locality=[], label="no preference"),
    ]
    return by_batch, placed


def table(events: int, by_batch: list[Drain], placed: list[Drain], when: str) -> str:
    batches = [int(d.label) for d in by_batch]
    per_event, per_push = fit(batches, [1 / d.rate for d in by_batch])
    lines = [
        f"Machine: {machine()}",
        f"Store: SQLite, 1 node. Run: {when}, `make bench` "
        f"(python -m bench.delivery --events {events})",
        "",
        "| pushes of at most | workers | drain rate | µs per event |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {d.label} event(s) | 1 | {d.rate:,.0f} events/s | {1e6 / d.rate:,.1f} |"
        for d in by_batch
    ]
    lines += [
        "",
        f"Fitted cost per event = {per_event * 1e6:,.1f} µs + {per_push * 1e6:,.0f} µs / batch "
        f"size: the **per-push overhead is about {per_push * 1e6:,.0f} µs** (one HTTP "
        "round trip with its encoding, scheduling and ack bookkeeping, over the two cores "
        "that the node and the worker share).",
        "",
        "| 3 workers (2 in zone A, 1 in zone B), pushes of ≤ 100 | drain rate | zone A | zone B |",
        "|---|---|---|---|",
    ]
    for d in placed:
        a, b = d.by_zone.get(ZONE_A, 0), d.by_zone.get(ZONE_B, 0)
        lines.append(
            f"| {d.label} | {d.rate:,.0f} events/s | {a / d.events:.0%} | {b / d.events:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batches", default="1,10,100")
    parser.add_argument("--write-doc", type=Path)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    by_batch, placed = asyncio.run(run(args.events, batches))
    text = table(args.events, by_batch, placed, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, text, "delivery")


if __name__ == "__main__":
    main()
