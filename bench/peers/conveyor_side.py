"""Conveyor under bench.peers' workload, counted as the peers are (runs in the project's venv).

One real ``conveyor serve`` (SQLite, WAL, ``synchronous=FULL``: a publish is acknowledged once
durable) and one real ``conveyor worker`` running :mod:`bench.timer_lambdas`, started by
:class:`bench.timers.Platform`: two processes for two cores. Each handler appends
``(topic, event id, deliver_at, entry time, payload "t")`` to a list and returns; the worker
writes the list out only between cases. Losses and duplicates are counted from these ids as the
peers' are (:func:`bench.peers.common.tally`).

* drain: N events published by one producer with one SDK call per event, as the peers'
  producers make one call per task: ``AsyncPublisher.submit`` (``client.publisher()``), which
  gathers the calls into batch requests (linger 5 ms, at most 1,000 events per request, 4
  requests in flight); enqueue rate = N / (last acknowledgement - first call), drain rate =
  N / (last handler call - first call);
* delayed: single publishes with ``delay`` seconds, paced at ``rate``/s; lateness = handler
  entry - (the publisher's ``time.time()`` before the request + the delay), as for the peers;
* latency: single publishes at a steady 1,000/s (:func:`bench.drain.steady`);
  publish→handler latency = handler entry - send time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.drain import ROOT, steady
from bench.peers.common import Row, pause, tally
from bench.timers import JSON, Platform, Record
from conveyor.client import AsyncClient

CONFIG = (
    "conveyor serve (SQLite WAL, synchronous=FULL) + 1 conveyor worker (--concurrency 1024; "
    "max_batch 500); producer: one AsyncPublisher.submit per task (the SDK batches them: "
    "linger 5 ms, <= 1,000 events per request, 4 requests in flight); delayed and latency: one "
    "HTTP publish per event"
)


@dataclass(frozen=True)
class Workload:
    """What one round runs (the same for every system)."""

    drains: Sequence[int]
    delayed_tasks: int
    delay: float
    delayed_rate: float
    latency_rate: int
    latency_seconds: float


def versions() -> str:
    """Conveyor's version and commit, and the libraries of its hot path."""
    import sqlite3
    from importlib.metadata import version

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"Conveyor {commit or 'unknown commit'}, aiohttp {aiohttp.__version__}, "
        f"msgspec {version('msgspec')}, uvloop {version('uvloop')}, SQLite {sqlite3.sqlite_version}"
    )


def _rows(records: list[Record], due: float | None) -> list[Row]:
    """The records as ``(id, entry, due)``: ``due`` = send time + ``due`` when given, else 0."""
    return [(r[1], r[3], 0.0 if due is None or r[4] is None else r[4] + due) for r in records]


async def drain(platform: Platform, session: aiohttp.ClientSession, n: int) -> dict[str, object]:
    """``n`` events, one SDK call each (batched by the SDK); every handler call noted."""
    start = time.time()
    async with AsyncClient(platform.base) as client, client.publisher() as publisher:
        futures = []
        for i in range(n):
            await publisher.room()  # returns at once unless max_pending are pending
            futures.append(publisher.submit("probe", {"i": i}))
        await asyncio.gather(*futures)
    enqueued = time.time()
    records = await platform.collect(n, 600)
    return tally(_rows(records, None), n, start, enqueued)


async def delayed(
    platform: Platform, session: aiohttp.ClientSession, tasks: int, delay: float, rate: float
) -> dict[str, object]:
    """``tasks`` single publishes with ``delay``, paced at ``rate``/s."""
    url = f"{platform.base}/v1/topics/countdown/events"

    async def one() -> None:
        body = json.dumps({"payload": {"t": time.time()}, "delay": delay}).encode()
        async with session.post(url, data=body, headers=JSON) as resp:
            if resp.status != 201:
                raise RuntimeError(f"publish failed: {resp.status} {await resp.text()}")
            await resp.read()

    start, began = time.time(), time.perf_counter()
    sends = []
    for n in range(tasks):
        if (wait := pause(began, n, rate)) > 0:
            await asyncio.sleep(wait)
        sends.append(asyncio.create_task(one()))
    await asyncio.gather(*sends)
    enqueued = time.time()
    records = await platform.collect(tasks, delay + 60)
    return tally(_rows(records, delay), tasks, start, enqueued)


async def latency(
    platform: Platform, session: aiohttp.ClientSession, rate: int, seconds: float
) -> dict[str, object]:
    """Single publishes at a steady ``rate``/s for ``seconds``: publish→handler latency."""
    start = time.time()
    await steady(session, f"{platform.base}/v1/topics/probe/events", rate, seconds)
    enqueued = time.time()
    records = await platform.collect(int(rate * seconds), 60)
    return tally(_rows(records, 0.0), int(rate * seconds), start, enqueued)


async def _round(work: Workload) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-peers-") as tmp:
        platform = Platform(Path(tmp))
        try:
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as session:
                await platform.start(session)
                for n in work.drains:
                    out[f"drain {n}"] = await drain(platform, session, n)
                out["delayed"] = await delayed(
                    platform, session, work.delayed_tasks, work.delay, work.delayed_rate
                )
                out["latency"] = await latency(
                    platform, session, work.latency_rate, work.latency_seconds
                )
        finally:
            platform.stop()
    for figures in out.values():
        figures.update(peer="conveyor", config=CONFIG)
    return out


def run_round(work: Workload) -> dict[str, dict[str, object]]:
    """Every case of one round through Conveyor; the figures by case name."""
    return asyncio.run(_round(work))
