"""The SDK's publish paths side by side: one request per event against the batching publisher.

A real ``conveyor serve`` on a fresh SQLite file (``synchronous=FULL``), no subscriber. Each
case publishes N small events, one SDK call per event, and times from the first call to the
last acknowledgement (every event durable), in this order, twice (A B C D A B C D); a figure
is the better of the two rounds:

* ``AsyncClient.publish``, 64 coroutines at once (one HTTP request and one answer per event);
* ``AsyncPublisher.publish`` (``client.publisher()``), every call at once through
  ``asyncio.gather``;
* ``AsyncPublisher.submit`` from one producer loop, then every future awaited;
* ``Publisher.submit`` (``Client.publisher()``) from 8 threads, each then waiting on its
  futures. (A blocking ``Publisher.publish`` per call waits for the linger and the commit
  before the thread's next call: at most one event per ~5-8 ms per thread.)

Usage: ``python -m bench.publisher [--events 20000] [--write-doc docs/benchmarks.md]``
(part of ``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.drain import machine, pythonpath, start_serve, wait_ready, write_doc
from conveyor.client import AsyncClient, Client

SECTION = "publisher"
TOPIC = "bench"
SINGLE_CONCURRENCY = 64
THREADS = 8


async def single(url: str, events: int) -> None:
    async with AsyncClient(url) as client:
        queue = iter(range(events))

        async def lane() -> None:
            for n in queue:
                await client.publish(TOPIC, {"n": n})

        await asyncio.gather(*(lane() for _ in range(SINGLE_CONCURRENCY)))


async def batched(url: str, events: int) -> None:
    async with AsyncClient(url) as client, client.publisher() as publisher:
        await asyncio.gather(*(publisher.publish(TOPIC, {"n": n}) for n in range(events)))


async def submitted(url: str, events: int) -> None:
    async with AsyncClient(url) as client, client.publisher() as publisher:
        futures = []
        for n in range(events):
            await publisher.room()
            futures.append(publisher.submit(TOPIC, {"n": n}))
        await asyncio.gather(*futures)


async def threaded(url: str, events: int) -> None:
    def work() -> None:
        with Client(url) as client, client.publisher() as publisher:
            per = events // THREADS

            def one_thread() -> None:
                futures = [publisher.submit(TOPIC, {"n": n}) for n in range(per)]
                for future in futures:
                    future.result()

            threads = [threading.Thread(target=one_thread) for _ in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    await asyncio.to_thread(work)


CASES: dict[str, Callable[[str, int], Awaitable[None]]] = {
    f"AsyncClient.publish, {SINGLE_CONCURRENCY} coroutines": single,
    "AsyncPublisher.publish, all at once (gather)": batched,
    "AsyncPublisher.submit from one loop": submitted,
    f"Publisher.submit (blocking client) from {THREADS} threads": threaded,
}


async def run(events: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        env = {**os.environ, "PYTHONPATH": pythonpath()}
        proc = start_serve(str(d / "bench.db"), d, 1, env)
        try:
            url = "http://" + await wait_ready(d / "ready1", proc, "conveyor serve")
            async with AsyncClient(url) as client:
                await client.create_topic(TOPIC, partitions=4)
            await batched(url, 2000)  # warm-up
            for _ in range(rounds):
                for name, case in CASES.items():
                    started = time.perf_counter()
                    await case(url, events)
                    rate = events / (time.perf_counter() - started)
                    best[name] = max(best.get(name, 0.0), rate)
        finally:
            proc.terminate()
            proc.wait(10)
    return best


def table(best: dict[str, float], events: int, when: str) -> str:
    base = best[next(iter(CASES))]
    lines = [
        f"Machine: {machine()}",
        f"Run: {when}, `make bench` (python -m bench.publisher --events {events}): "
        f"{events:,} events, one SDK call each, to acknowledged (SQLite, synchronous=FULL); "
        "best of two rounds",
        "",
        "| publish path | events/s | ratio to one request per event |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {rate:,.0f} | {rate / base:.1f} |" for name, rate in best.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write-doc", type=Path)
    args = parser.parse_args()
    best = asyncio.run(run(args.events, args.rounds))
    text = table(best, args.events, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, text, SECTION)


if __name__ == "__main__":
    main()
