"""One idempotency key posted to two ``conveyor serve`` nodes at once is stored once.

What a client does when it times out on one node and retries on another: the same body with
the same ``idempotency_key``, at the same moment, to two real nodes on one store (a
PostgreSQL schema, or one SQLite file that both processes write). Every pair must be
answered with one id (one ``201``, one ``200`` marked ``duplicate``), and the store must hold
each key's event once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import pg
from conftest import BIN, START_TIMEOUT, Proc, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PAIRS = 300
DELAYED_EVERY = 3  # every third key is a delayed event (it waits in the timer store)
TOPIC = "orders"


class TwoNodes:
    """Two ``conveyor serve`` processes on one store."""

    def __init__(self, tmp: Path, store: str) -> None:
        self.tmp = tmp
        self.store = store
        self.procs: list[Proc] = []
        self.urls: list[str] = []

    def start(self) -> None:
        # One at a time: the first creates the schema, the second finds it.
        for name in ("n1", "n2"):
            port, ready = free_port(), self.tmp / f"{name}.ready"
            proc = Proc(
                [
                    *(str(BIN / "conveyor"), "serve", "--store", self.store),
                    *("--port", str(port), "--node-id", name, "--ready-file", str(ready)),
                ],
                self.tmp / f"{name}.log",
                {**os.environ, "PYTHONUNBUFFERED": "1"},
                self.tmp,
            )
            self.procs.append(proc)
            self.urls.append(f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + START_TIMEOUT
            while not (ready.exists() and ready.read_text().strip()):
                if not proc.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"node {name} did not start:\n{proc.output()}")
                time.sleep(0.05)

    def close(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=10)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TwoNodes]:
    def run(store: str) -> Iterator[TwoNodes]:
        two = TwoNodes(tmp_path, store)
        try:
            two.start()
            yield two
        finally:
            two.close()

    if request.param == "sqlite":
        yield from run(str(tmp_path / "conveyor.db"))
        return
    with pg.fresh_schema(request.getfixturevalue("pg_server")) as url:
        yield from run(url)


async def race(urls: list[str]) -> list[list[tuple[int, dict[str, Any]]]]:
    """Post every key's request to both nodes at once; each pair's two answers."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{urls[0]}/v1/topics", json={"name": TOPIC, "partitions": 4}
        ) as created:
            assert created.status == 201, await created.text()

        async def post(url: str, i: int) -> tuple[int, dict[str, Any]]:
            body: dict[str, Any] = {"payload": {"n": i}, "key": f"k{i % 7}"}
            body["idempotency_key"] = f"order-{i}"
            if i % DELAYED_EVERY == 0:
                body["delay"] = 3600
            async with session.post(f"{url}/v1/topics/{TOPIC}/events", json=body) as answer:
                return answer.status, await answer.json()

        start = asyncio.Event()

        async def pair(i: int) -> list[tuple[int, dict[str, Any]]]:
            await start.wait()
            return list(await asyncio.gather(post(urls[0], i), post(urls[1], i)))

        tasks = [asyncio.ensure_future(pair(i)) for i in range(PAIRS)]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*tasks)


def test_a_key_posted_to_two_nodes_at_once_is_stored_once(nodes: TwoNodes) -> None:
    # Given two nodes on one store, when each of 300 requests goes to both at once
    answers = asyncio.run(race(nodes.urls))

    # Then each pair was answered with one id: one stored it, the other returned it
    stored_twice = [a for a in answers if a[0][1].get("id") != a[1][1].get("id")]
    assert stored_twice == [], f"{len(stored_twice)} of {PAIRS} keys stored twice"
    for (status_a, a), (status_b, b) in answers:
        assert sorted([status_a, status_b]) == [200, 201], (a, b)
        assert sorted([a.get("duplicate", False), b.get("duplicate", False)]) == [False, True]
        assert (a.get("partition"), a.get("offset")) == (b.get("partition"), b.get("offset"))
    # And the store holds each key's event once (in the log, or as a timer)
    delayed = len(range(0, PAIRS, DELAYED_EVERY))
    assert pg.count_rows(nodes.store, "timers") == delayed
    assert pg.count_rows(nodes.store, "log") == PAIRS - delayed
    assert pg.count_rows(nodes.store, "idempotency") == PAIRS
