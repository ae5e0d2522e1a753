"""``/v1/health`` and ``/metrics`` when the disk is full (aiohttp's TestServer on 127.0.0.1).

The disk fills for real as far as SQLite can tell: ``PRAGMA max_page_count`` on the store's
writing connection caps the file at its size, and every write that needs a new page fails
with SQLITE_FULL ("database or disk is full"), as on a full file system. Time is the
FakeClock's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from conveyor import AsyncClient, __version__
from conveyor.api.app import build_app
from conveyor.cli import app
from conveyor.clock import FakeClock
from conveyor.model import Subscription, Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.store.sqlite import SqliteStore
from conveyor.wire.schemas import Health, SubscriptionInfo

Client = TestClient[web.Request, web.Application]

DELAYED = 42  # the delayed events of the disk-full run that found this
OVERDUE_AFTER = 30.0
BIG = "x" * 65536  # a payload that needs new pages


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    settings = NodeSettings(store=str(tmp_path / "c.db"), health_overdue_seconds=OVERDUE_AFTER)
    async with Node(settings, clock=FakeClock()) as started:
        await started.catalog.put_topic(Topic(name="orders", partitions=1))
        sub = Subscription(name="billing", topic="orders", lambda_name="worker")
        await started.catalog.put_subscription(sub)
        yield started


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(node))) as opened:
        yield opened


async def until(condition: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.005)


async def disk_full(node: Node, full: bool) -> None:
    """Cap the store's file at its size now (or lift the cap)."""
    store = node.store
    assert isinstance(store, SqliteStore)
    pages = 1 if full else 1_073_741_823  # 1 means "no larger than now"; the other, SQLite's max
    await store._in_writer(lambda: store._wc.execute(f"PRAGMA max_page_count = {pages}"))


async def health(client: Client) -> tuple[int, Health]:
    response = await client.get("/v1/health")
    return response.status, msgspec.json.decode(await response.read(), type=Health)


async def gauge(client: Client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


async def test_a_store_that_refuses_writes_fails_the_health_check_until_it_writes_again(
    node: Node, client: Client
) -> None:
    # Given a healthy node
    assert await health(client) == (200, Health("ok", __version__, "sqlite"))

    # When the disk is full and a publish fails
    await disk_full(node, True)
    refused = await client.post("/v1/topics/orders/events", json={"payload": BIG})
    assert refused.status == 503

    # Then the health check fails, saying that the store refuses writes, and why
    status, body = await health(client)
    assert status == 503
    assert body.status == "failing"
    (problem,) = body.problems
    assert problem.startswith("the store refuses writes")
    assert "full" in problem
    assert await gauge(client, "conveyor_store_write_failing") == 1
    # And so do the SDK and the CLI (which exits 1)
    url = str(client.make_url(""))
    async with AsyncClient(url) as sdk:
        assert (await sdk.health()).problems == [problem]
    said = await asyncio.to_thread(CliRunner().invoke, app, ["health", "--server", url])
    assert said.exit_code == 1
    assert "the store refuses writes" in said.output

    # And once the disk has room and a write succeeds, it is healthy again
    await disk_full(node, False)
    accepted = await client.post("/v1/topics/orders/events", json={"payload": BIG})
    assert accepted.status == 201
    assert (await health(client))[0] == 200
    assert await gauge(client, "conveyor_store_write_failing") == 0
    said = await asyncio.to_thread(CliRunner().invoke, app, ["health", "--server", url])
    assert said.exit_code == 0
    assert said.output.startswith("ok:")


async def test_delayed_events_stuck_by_a_full_disk_are_counted_and_fail_the_health_check(
    node: Node, client: Client
) -> None:
    clock = node.clock
    assert isinstance(clock, FakeClock)
    # Given 42 delayed events due in 10 s, then a full disk
    for n in range(DELAYED):
        published = await client.post(
            "/v1/topics/orders/events", json={"payload": {"n": n, "pad": "x" * 2048}, "delay": 10}
        )
        assert published.status == 201
    await disk_full(node, True)

    # When their time is 40 s past and the timers failed to append them
    clock.advance(50)

    async def failed() -> bool:
        return node.store.write_failure() is not None

    await until(failed)

    # Then the subscription counts them in its backlog and its oldest pending age
    info = msgspec.json.decode(
        await (await client.get("/v1/subscriptions/billing")).read(), type=SubscriptionInfo
    )
    assert (info.stats.backlog, info.stats.overdue) == (DELAYED, DELAYED)
    assert info.stats.oldest_pending_age == 40.0
    # And so do the metrics
    assert await gauge(client, 'conveyor_subscription_backlog{subscription="billing"}') == DELAYED
    assert await gauge(client, "conveyor_timers_overdue") == DELAYED
    assert await gauge(client, "conveyor_timers_overdue_seconds") == 40.0
    # And the health check fails with both reasons
    status, body = await health(client)
    assert status == 503
    refusing, overdue = body.problems
    assert refusing.startswith("the store refuses writes")
    assert overdue.startswith(f"{DELAYED} delayed events are overdue by more than 30 s")

    # When the disk has room again, the timers fire on their next try and all is well
    await disk_full(node, False)

    async def recovered() -> bool:
        clock.advance(1)
        return (await health(client))[0] == 200

    await until(recovered)
    assert await gauge(client, "conveyor_timers_overdue") == 0
