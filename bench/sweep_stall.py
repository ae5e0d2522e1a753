"""How long a housekeeping pass holds publishes up, on a store with many partitions.

Opens a store (SQLite in a temporary directory, ``synchronous=FULL``, or a PostgreSQL URL),
creates topics totalling ~2,600 log partitions (each with a subscription, and old events that
the pass removes), then publishes single events from a few concurrent publishers, first with
no housekeeping (the baseline) and then while housekeeping passes run back to back. It
reports, for each phase, the publishes made and their latency (p50, p99, max: the longest
stall), and the passes' durations.

Usage: ``python -m bench.sweep_stall [--store postgresql://…] [--topics 10]
[--partitions 87] [--seconds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conveyor._ids import new_id
from conveyor.model import Subscription, Topic
from conveyor.node import open_store
from conveyor.store.base import NewEvent, Store

T0_MS = 1_700_000_000_000
RETENTION = 3600
DEDUP_MS = 3_600_000
PUBLISHERS = 4
OLD_EVENTS_PER_PARTITION = 4


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    passes: list[float] = field(default_factory=list)

    def line(self) -> str:
        lat = sorted(self.latencies)
        p99 = lat[int(len(lat) * 0.99)] if lat else 0.0
        text = (
            f"{self.name:<12} publishes {len(lat):>6}  p50 {statistics.median(lat) * 1000:6.2f} ms"
            f"  p99 {p99 * 1000:7.2f} ms  max (longest stall) {lat[-1] * 1000:7.1f} ms"
        )
        if self.passes:
            text += (
                f"\n{'':<12} {len(self.passes)} passes: first {self.passes[0]:.2f} s, "
                f"longest {max(self.passes):.2f} s, median {statistics.median(self.passes):.2f} s"
            )
        return text


def _event(partition: int, publish_ms: int) -> NewEvent:
    return NewEvent(new_id(publish_ms), partition, None, None, b'{"n":1}', publish_ms, None, False)


async def _fill(store: Store, topics: int, partitions: int) -> None:
    """Topics whose every log partition holds old events the pass may remove (they were
    published before the subscription, so no cursor holds them)."""
    for t in range(topics):
        topic = Topic(name=f"t{t}", partitions=partitions, retention_seconds=RETENTION)
        await store.put_topic(topic)
        for part in range(topic.log_partitions):
            batch = [_event(part, T0_MS) for _ in range(OLD_EVENTS_PER_PARTITION)]
            await store.publish(topic, batch, T0_MS, DEDUP_MS)
        await store.put_subscription(Subscription(name=f"s{t}", topic=topic.name, lambda_name="l"))


async def _publish(store: Store, topic: Topic, phase: Phase, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        now_ms = T0_MS + 2 * RETENTION * 1000
        started = time.perf_counter()
        await store.publish(topic, [_event(n % topic.log_partitions, now_ms)], now_ms, DEDUP_MS)
        phase.latencies.append(time.perf_counter() - started)
        n += 1


async def _sweep(store: Store, phase: Phase, stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await store.sweep(T0_MS + 2 * RETENTION * 1000, DEDUP_MS)
        phase.passes.append(time.perf_counter() - started)


async def _phase(store: Store, topic: Topic, phase: Phase, seconds: float, sweep: bool) -> None:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        for _ in range(PUBLISHERS):
            tg.create_task(_publish(store, topic, phase, stop))
        if sweep:
            tg.create_task(_sweep(store, phase, stop))
        await asyncio.sleep(seconds)
        stop.set()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.store or str(Path(tmp) / "sweep.db"))
        async with store:
            await _fill(store, args.topics, args.partitions)
            live = Topic(name="live", partitions=4)
            await store.put_topic(live)
            print(
                f"{args.topics} topics x {args.partitions * 3} log partitions "
                f"= {args.topics * args.partitions * 3}, {PUBLISHERS} publishers, "
                f"{args.seconds:g} s a phase, store {store.name}"
            )
            for name, sweep in (("baseline", False), ("housekeeping", True)):
                phase = Phase(name)
                await _phase(store, live, phase, args.seconds, sweep)
                print(phase.line(), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=87, help="per topic (x3 lanes)")
    parser.add_argument("--seconds", type=float, default=5.0, help="each phase")
    asyncio.run(main(parser.parse_args()))
