"""The store's dead-letter primitives on every adapter: list_rows, mark_rows, redrive_requests.

Rows are committed as the runner commits them (``commit_progress``), over events in the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from conveyor._ids import new_id
from conveyor.model import Attempt, AttemptOutcome, Subscription, Topic
from conveyor.node import open_store
from conveyor.store.base import CursorState, DeliveryRow, NewEvent, Progress, Store

NOW_MS = 1_700_000_000_000
DEDUP_MS = 60_000
ORDERS = Topic(name="orders", partitions=2, retention_seconds=60)


def new_event(partition: int) -> NewEvent:
    return NewEvent(new_id(NOW_MS), partition, None, None, b"{}", NOW_MS, None, False)


def dead(
    partition: int,
    offset: int,
    *,
    at_ms: int = NOW_MS,
    error: str = "boom",
    state: str = "dead",
) -> DeliveryRow:
    """A row after three failed attempts, the last at ``at_ms``."""
    history = [
        Attempt(n, at_ms - (3 - n) * 1000, AttemptOutcome.RETRY, error, 5) for n in (1, 2, 3)
    ]
    return DeliveryRow(partition, offset, f"k{offset}", state, 3, None, error, history, at_ms)


async def commit(store: Store, sub: str, *rows: DeliveryRow) -> None:
    await store.commit_progress([Progress(sub, rows=list(rows))], NOW_MS)


def refs(rows: Sequence[DeliveryRow]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in rows]


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        await opened.put_topic(ORDERS)
        for name in ("billing", "audit"):
            await opened.put_subscription(Subscription(name=name, topic="orders", lambda_name="w"))
        yield opened


# -- list_rows ------------------------------------------------------------------------------------
async def test_rows_of_one_state_are_listed_by_partition_and_offset_a_page_at_a_time(
    store: Store,
) -> None:
    # Given five dead rows over two partitions, a retrying row, and another subscription's row
    await commit(store, "billing", dead(1, 0), dead(0, 7), dead(0, 2), dead(1, 3), dead(0, 5))
    await commit(store, "billing", dead(0, 3, state="retrying"))
    await commit(store, "audit", dead(0, 1))

    # When they are listed two at a time, each page after the last row of the one before
    pages: list[list[tuple[int, int]]] = []
    after: tuple[int, int] | None = None
    while page := await store.list_rows("billing", "dead", after=after, limit=2):
        pages.append(refs(page))
        after = pages[-1][-1]

    # Then every dead row of the subscription comes once, in (partition, offset) order
    assert pages == [[(0, 2), (0, 5)], [(0, 7), (1, 0)], [(1, 3)]]


async def test_listed_rows_carry_their_attempts_error_and_history(store: Store) -> None:
    # Given a dead row
    row = dead(0, 4, at_ms=NOW_MS + 9, error="card declined")
    await commit(store, "billing", row)

    # When it is listed
    (listed,) = await store.list_rows("billing", "dead")

    # Then it is the row as committed
    assert listed == row


async def test_rows_are_filtered_by_a_half_open_time_window(store: Store) -> None:
    # Given rows gone dead at t, t+1 s and t+2 s
    await commit(
        store,
        "billing",
        dead(0, 0, at_ms=NOW_MS),
        dead(0, 1, at_ms=NOW_MS + 1000),
        dead(0, 2, at_ms=NOW_MS + 2000),
    )

    # When rows are listed since t+1 s, until t+2 s, and in [t+1 s, t+2 s)
    since = await store.list_rows("billing", "dead", since_ms=NOW_MS + 1000)
    until = await store.list_rows("billing", "dead", until_ms=NOW_MS + 2000)
    both = await store.list_rows("billing", "dead", since_ms=NOW_MS + 1000, until_ms=NOW_MS + 2000)

    # Then the lower bound is inclusive and the upper exclusive
    assert refs(since) == [(0, 1), (0, 2)]
    assert refs(until) == [(0, 0), (0, 1)]
    assert refs(both) == [(0, 1)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("DECLINED", [(0, 0), (0, 1)], id="any case"),
        pytest.param("limit 100%", [(0, 2)], id="a percent sign is literal"),
        pytest.param("a_b", [(0, 3)], id="an underscore is literal"),
        pytest.param("c:\\tmp", [(0, 4)], id="a backslash is literal"),
        pytest.param("nowhere", [], id="no match"),
    ],
)
async def test_rows_are_filtered_by_a_substring_of_their_last_error(
    store: Store, text: str, expected: list[tuple[int, int]]
) -> None:
    # Given rows with assorted errors, some with LIKE's wildcards and escape character
    errors = ["Card declined", "card DECLINED twice", "over limit 100% now", "a_b", "c:\\tmp"]
    await commit(store, "billing", *(dead(0, n, error=e) for n, e in enumerate(errors)))
    await commit(store, "billing", dead(0, 9, error="limit 1000 reached: aXb"))

    # When they are listed by a piece of error text
    listed = await store.list_rows("billing", "dead", error=text)

    # Then exactly the rows whose error contains it, whatever the case, are listed
    assert refs(listed) == expected


# -- mark_rows ------------------------------------------------------------------------------------
async def test_marking_rows_for_redrive_resets_their_attempts_and_keeps_their_history(
    store: Store,
) -> None:
    # Given three dead rows and a retrying one
    rows = [dead(0, 0), dead(0, 1), dead(1, 0)]
    await commit(store, "billing", *rows, dead(1, 1, state="retrying"))

    # When two dead ones, the retrying one and an unknown one are marked for redrive
    later = NOW_MS + 5000
    moved = await store.mark_rows(
        "billing", "dead", "redrive", refs=[(0, 1), (1, 0), (1, 1), (1, 9)], now_ms=later
    )

    # Then only the two dead ones moved, due now, from attempt 1, with their history
    assert moved == 2
    (redriven_a, redriven_b) = await store.redrive_requests("billing", None, 10)
    for redriven, original in ((redriven_a, rows[1]), (redriven_b, rows[2])):
        assert (redriven.state, redriven.attempts, redriven.next_ms) == ("redrive", 0, later)
        assert (redriven.updated_ms, redriven.history) == (later, original.history)
        assert redriven.last_error == original.last_error
    assert refs(await store.list_rows("billing", "dead")) == [(0, 0)]
    assert await store.count_rows("billing") == {"dead": 1, "redrive": 2, "retrying": 1}

    # And marking them again moves nothing: they are no longer dead
    again = await store.mark_rows("billing", "dead", "redrive", refs=[(0, 1)], now_ms=later)
    assert again == 0


async def test_marking_every_matching_row_leaves_others_and_other_subscriptions_alone(
    store: Store,
) -> None:
    # Given billing's dead rows with two errors at two times, and audit's matching row
    await commit(
        store,
        "billing",
        dead(0, 0, error="timeout", at_ms=NOW_MS),
        dead(0, 1, error="timeout", at_ms=NOW_MS + 1000),
        dead(0, 2, error="fatal: bad payload", at_ms=NOW_MS + 1000),
    )
    await commit(store, "audit", dead(0, 0, error="timeout", at_ms=NOW_MS + 1000))

    # When billing's timeouts since t+1 s are dropped
    moved = await store.mark_rows(
        "billing", "dead", "dropped", since_ms=NOW_MS + 1000, error="TIMEOUT", now_ms=NOW_MS + 9
    )

    # Then only that row is dropped (keeping its attempts), and nothing else moved
    assert moved == 1
    (dropped,) = await store.list_rows("billing", "dropped")
    assert (dropped.offset, dropped.attempts, dropped.updated_ms) == (1, 3, NOW_MS + 9)
    assert refs(await store.list_rows("billing", "dead")) == [(0, 0), (0, 2)]
    assert refs(await store.list_rows("audit", "dead")) == [(0, 0)]


async def test_marking_every_row_moves_them_all_at_once(store: Store) -> None:
    # Given 300 dead rows
    await commit(store, "billing", *(dead(n % 2, n) for n in range(300)))

    # When all are marked for redrive
    moved = await store.mark_rows("billing", "dead", "redrive", now_ms=NOW_MS)

    # Then all moved
    assert moved == 300
    assert await store.count_rows("billing") == {"redrive": 300}


# -- redrive_requests -----------------------------------------------------------------------------
async def test_redrive_requests_are_read_per_partition_in_order_up_to_a_limit(
    store: Store,
) -> None:
    # Given rows marked for redrive in partitions 0, 1 and 3, and a dead row
    await commit(
        store,
        "billing",
        dead(3, 1, state="redrive"),
        dead(1, 4, state="redrive"),
        dead(0, 2, state="redrive"),
        dead(1, 2, state="redrive"),
        dead(1, 0),
    )

    # When they are read for some partitions, all, none, and with a limit
    some = await store.redrive_requests("billing", [1, 3], 10)
    every = await store.redrive_requests("billing", None, 10)
    none = await store.redrive_requests("billing", [], 10)
    first = await store.redrive_requests("billing", None, 2)

    # Then each read is ordered by (partition, offset), and holds only redrive rows
    assert refs(some) == [(1, 2), (1, 4), (3, 1)]
    assert refs(every) == [(0, 2), (1, 2), (1, 4), (3, 1)]
    assert none == []
    assert refs(first) == [(0, 2), (1, 2)]
    assert await store.redrive_requests("audit", None, 10) == []


# -- housekeeping ---------------------------------------------------------------------------------
async def test_a_dead_letters_event_outlives_retention_as_long_as_its_row(store: Store) -> None:
    # Given three old events below billing's cursor: 0 succeeded, 1 is dead, 2 redriven
    events = [new_event(0) for _ in range(3)]
    await store.publish(ORDERS, events, NOW_MS, DEDUP_MS)
    rows = [dead(0, 1, at_ms=NOW_MS + 30_000), dead(0, 2, state="redrive")]
    cursors = {0: CursorState(3, [], 0)}
    await store.commit_progress([Progress("billing", cursors=cursors, rows=rows)], NOW_MS)
    await store.commit_progress([Progress("audit", cursors=cursors)], NOW_MS)

    # When the sweep runs once the events, not yet the dead row, are past retention
    await store.sweep(NOW_MS + ORDERS.retention_seconds * 1000 + 1, DEDUP_MS)

    # Then the dead letter's and the redriven event are kept; the finished one is gone
    assert [e.offset for e in await store.read_log(ORDERS, 0, 0, 10)] == [1, 2]

    # And once the dead row is past retention too, it goes, and its event with it
    await store.sweep(NOW_MS + 30_000 + ORDERS.retention_seconds * 1000 + 1, DEDUP_MS)
    await store.sweep(NOW_MS + 30_000 + ORDERS.retention_seconds * 1000 + 2, DEDUP_MS)
    assert [e.offset for e in await store.read_log(ORDERS, 0, 0, 10)] == [2]
    assert await store.list_rows("billing", "dead") == []
