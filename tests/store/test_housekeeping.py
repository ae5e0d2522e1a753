"""Housekeeping on every store adapter: one topic cannot stop it for the others, and a pass
works in small transactions that publishes get in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor._ids import new_id
from conveyor.errors import StoreUnavailable
from conveyor.model import MAX_RETENTION_SECONDS, Subscription, Topic
from conveyor.node import open_store
from conveyor.store.base import NewEvent, Store
from conveyor.store.sql import SWEEP_PARTS, SWEEP_ROWS
from conveyor.store.sqlite import SqliteStore

NOW_MS = 1_700_000_000_000
DEDUP_MS = 60_000
SHORT = Topic(name="short", partitions=1, retention_seconds=60)
PAST_SHORT_MS = NOW_MS + SHORT.retention_seconds * 1000 + 1


def event(partition: int = 0, publish_ms: int = NOW_MS) -> NewEvent:
    return NewEvent(new_id(publish_ms), partition, None, None, b"{}", publish_ms, None, False)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


async def old_event_in(store: Store, topic: Topic) -> str:
    """An event published at NOW_MS that no subscription holds (published before any)."""
    new = event()
    await store.publish(topic, [new], NOW_MS, DEDUP_MS)
    return new.id


async def test_a_retention_stored_past_the_bound_is_read_clamped_and_other_topics_are_swept(
    store: Store,
) -> None:
    # Given a topic an older build stored with a retention of 10^16 s (no bound then; the
    # constructor does not validate), and a 60-second topic with an old event
    await store.put_topic(Topic(name="forever", retention_seconds=10**16))
    await store.put_topic(SHORT)
    gone = await old_event_in(store, SHORT)

    # When housekeeping runs past the short topic's retention
    await store.sweep(PAST_SHORT_MS, DEDUP_MS)

    # Then the short topic's event is removed, and the old topic reads with the bound
    assert await store.find_event(gone) is None
    forever = next(t for t in await store.list_topics() if t.name == "forever")
    assert forever.retention_seconds == MAX_RETENTION_SECONDS


class OneTopicFails(SqliteStore):
    """A real SQLite store whose housekeeping fails for the topic named ``broken``."""

    async def sweep_topic(self, topic: Topic, now_ms: int) -> int:
        if topic.name == "broken":
            raise StoreUnavailable("the disk said no")
        return await super().sweep_topic(topic, now_ms)


async def test_a_topic_whose_housekeeping_fails_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given topics on both sides of one whose housekeeping fails, each with an old event
    async with OneTopicFails(tmp_path / "c.db") as store:
        events = {}
        for name in ("a", "broken", "z"):
            topic = Topic(name=name, partitions=1, retention_seconds=60)
            await store.put_topic(topic)
            events[name] = await old_event_in(store, topic)

        # When housekeeping runs past their retention
        with caplog.at_level(logging.WARNING, logger="conveyor.store"):
            await store.sweep(PAST_SHORT_MS, DEDUP_MS)

        # Then the others are swept, the failing one keeps its event, and the failure is logged
        assert await store.find_event(events["a"]) is None
        assert await store.find_event(events["z"]) is None
        assert await store.find_event(events["broken"]) is not None
        assert [r.getMessage() for r in caplog.records] == [
            "housekeeping of topic 'broken' failed, skipped: the disk said no"
        ]


async def test_a_publish_is_not_held_behind_a_whole_housekeeping_pass(store: Store) -> None:
    # Given a topic with an old event in more partitions than one housekeeping transaction
    # takes, a subscription, and another topic to publish to
    wide = Topic(name="wide", partitions=SWEEP_PARTS, retention_seconds=60)
    await store.put_topic(wide)
    for part in range(wide.log_partitions):
        await store.publish(wide, [event(part)], NOW_MS, DEDUP_MS)
    await store.put_subscription(Subscription(name="s", topic="wide", lambda_name="l"))
    await store.put_topic(SHORT)

    # When a publish is made as soon as a housekeeping pass has begun
    sweep = asyncio.create_task(store.sweep(PAST_SHORT_MS, DEDUP_MS))
    await asyncio.sleep(0)
    await store.publish(SHORT, [event(0, PAST_SHORT_MS)], PAST_SHORT_MS, DEDUP_MS)

    # Then it is acknowledged while the pass still runs (the pass is in small transactions)
    assert not sweep.done()
    assert await sweep == wide.log_partitions
    assert await store.log_ends(wide) == [1] * wide.log_partitions


async def test_a_pass_removes_everything_due_however_many_transactions_it_takes(
    store: Store,
) -> None:
    # Given more old events, each with an idempotency key, than one transaction removes
    await store.put_topic(SHORT)
    count = SWEEP_ROWS * 2 + SWEEP_ROWS // 2
    events = [event() for _ in range(count)]
    for n, new in enumerate(events):
        new.idempotency_key, new.digest = f"k{n}", b"d"
    await store.publish(SHORT, events, NOW_MS, DEDUP_MS)

    # When one pass runs past the retention and the dedup window
    removed = await store.sweep(PAST_SHORT_MS, DEDUP_MS)

    # Then every event and every key is gone, and a replayed key stores a new event
    assert removed == 2 * count
    assert await store.read_log(SHORT, 0, 0, 10) == []
    replay = event(0, PAST_SHORT_MS)
    replay.idempotency_key, replay.digest = "k0", b"d"
    (stored,) = (await store.publish(SHORT, [replay], PAST_SHORT_MS, DEDUP_MS)).stored
    assert stored.id == replay.id
