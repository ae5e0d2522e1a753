"""The dead-letter service over a running node, on every store: events really go dead (a
lambda on 127.0.0.1 answers ``fatal``), then are listed, inspected, redriven and purged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from conveyor.clock import FakeClock, to_ms
from conveyor.errors import InvalidRequest, NotFound
from conveyor.flow.dead_letters import DeadLetters
from conveyor.model import AttemptOutcome
from conveyor.wire.dead_letters import DeadLetterQuery, DeadLetterSelection
from conveyor.wire.schemas import PublishRequest
from dead_letters_platform import OTHER_TOPIC, SUB, Rig, dead_letter_rig


@pytest.fixture
async def rig(store_url: str) -> AsyncIterator[Rig]:
    async with dead_letter_rig(store_url) as started:
        yield started


def at(clock: FakeClock, seconds: float = 0.0) -> datetime:
    return datetime.fromtimestamp(clock.now() + seconds, tz=UTC)


async def state_of(rig: Rig, event_id: str) -> str:
    view = await rig.node.status.event(event_id)
    (delivery,) = [d for d in view.deliveries if d.subscription == SUB]
    return delivery.state


# -- list and get ---------------------------------------------------------------------------------
async def test_a_fatal_event_is_listed_with_its_payload_error_and_time_gone_dead(
    rig: Rig,
) -> None:
    # Given an event the lambda answers fatal, and one it accepts
    (dead_id,) = await rig.kill("card declined", key="customer-7")
    await rig.succeed({"ok": 1})

    # When the subscription's dead letters are listed
    page = await rig.dead_letters.list(SUB, DeadLetterQuery())

    # Then only the dead one is there, with what an operator needs to judge it
    (item,) = page.items
    assert (item.id, item.key, item.attempts, item.last_error) == (
        dead_id,
        "customer-7",
        1,
        "card declined",
    )
    assert msgspec.json.decode(item.payload) == {"fail": "card declined", "n": 0}
    assert item.publish_time == item.dead_at == at(rig.clock)
    assert item.history == []
    assert page.next is None


async def test_one_dead_letter_shows_its_attempt_history(rig: Rig) -> None:
    # Given an event that went dead
    (dead_id,) = await rig.kill("bad payload: no amount")

    # When it is asked for
    dead = await rig.dead_letters.get(SUB, dead_id)

    # Then it comes with its one fatal attempt
    assert dead.id == dead_id
    (attempt,) = dead.history
    assert (attempt.attempt, attempt.outcome, attempt.error) == (
        1,
        AttemptOutcome.FATAL,
        "bad payload: no amount",
    )
    assert attempt.at == at(rig.clock)


async def test_dead_letters_are_filtered_by_when_they_went_dead_and_by_error(rig: Rig) -> None:
    # Given dead letters gone dead at t (two timeouts), t+60 s (a decline) and t+120 s
    start = at(rig.clock)
    early = await rig.kill("Timeout after 30s", "timeout again")
    rig.clock.advance(60)
    middle = await rig.kill("card declined")
    rig.clock.advance(60)
    late = await rig.kill("TIMEOUT")

    async def ids(**query: object) -> set[str]:
        page = await rig.dead_letters.list(SUB, DeadLetterQuery(**query))  # type: ignore[arg-type]
        return {d.id for d in page.items}

    # Then a window is [since, until), and error text matches in any case
    assert await ids(since=start + timedelta(seconds=60)) == set(middle + late)
    assert await ids(until=start + timedelta(seconds=60)) == set(early)
    assert await ids(
        since=start + timedelta(seconds=30), until=start + timedelta(seconds=120)
    ) == set(middle)
    assert await ids(error="timeout") == set(early + late)
    assert await ids(error="TIMEOUT", since=start + timedelta(seconds=1)) == set(late)


async def test_dead_letters_are_paged_by_a_cursor_until_the_last_page(rig: Rig) -> None:
    # Given five dead letters
    killed = await rig.kill(*(f"error {n}" for n in range(5)))

    # When they are read two at a time
    seen: list[str] = []
    pages = 0
    after: str | None = None
    while True:
        page = await rig.dead_letters.list(SUB, DeadLetterQuery(after=after, limit=2))
        pages += 1
        seen += [d.id for d in page.items]
        if page.next is None:
            break
        after = page.next

    # Then each comes once, over three pages, by partition and offset
    assert sorted(seen) == sorted(killed)
    assert len(seen) == 5
    assert pages == 3


async def test_a_cursor_that_is_not_one_is_refused(rig: Rig) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await rig.dead_letters.list(SUB, DeadLetterQuery(after="not a cursor"))
    assert (refused.value.field, refused.value.rule) == ("/query/after", "format")


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        pytest.param(
            DeadLetterQuery(since=datetime(2030, 1, 1)), "/query/since", "format", id="naive since"
        ),
        pytest.param(
            DeadLetterQuery(
                since=datetime(2030, 1, 2, tzinfo=UTC), until=datetime(2030, 1, 1, tzinfo=UTC)
            ),
            "/query/until",
            "range",
            id="until before since",
        ),
    ],
)
async def test_a_bad_time_window_is_refused_naming_the_parameter(
    rig: Rig, query: DeadLetterQuery, field: str, rule: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await rig.dead_letters.list(SUB, query)
    assert (refused.value.field, refused.value.rule) == (field, rule)


async def test_an_event_that_is_not_dead_for_the_subscription_is_not_found(rig: Rig) -> None:
    # Given an event that succeeded, and one of another topic
    (ok,) = await rig.succeed({"ok": 1})
    request = PublishRequest(payload=msgspec.Raw(b"1"))
    (other,) = await rig.node.publisher.publish(OTHER_TOPIC, [request], batch=False)

    # When each is asked for as a dead letter, and an unknown event, and an unknown
    # subscription's
    with pytest.raises(NotFound) as succeeded:
        await rig.dead_letters.get(SUB, ok)
    with pytest.raises(NotFound) as elsewhere:
        await rig.dead_letters.get(SUB, other.id)
    with pytest.raises(NotFound) as unknown:
        await rig.dead_letters.get(SUB, "0" * 32)
    with pytest.raises(NotFound) as no_sub:
        await rig.dead_letters.get("nope", ok)

    # Then each is not found, saying why
    assert succeeded.value.message == f"event {ok!r} is not a dead letter of subscription 'billing'"
    assert elsewhere.value.message == (
        f"event {other.id!r} is not a dead letter of subscription 'billing'"
    )
    assert unknown.value.message == f"event {'0' * 32!r} does not exist"
    assert no_sub.value.message == "subscription 'nope' does not exist"


# -- purge --------------------------------------------------------------------------------------
async def test_purged_dead_letters_read_dropped_and_leave_the_queue(rig: Rig) -> None:
    # Given three dead letters
    first, second, third = await rig.kill("a", "b", "c")

    # When one is purged by id, then all the others
    by_id = await rig.dead_letters.purge(SUB, DeadLetterSelection(event_ids=[second]))
    rest = await rig.dead_letters.purge(SUB, DeadLetterSelection(all=True))

    # Then one, then two were dropped; the queue is empty; each event reads dropped
    assert (by_id, rest) == (1, 2)
    assert (await rig.dead_letters.list(SUB, DeadLetterQuery())).items == []
    assert [await state_of(rig, e) for e in (first, second, third)] == ["dropped"] * 3
    with pytest.raises(NotFound, match=r"\(its delivery is dropped\)"):
        await rig.dead_letters.get(SUB, second)

    # And purging them again drops nothing
    assert await rig.dead_letters.purge(SUB, DeadLetterSelection(event_ids=[first])) == 0


async def test_purging_all_can_be_narrowed_by_time_and_error(rig: Rig) -> None:
    # Given two timeouts at t, and a timeout and a decline at t+60 s
    start = at(rig.clock)
    await rig.kill("timeout", "timeout")
    rig.clock.advance(60)
    late_timeout, decline = await rig.kill("Timeout", "declined")

    # When timeouts since t+60 s are purged
    selection = DeadLetterSelection(all=True, since=start + timedelta(seconds=60), error="TIME")
    purged = await rig.dead_letters.purge(SUB, selection)

    # Then only the late timeout was dropped
    assert purged == 1
    assert await state_of(rig, late_timeout) == "dropped"
    assert await state_of(rig, decline) == "dead"
    assert len((await rig.dead_letters.list(SUB, DeadLetterQuery())).items) == 3


# -- redrive --------------------------------------------------------------------------------------
async def test_a_redrive_sends_rows_back_and_tells_the_runner(rig: Rig) -> None:
    # Given two dead letters, and a service that records whom it wakes
    woken: list[str] = []
    service = DeadLetters(rig.node.store, rig.node.catalog, rig.clock, woken.append)
    first, second = await rig.kill("a", "b")
    rig.clock.advance(5)

    # When one is redriven, then one that is no longer dead
    moved = await service.redrive(SUB, DeadLetterSelection(event_ids=[first]))
    again = await service.redrive(SUB, DeadLetterSelection(event_ids=[first]))

    # Then it was sent back once, due now from attempt 1, and the runner was woken once
    assert (moved.count, again.count) == (1, 0)
    assert woken == [SUB]
    (request,) = await rig.node.store.redrive_requests(SUB, None, 10)
    assert (request.attempts, request.next_ms, len(request.history)) == (
        0,
        to_ms(rig.clock.now()),
        1,
    )
    remaining = await service.list(SUB, DeadLetterQuery())
    assert [d.id for d in remaining.items] == [second]


SELECTIONS = [
    pytest.param(DeadLetterSelection(), "/event_ids", "required", id="neither ids nor all"),
    pytest.param(
        DeadLetterSelection(all=False), "/event_ids", "required", id="all false and no ids"
    ),
    pytest.param(
        DeadLetterSelection(event_ids=["x"], all=True), "/all", "exclusive", id="ids and all"
    ),
    pytest.param(
        DeadLetterSelection(event_ids=["x"], error="boom"),
        "/error",
        "exclusive",
        id="ids and a filter",
    ),
    pytest.param(
        DeadLetterSelection(all=True, since=datetime(2030, 1, 1)),
        "/since",
        "format",
        id="naive since",
    ),
    pytest.param(
        DeadLetterSelection(
            all=True,
            since=datetime(2030, 1, 1, tzinfo=UTC),
            until=datetime(2030, 1, 1, tzinfo=UTC),
        ),
        "/until",
        "range",
        id="empty window",
    ),
]


@pytest.mark.parametrize(("selection", "field", "rule"), SELECTIONS)
@pytest.mark.parametrize("verb", ["redrive", "purge"])
async def test_a_bad_selection_is_refused_naming_the_field_and_rule_and_moves_nothing(
    rig: Rig, verb: str, selection: DeadLetterSelection, field: str, rule: str
) -> None:
    # Given a dead letter
    await rig.kill("boom")

    # When a redrive or purge is asked with a bad selection
    with pytest.raises(InvalidRequest) as refused:
        await getattr(rig.dead_letters, verb)(SUB, selection)

    # Then it is refused naming the field and the rule, and nothing moved
    assert (refused.value.field, refused.value.rule) == (field, rule)
    assert await rig.node.store.count_rows(SUB) == {"dead": 1}


async def test_ids_that_name_no_event_of_the_topic_refuse_the_whole_selection(rig: Rig) -> None:
    # Given a dead letter and an event of another topic
    (dead,) = await rig.kill("boom")
    request = PublishRequest(payload=msgspec.Raw(b"1"))
    (other,) = await rig.node.publisher.publish(OTHER_TOPIC, [request], batch=False)

    # When the dead letter is redriven along with that event and an unknown id
    selection = DeadLetterSelection(event_ids=[dead, other.id, "f" * 32])
    with pytest.raises(InvalidRequest) as refused:
        await rig.dead_letters.redrive(SUB, selection)

    # Then the request is refused naming each bad id, and the dead letter stays dead
    assert [(e.field, e.rule) for e in refused.value.errors] == [
        ("/event_ids/1", "exists"),
        ("/event_ids/2", "exists"),
    ]
    assert (refused.value.field, refused.value.rule) == ("/event_ids/1", "exists")
    assert await rig.node.store.count_rows(SUB) == {"dead": 1}


async def test_an_unknown_subscription_is_not_found(rig: Rig) -> None:
    with pytest.raises(NotFound, match="subscription 'nope' does not exist"):
        await rig.dead_letters.list("nope", DeadLetterQuery())
    with pytest.raises(NotFound, match="subscription 'nope' does not exist"):
        await rig.dead_letters.redrive("nope", DeadLetterSelection(all=True))


# -- end to end (needs the runner to pick up redrive rows) --------------------------------------
async def test_a_redriven_event_is_delivered_again_from_attempt_1_and_ends_succeeded(
    rig: Rig,
) -> None:
    # Given an event that went dead, whose lambda is then fixed
    (event_id,) = await rig.kill("bug in the handler")
    rig.lam.forgiven.add(event_id)

    # When it is redriven through the node's own service
    moved = await rig.dead_letters.redrive(SUB, DeadLetterSelection(event_ids=[event_id]))

    # Then it is pushed again as attempt 1, and ends succeeded, out of the queue
    assert moved.count == 1
    deadline = time.monotonic() + 10
    while rig.lam.received.count((event_id, 1)) < 2 or await state_of(rig, event_id) != "succeeded":
        assert time.monotonic() < deadline, (rig.lam.received, await state_of(rig, event_id))
        await asyncio.sleep(0.01)
    assert (await rig.dead_letters.list(SUB, DeadLetterQuery())).items == []
