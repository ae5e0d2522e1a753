"""The settling part alone: rows that own retried and dead events, key order, drops.

Real parts (reader, key lanes, gate, batcher) over a real SQLite store that is never read:
the results are handed to the settler as a push would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from parts_rig import TOPIC, event, parts

from conveyor.clock import to_ms
from conveyor.delivery.push import Result
from conveyor.model import AttemptOutcome, Control, Outcome, RetryPolicy, Subscription, Topic
from conveyor.node import open_store
from conveyor.store.base import Progress, Store

RETRY = RetryPolicy(max_attempts=3, min_backoff=2.0, max_backoff=60.0)
SUB = Subscription(name="billing", topic=TOPIC.name, lambda_name="worker", retry=RETRY)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(str(tmp_path / "c.db")) as opened:
        yield opened


def failed(error: str = "boom") -> Result:
    return Result(Outcome.RETRY, error=error)


def test_a_retry_gets_a_row_that_owns_the_event_and_is_read_back_at_its_time_never_early(
    store: Store,
) -> None:
    # Given an event pushed (attempt 1) at t0
    rig = parts(store, SUB)
    e0 = event(0, 0)
    rig.append(0, e0)
    t0 = rig.clock.now()
    assert rig.batcher.take(10, to_ms(t0)) == ([e0], [1])

    # When it fails
    rig.settler.settle([e0], [1], [failed()], t0)

    # Then a retrying row owns it, due after the backoff, and the cursor passes it
    row = rig.settler.rows[(0, 0)]
    due = to_ms(t0 + 2.0)
    assert (row.state, row.attempts, row.next_ms, row.last_error) == ("retrying", 1, due, "boom")
    assert [(a.attempt, a.outcome) for a in row.history] == [(1, AttemptOutcome.RETRY)]
    assert rig.settler.pending == {(0, 0): row}
    assert rig.reader.parts[0].progress.cursor == 1
    assert rig.dirty

    # And it is read back at its due time, not a millisecond before, as attempt 2
    rig.settler.release_due(due - 1)
    assert rig.reader.to_load == []
    rig.settler.release_due(due)
    assert rig.reader.to_load == [(0, 0)]
    rig.settler.loaded([(0, 0)], {(0, 0): e0})
    assert list(rig.ready) == [(e0, 2)]


def test_the_last_attempt_goes_dead_and_its_copy_goes_to_the_dead_letter_topic(
    store: Store,
) -> None:
    # Given a subscription with a dead-letter topic, and an event on its last attempt
    dlq = Topic(name="billing-dlq", partitions=1)
    rig = parts(store, msgspec.structs.replace(SUB, dead_letter_topic=dlq.name))
    e0 = event(0, 0, key="k", attributes={"a": "1"})
    rig.append(0, e0)

    # When the last attempt fails
    rig.settler.settle([e0], [3], [failed("still broken")], rig.clock.now())

    # Then its row is dead, the last attempt reads `dead`, and no row is live
    row = rig.settler.pending[(0, 0)]
    assert row is not None
    assert (row.state, row.attempts, row.next_ms) == ("dead", 3, None)
    assert [a.outcome for a in row.history] == [AttemptOutcome.DEAD]
    assert rig.settler.rows == {}
    assert rig.reader.parts[0].progress.cursor == 1

    # And taking progress moves the row and the copy, once
    progress = Progress(SUB.name, {})
    rig.settler.take(progress, dlq, TOPIC)
    assert [r.state for r in progress.rows] == ["dead"]
    [(topic, copy)] = progress.dead_letters
    assert (topic, copy.key, copy.payload) == (dlq, "k", e0.payload)
    assert copy.attributes == {
        "a": "1",
        "conveyor.dead_letter.subscription": SUB.name,
        "conveyor.dead_letter.topic": TOPIC.name,
        "conveyor.dead_letter.event_id": e0.id,
    }
    again = Progress(SUB.name, {})
    rig.settler.take(again, dlq, TOPIC)
    assert (again.rows, again.dead_letters) == ([], [])


def test_a_failure_on_a_canary_is_retried_even_on_the_last_attempt(store: Store) -> None:
    rig = parts(store, SUB)
    e0 = event(0, 0)
    rig.append(0, e0)

    rig.settler.settle([e0], [3], [failed()], rig.clock.now(), canary=True)

    assert rig.settler.rows[(0, 0)].state == "retrying"


def test_a_failing_key_parks_its_followers_and_releases_them_in_order(store: Store) -> None:
    # Given an ordered subscription: k's head and follower, and another key's event
    rig = parts(store, msgspec.structs.replace(SUB, ordered=True))
    head, follower, other = event(0, 0, key="k"), event(0, 1, key="k"), event(0, 2, key="j")
    rig.append(0, head, follower, other)
    now = rig.clock.now()
    assert rig.batcher.take(10, to_ms(now)) == ([head, other], [1, 1])

    # When k's head fails, and j's event succeeds
    rig.settler.settle([head, other], [1, 1], [failed(), Result(Outcome.SUCCESS)], now)

    # Then the follower waits behind a blocked row, and the cursor passes all three
    assert {ref: row.state for ref, row in rig.settler.rows.items()} == {
        (0, 0): "retrying",
        (0, 1): "blocked",
    }
    assert rig.reader.parts[0].progress.cursor == 3

    # When the head's retry succeeds, the follower is read back (attempt 1) and goes
    rig.settler.settle([head], [2], [Result(Outcome.SUCCESS)], now + 2)
    assert rig.reader.to_load == [(0, 1)]
    rig.settler.loaded([(0, 1)], {(0, 1): follower})
    assert list(rig.ready) == [(follower, 1)]

    # And once it succeeds too, its row is deleted (it never failed) and the key is done
    rig.settler.settle([follower], [1], [Result(Outcome.SUCCESS)], now + 2)
    assert rig.settler.pending[(0, 1)] is None
    assert rig.settler.rows == {}


def test_an_event_no_longer_in_the_log_goes_dead(store: Store) -> None:
    rig = parts(store, SUB)
    e0 = event(0, 0)
    rig.append(0, e0)
    rig.settler.settle([e0], [1], [failed()], rig.clock.now())

    rig.settler.loaded([(0, 0)], {})

    row = rig.settler.pending[(0, 0)]
    assert row is not None
    assert (row.state, row.last_error) == ("dead", "the event is no longer in the log (retention)")
    assert list(rig.ready) == []


def test_a_purge_while_paused_drops_what_it_covers_but_not_a_key_behind_its_head(
    store: Store,
) -> None:
    # Given an ordered subscription with k's head out, its follower and a keyless event
    # buffered, all published before the purge mark, and one after it
    mark = to_ms(parts(store, SUB).clock.now())
    rig = parts(store, msgspec.structs.replace(SUB, ordered=True))
    head, follower = event(0, 0, key="k"), event(0, 1, key="k")
    keyless, late = event(0, 2), event(0, 3, publish_ms=mark)
    rig.append(0, head)
    assert rig.batcher.take(1, mark) == ([head], [1])
    rig.append(0, follower, keyless, late)
    assert rig.batcher.waiting()

    # When paused with the purge mark
    rig.settler.drop_purged(mark)

    # Then the keyless one is dropped; the follower (behind its head) and the later one stay
    assert {ref: row and row.state for ref, row in rig.settler.pending.items()} == {
        (0, 2): "dropped"
    }
    assert list(rig.reader.parts[0].buffer) == [follower, late]
    assert rig.reader.buffered[0] == 2
    assert rig.wakes


def test_a_retrying_event_dropped_by_a_purge_leaves_no_live_row(store: Store) -> None:
    sub = msgspec.structs.replace(SUB, control=Control(purged_before_ms=10**15))
    rig = parts(store, sub)
    e0 = event(0, 0)
    rig.append(0, e0)
    rig.settler.settle([e0], [1], [failed()], rig.clock.now())

    assert rig.gate.admit(e0, to_ms(rig.clock.now()), 2) is False

    assert rig.settler.rows == {}
    row = rig.settler.pending[(0, 0)]
    assert row is not None
    assert (row.state, row.attempts) == ("dropped", 1)
