"""The gate alone: never early, purge, filter, pause, lease, the rate share.

Real parts (the settler takes what the gate drops) over a real SQLite store never read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from parts_rig import TOPIC, event, parts

from conveyor.clock import to_ms
from conveyor.flow.gate import LEASE_RECHECK
from conveyor.model import Control, RateLimit, Subscription
from conveyor.node import open_store
from conveyor.store.base import Store

SUB = Subscription(name="billing", topic=TOPIC.name, lambda_name="worker")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(str(tmp_path / "c.db")) as opened:
        yield opened


def test_an_event_taken_before_its_deliver_at_is_held_until_then_never_a_ms_early(
    store: Store,
) -> None:
    # Given an event due 5 s from now, fired early
    rig = parts(store, SUB)
    now_ms = to_ms(rig.clock.now())
    due = now_ms + 5000
    early = event(0, 0, deliver_at_ms=due)

    # When it is taken, it is held, not admitted
    assert rig.gate.admit(early, now_ms, 1) is False
    assert len(rig.gate.held) == 1
    assert rig.gate.deadlines(rig.clock.now(), waiting=False) == [due / 1000]

    # Then it goes to the ready queue at its due time, not a millisecond before
    rig.gate.release_held(due - 1)
    assert list(rig.ready) == []
    rig.gate.release_held(due)
    assert list(rig.ready) == [(early, 1)]
    assert rig.gate.admit(early, due, 1) is True


def test_an_event_published_before_the_purge_mark_is_dropped_unpushed(store: Store) -> None:
    # Given a purge mark now
    rig = parts(store, SUB)
    mark = to_ms(rig.clock.now())
    rig.gate.update(
        msgspec.structs.replace(SUB, control=Control(purged_before_ms=mark)), rig.clock.now()
    )
    before, after = event(0, 0, publish_ms=mark - 1), event(0, 1, publish_ms=mark)
    rig.append(0, before, after)

    # When both are taken, only the later one goes; the earlier gets a dropped row
    assert rig.batcher.take(10, mark) == ([after], [1])
    row = rig.settler.pending[(0, 0)]
    assert row is not None
    assert row.state == "dropped"
    assert rig.reader.parts[0].progress.is_finished(0)


def test_a_first_attempt_not_matching_the_filter_is_filtered_and_a_retry_is_not(
    store: Store,
) -> None:
    # Given a filter on an attribute
    rig = parts(store, msgspec.structs.replace(SUB, filter={"attributes": {"kind": ["paid"]}}))
    now_ms = to_ms(rig.clock.now())
    other, paid = event(0, 0, attributes={"kind": "free"}), event(0, 1, attributes={"kind": "paid"})

    # When each is taken for its first attempt
    assert rig.gate.admit(other, now_ms, 1) is False
    assert rig.gate.admit(paid, now_ms, 1) is True

    # Then the other is filtered; a retry is not filtered again (it was admitted once)
    row = rig.settler.pending[(0, 0)]
    assert row is not None
    assert row.state == "filtered"
    assert rig.gate.admit(other, now_ms, 2) is True


def test_the_gate_is_closed_while_paused_stopping_or_throttled(store: Store) -> None:
    rig = parts(store, SUB)
    now = rig.clock.now()
    assert not rig.gate.closed(now, stopping=False)
    assert rig.gate.closed(now, stopping=True)

    # A throttle pauses until its end; a shorter one does not shorten it
    rig.gate.pause(now + 10)
    rig.gate.pause(now + 5)
    assert rig.gate.closed(now + 9.9, stopping=False)
    assert not rig.gate.closed(now + 10, stopping=False)

    # An operator's pause holds until resumed
    rig.gate.update(msgspec.structs.replace(SUB, control=Control(paused=True)), now)
    assert rig.gate.closed(now + 100, stopping=False)


def test_a_lease_in_doubt_closes_the_gate_and_it_looks_again_shortly(store: Store) -> None:
    valid = [False]
    rig = parts(store, SUB, lease_valid=lambda: valid[0])
    now = rig.clock.now()

    assert rig.gate.closed(now, stopping=False)
    assert rig.gate.paused_until == now + LEASE_RECHECK

    valid[0] = True
    assert rig.gate.closed(now + LEASE_RECHECK / 2, stopping=False)
    assert not rig.gate.closed(now + LEASE_RECHECK, stopping=False)


def test_a_node_paces_its_share_of_the_rate_limit(store: Store) -> None:
    # Given a node holding 2 of the topic's 6 log partitions, and 60/s with a burst of 12
    limited = Control(rate_limit=RateLimit(per_second=60.0, burst=12))
    rig = parts(store, msgspec.structs.replace(SUB, control=limited), partitions={0: 1, 1: 1})

    # Then it paces a third of it
    bucket = rig.gate.bucket
    assert bucket is not None
    assert (bucket.rate, bucket.burst) == (20.0, 4)
