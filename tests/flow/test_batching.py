"""Batching and reading alone: the ready queue first, fair partitions, lanes by weight, the
byte cap, linger, and which appends join a buffer.

Real parts over a real SQLite store that is never read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from parts_rig import TOPIC, event, parts

from conveyor.clock import to_ms
from conveyor.flow.reading import Reader
from conveyor.model import Subscription
from conveyor.node import open_store
from conveyor.store.base import Store

SUB = Subscription(name="billing", topic=TOPIC.name, lambda_name="worker")
NORMAL, HIGH = (0, 1), (2, 3)  # TOPIC's log partitions of the normal and high lanes


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(str(tmp_path / "c.db")) as opened:
        yield opened


def test_ready_events_go_first_then_partitions_take_turns(store: Store) -> None:
    # Given a retry in the ready queue and three events in each normal partition
    rig = parts(store, SUB)
    retry = event(1, 9)
    rig.ready.append((retry, 2))
    for p in NORMAL:
        rig.append(p, *(event(p, o) for o in range(3)))

    # When 5 are taken
    batch, attempts = rig.batcher.take(5, to_ms(rig.clock.now()))

    # Then the retry leads with its attempt, and the partitions alternate
    assert [(e.partition, e.offset) for e in batch] == [(1, 9), (0, 0), (1, 0), (0, 1), (1, 1)]
    assert attempts == [2, 1, 1, 1, 1]
    assert rig.reader.buffered[0] == 2


def test_busy_lanes_share_pushes_by_weight(store: Store) -> None:
    # Given the high and normal lanes both busy
    rig = parts(store, SUB)
    rig.append(HIGH[0], *(event(HIGH[0], o) for o in range(20)))
    rig.append(NORMAL[0], *(event(NORMAL[0], o) for o in range(20)))

    # When 12 are taken (one round of weights 8 + 4)
    batch, _ = rig.batcher.take(12, to_ms(rig.clock.now()))

    # Then high got 8 and normal 4
    assert sum(1 for e in batch if e.partition == HIGH[0]) == 8
    assert sum(1 for e in batch if e.partition == NORMAL[0]) == 4


def test_a_batch_is_cut_at_max_batch_bytes_and_the_rest_goes_back_first_in_order(
    store: Store,
) -> None:
    # Given 4 events of 600 bytes, and at most 1,024 bytes a push
    rig = parts(store, msgspec.structs.replace(SUB, max_batch_bytes=1024))
    events = [event(0, o, payload=b"1" * 600) for o in range(4)]
    rig.append(0, *events)
    batch, attempts = rig.batcher.take(4, to_ms(rig.clock.now()))

    # When the batch is capped
    rig.batcher.cap(batch, attempts)

    # Then one goes, and the other three wait at the front of the ready queue, in order
    assert batch == events[:1]
    assert list(rig.ready) == [(e, 1) for e in events[1:]]


def test_a_lone_event_bigger_than_the_cap_still_goes(store: Store) -> None:
    rig = parts(store, msgspec.structs.replace(SUB, max_batch_bytes=1024))
    big = event(0, 0, payload=b"1" * 5000)
    batch, attempts = [big], [1]

    rig.batcher.cap(batch, attempts)

    assert batch == [big]
    assert list(rig.ready) == []


def test_a_short_batch_lingers_at_most_max_wait(store: Store) -> None:
    # Given batches of 10 that may wait 2 s, and 3 events
    rig = parts(store, msgspec.structs.replace(SUB, max_batch=10, max_wait=2.0))
    rig.append(0, *(event(0, o) for o in range(3)))
    now = rig.clock.now()

    # Then it lingers from the first look until 2 s later, and not after
    assert rig.batcher.lingering(now)
    assert rig.batcher.lingering(now + 1.9)
    assert rig.batcher.deadline() == now + 2.0
    assert not rig.batcher.lingering(now + 2.0)

    # And a full batch does not linger
    rig.append(0, *(event(0, o) for o in range(3, 10)))
    assert not rig.batcher.lingering(now + 2.0)
    assert rig.batcher.deadline() is None


def test_an_append_joins_the_buffer_only_where_reading_stands(store: Store) -> None:
    # Given partition 0 buffered up to offset 2
    rig = parts(store, SUB)
    rig.append(0, event(0, 0), event(0, 1))

    # When an append skips ahead (offsets 5-6: 2-4 came from another node)
    rig.append(0, event(0, 5), event(0, 6))

    # Then it is not buffered (the store read fetches 2 on), but the head moves
    p = rig.reader.parts[0]
    assert [e.offset for e in p.buffer] == [0, 1]
    assert (p.next_read, p.head) == (2, 7)
    assert rig.reader.backlog() == 7


def test_appends_seen_before_opening_raise_the_head_it_opens_with(store: Store) -> None:
    fresh = Reader(TOPIC, store, wake=lambda: None)

    fresh.on_append(0, [event(0, 41)])
    fresh.open({}, [40] + [0] * (TOPIC.log_partitions - 1), partitions=None, ordered=False)

    assert (fresh.parts[0].next_read, fresh.parts[0].head) == (40, 42)
