"""The batching publisher (AsyncPublisher, and Publisher on a thread) against a real node.

The node runs behind the HTTP API on 127.0.0.1 on every store; the linger is timed by a
FakeClock where a test depends on it. Per-key order across concurrent batches is checked
against a client double that holds a chosen batch's answer back, since a real node answers
too fast for the race to show.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from conveyor.api.app import build_app
from conveyor.cli import app as cli
from conveyor.client import AsyncClient, AsyncPublisher, BatchSettings, Client
from conveyor.clock import FakeClock
from conveyor.errors import Conflict, ConveyorError, PublisherFull, SchemaViolation
from conveyor.model import Topic
from conveyor.wire.schemas import BatchPublishResult, PublishRequest, PublishResult
from dead_letters_platform import Rig, ThreadedPlatform, dead_letter_rig

UNREACHABLE = "http://127.0.0.1:9"
LOG = "clicks"
TYPED = "typed"
SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}


@pytest.fixture
async def rig(store_url: str) -> AsyncIterator[Rig]:
    async with dead_letter_rig(store_url) as started:
        await started.node.catalog.put_topic(Topic(name=LOG, partitions=1))
        await started.node.catalog.put_topic(Topic(name=TYPED, partitions=1, schema=SCHEMA))
        yield started


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[AsyncClient]:
    server: TestServer = TestServer(build_app(rig.node), host="127.0.0.1")
    await server.start_server()
    try:
        async with AsyncClient(str(server.make_url(""))) as conveyor:
            yield conveyor
    finally:
        await server.close()


async def logged(rig: Rig, topic: str = LOG) -> list[tuple[str, object]]:
    """(id, payload) of every event in the topic's one partition, in log order."""
    found = rig.node.catalog.find_topic(topic)
    assert found is not None
    events = await rig.node.store.read_log(found, 0, 0, 100_000)
    return [(e.id, msgspec.json.decode(e.payload)) for e in events]


# -- batching --------------------------------------------------------------------------------------
async def test_concurrent_publishes_share_requests_and_each_gets_its_own_result(
    rig: Rig, client: AsyncClient
) -> None:
    # Given 500 coroutines publishing one event each through one publisher
    async with client.publisher(linger=0.002) as publisher:
        results = await asyncio.gather(
            *(publisher.publish(LOG, {"n": n}, key=f"k{n % 7}") for n in range(500))
        )
        requests = publisher.requests

    # Then they travelled in one request, each call got its own event's result, all durable
    assert requests == 1
    assert len({r.id for r in results}) == 500
    stored = dict(await logged(rig))
    assert [stored[r.id] for r in results] == [{"n": n} for n in range(500)]


async def test_the_first_event_waits_for_the_linger_and_no_longer(
    rig: Rig, client: AsyncClient
) -> None:
    # Given a publisher whose linger is timed by a fake clock
    clock = FakeClock()
    publisher = AsyncPublisher(client, BatchSettings(linger=0.05), clock=clock)
    first = publisher.submit(LOG, {"n": 1})
    second = publisher.submit(LOG, {"n": 2})

    # When less than the linger passes, nothing is sent
    clock.advance(0.049)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not first.done()
    assert publisher.requests == 0
    assert await logged(rig) == []

    # When the linger is up, both go in one request
    clock.advance(0.001)
    results = await asyncio.gather(first, second)
    assert publisher.requests == 1
    assert [p for _, p in await logged(rig)] == [{"n": 1}, {"n": 2}]
    assert [r.offset for r in results] == [0, 1]
    await publisher.aclose()


async def test_a_full_batch_is_sent_without_waiting_for_the_linger(
    rig: Rig, client: AsyncClient
) -> None:
    clock = FakeClock()  # never advanced: only fullness can send
    publisher = AsyncPublisher(client, BatchSettings(linger=60, max_events=10), clock=clock)
    futures = [publisher.submit(LOG, {"n": n}) for n in range(25)]

    done = await asyncio.gather(*futures[:20])
    assert len(done) == 20
    assert publisher.requests == 2
    assert not futures[24].done()  # the last five wait for the linger …

    await publisher.aclose()  # … or the close, which sends them
    assert all(f.done() for f in futures)
    assert len(await logged(rig)) == 25


async def test_max_bytes_splits_batches(client: AsyncClient) -> None:
    big = "x" * 3000
    async with client.publisher(linger=0.001, max_bytes=8 * 1024) as publisher:
        await asyncio.gather(*(publisher.publish(LOG, {"s": big}) for _ in range(10)))
        # 3,000-byte payloads under an 8 KiB bound: two per request
        assert publisher.requests == 5


# -- errors ----------------------------------------------------------------------------------------
async def test_an_invalid_event_fails_its_own_call_and_not_its_batch_mates(
    rig: Rig, client: AsyncClient
) -> None:
    async with client.publisher() as publisher:
        results = await asyncio.gather(
            publisher.publish(TYPED, {"n": 1}),
            publisher.publish(TYPED, {"n": "two"}),
            publisher.publish(TYPED, {"n": 3}),
            return_exceptions=True,
        )
        assert publisher.requests == 1

    ok1, bad, ok3 = results
    assert isinstance(ok1, PublishResult)
    assert isinstance(ok3, PublishResult)
    assert isinstance(bad, SchemaViolation)
    assert (bad.field, bad.rule, bad.status) == ("/payload/n", "type", 422)
    assert [p for _, p in await logged(rig, TYPED)] == [{"n": 1}, {"n": 3}]


async def test_a_reused_idempotency_key_fails_only_the_call_that_reused_it(
    rig: Rig, client: AsyncClient
) -> None:
    # Given an event already published with idempotency key "order-1"
    first = await client.publish(LOG, {"n": 0}, idempotency_key="order-1")

    # When a batch holds a different event under that key, between two good ones
    async with client.publisher() as publisher:
        results = await asyncio.gather(
            publisher.publish(LOG, {"n": 1}),
            publisher.publish(LOG, {"n": 99}, idempotency_key="order-1"),
            publisher.publish(LOG, {"n": 2}),
            publisher.publish(LOG, {"n": 0}, idempotency_key="order-1"),
            return_exceptions=True,
        )

    # Then only that call fails; the replay of the same event returns the first result
    ok1, conflict, ok2, replay = results
    assert isinstance(conflict, Conflict)
    assert isinstance(ok1, PublishResult)
    assert isinstance(ok2, PublishResult)
    assert isinstance(replay, PublishResult)
    assert (replay.id, replay.duplicate) == (first.id, True)
    assert [p for _, p in await logged(rig)] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_an_unreachable_node_fails_every_call_of_the_batch() -> None:
    async with AsyncClient(UNREACHABLE, timeout=5) as client, client.publisher() as publisher:
        results = await asyncio.gather(
            *(publisher.publish(LOG, {"n": n}) for n in range(3)), return_exceptions=True
        )
    assert all(isinstance(r, ConveyorError) for r in results)
    assert "cannot reach Conveyor" in str(results[0])


async def test_bad_arguments_raise_at_the_call(client: AsyncClient) -> None:
    async with client.publisher() as publisher:
        with pytest.raises(ValueError, match="delay or deliver_at"):
            publisher.submit(LOG, {}, delay=1, deliver_at=datetime.now(UTC))
        with pytest.raises(TypeError):
            await publisher.publish(LOG, object())
        assert publisher.pending == 0
    with pytest.raises(ValueError, match="max_events"):
        client.publisher(max_events=0)
    with pytest.raises(ValueError, match="max_pending"):
        client.publisher(max_events=100, max_pending=10)


# -- bounds and close ------------------------------------------------------------------------------
async def test_submit_refuses_beyond_max_pending_and_publish_waits_for_room(
    rig: Rig, client: AsyncClient
) -> None:
    clock = FakeClock()
    settings = BatchSettings(linger=60, max_events=4, max_pending=4)
    publisher = AsyncPublisher(client, settings, clock=clock)
    held = [publisher.submit(LOG, {"n": n}) for n in range(3)]
    waiting = asyncio.ensure_future(publisher.publish(LOG, {"n": 3}))  # the 4th: fills it
    await asyncio.sleep(0)

    # The full batch is sent; until its answer (an HTTP round trip away), four are pending
    assert publisher.pending == 4
    with pytest.raises(PublisherFull) as refused:
        publisher.submit(LOG, {"n": 4})
    assert refused.value.max_pending == 4
    later = asyncio.ensure_future(publisher.publish(LOG, {"n": 5}))
    await asyncio.sleep(0)
    assert not later.done()  # waiting for room
    await asyncio.gather(*held, waiting)
    await publisher.aclose()  # sends the fifth (the linger never ends on this clock)
    await later
    assert [p["n"] for _, p in await logged(rig)] == [0, 1, 2, 3, 5]  # type: ignore[index]


async def test_a_closed_publisher_refuses_new_events(client: AsyncClient) -> None:
    publisher = client.publisher()
    await publisher.aclose()
    await publisher.aclose()  # again: nothing
    with pytest.raises(RuntimeError, match="closed"):
        await publisher.publish(LOG, {"n": 1})


# -- per-key order ---------------------------------------------------------------------------------
class HeldClient:
    """A client double: answers every batch at once except the ones it is told to hold."""

    def __init__(self) -> None:
        self.sent: list[list[str | None]] = []
        self.release = asyncio.Event()

    async def publish_batch_partial(
        self, topic: str, events: Sequence[PublishRequest]
    ) -> BatchPublishResult:
        self.sent.append([e.key for e in events])
        if len(self.sent) == 1:
            await self.release.wait()  # the first batch's answer is slow
        return BatchPublishResult(
            [PublishResult(f"id-{i}", "pending", index=i) for i in range(len(events))]
        )


async def test_a_batch_waits_for_an_earlier_one_holding_its_keys_and_only_for_it() -> None:
    held = HeldClient()
    settings = BatchSettings(linger=0, max_events=2, max_in_flight=4)
    publisher = AsyncPublisher(held, settings, clock=FakeClock())  # type: ignore[arg-type]

    # Batch 1 (a, b) is in flight and slow; batch 2 (c, d) shares no key; batch 3 (a, e) does
    futures = [publisher.submit("t", {}, key=k) for k in ("a", "b", "c", "d", "a", "e")]
    for _ in range(20):
        await asyncio.sleep(0)

    # Then batch 2 was sent beside batch 1, batch 3 waits for batch 1's answer
    assert held.sent == [["a", "b"], ["c", "d"]]
    assert [f.done() for f in futures] == [False, False, True, True, False, False]

    held.release.set()
    await asyncio.gather(*futures)
    assert held.sent == [["a", "b"], ["c", "d"], ["a", "e"]]
    await publisher.aclose()


# -- the blocking publisher ------------------------------------------------------------------------
@pytest.fixture
def platform(platform: ThreadedPlatform) -> ThreadedPlatform:
    platform.call(platform.rig.node.catalog.put_topic(Topic(name=LOG, partitions=1)))
    return platform


def test_threads_publish_through_one_blocking_publisher(platform: ThreadedPlatform) -> None:
    results: list[PublishResult] = []
    lock = threading.Lock()

    def publish_some(publisher: object, start: int) -> None:
        assert hasattr(publisher, "publish")
        for n in range(start, start + 50):
            result = publisher.publish(LOG, {"n": n})
            with lock:
                results.append(result)

    with Client(platform.url) as client, client.publisher(linger=0.002) as publisher:
        threads = [
            threading.Thread(target=publish_some, args=(publisher, i * 50)) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        futures = [publisher.submit(LOG, {"n": 1000 + n}) for n in range(100)]
        for thread in threads:
            thread.join()
        submitted = [f.result(timeout=30) for f in futures]

    stored = dict(platform.call(logged(platform.rig)))
    assert len(stored) == 300
    assert sorted(stored[r.id]["n"] for r in results) == list(range(200))  # type: ignore[index]
    assert [stored[r.id] for r in submitted] == [{"n": 1000 + n} for n in range(100)]
    with pytest.raises(RuntimeError, match="closed"):
        publisher.publish(LOG, {"n": 0})
    with pytest.raises(RuntimeError, match="closed"):
        publisher.submit(LOG, {"n": 0})


def test_closing_the_blocking_publisher_sends_what_it_holds(platform: ThreadedPlatform) -> None:
    with Client(platform.url) as client:
        publisher = client.publisher(linger=30)
        futures = [publisher.submit(LOG, {"n": n}) for n in range(5)]
        publisher.close()
        assert [f.result(timeout=0).offset for f in futures] == [0, 1, 2, 3, 4]


# -- the CLI ---------------------------------------------------------------------------------------
def test_publish_many_sends_ndjson_lines_in_batches_and_names_each_bad_line(
    platform: ThreadedPlatform, tmp_path: Path
) -> None:
    # Given a file of 300 event lines with a blank line, a broken one and one without payload
    lines = [json.dumps({"payload": {"n": n}, "key": f"k{n % 3}"}) for n in range(300)]
    lines[10] = ""
    lines[20] = "{not json"
    lines[30] = json.dumps({"key": "k"})
    source = tmp_path / "events.ndjson"
    source.write_text("\n".join(lines) + "\n")

    # When it is published with batches of 100
    result = CliRunner().invoke(
        cli,
        [
            "publish-many",
            LOG,
            str(source),
            "--max-events",
            "100",
            "--json",
            "--server",
            platform.url,
        ],
    )

    # Then the good lines are stored in order, the bad ones named by line number, exit 1
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["published"] == 297
    assert [f["line"] for f in summary["failed"]] == [21, 31]
    assert "not JSON" in summary["failed"][0]["error"]
    assert "payload" in summary["failed"][1]["error"]
    assert 3 <= summary["requests"] <= 5
    stored = [p["n"] for _, p in platform.call(logged(platform.rig))]  # type: ignore[index]
    assert stored == [n for n in range(300) if n not in (10, 20, 30)]


def test_publish_many_takes_bare_payloads_from_stdin_and_reports_rejections(
    platform: ThreadedPlatform,
) -> None:
    platform.call(
        platform.rig.node.catalog.put_topic(Topic(name=TYPED, partitions=1, schema=SCHEMA))
    )
    stdin = "\n".join(['{"n": 1}', '{"n": "two"}', '{"n": 3}']) + "\n"

    result = CliRunner().invoke(
        cli, ["publish-many", TYPED, "-", "--payloads", "--server", platform.url], input=stdin
    )

    assert result.exit_code == 1
    assert "published 2 events in 1 requests" in result.stdout
    assert "line 2: /payload/n (type)" in result.stderr
    assert [p for _, p in platform.call(logged(platform.rig, TYPED))] == [{"n": 1}, {"n": 3}]
