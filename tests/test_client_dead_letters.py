"""The clients' dead-letter methods against a real node on 127.0.0.1, on every store.

The async client talks to an in-process server on the test's loop; the blocking client to
the same node on a loop in a thread of its own (:class:`ThreadedPlatform`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from conveyor.api.app import build_app
from conveyor.client import AsyncClient, Client
from conveyor.errors import InvalidRequest, NotFound
from conveyor.model import AttemptOutcome
from dead_letters_platform import SUB, Rig, ThreadedPlatform, dead_letter_rig

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
async def rig(store_url: str) -> AsyncIterator[Rig]:
    async with dead_letter_rig(store_url) as started:
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


def now(rig: Rig) -> datetime:
    return datetime.fromtimestamp(rig.clock.now(), tz=UTC)


# -- the async client ---------------------------------------------------------------------------
async def test_dead_letters_are_read_page_by_page_with_filters(
    rig: Rig, client: AsyncClient
) -> None:
    # Given two timeouts at t and a decline and a timeout at t+60 s
    start = now(rig)
    early = await rig.kill("timeout", "timeout")
    rig.clock.advance(60)
    late = await rig.kill("declined", "Timeout")

    # When they are read a page of one at a time, and filtered (in a zone east of UTC,
    # whose '+' must survive the URL)
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await client.dead_letters(SUB, after=after, limit=1)
        seen += [d.id for d in page.items]
        if page.next is None:
            break
        after = page.next
    paris = timezone(timedelta(hours=1))
    since = (start + timedelta(seconds=30)).astimezone(paris)
    recent = await client.dead_letters(SUB, since=since, error="TIMEOUT")
    older = await client.dead_letters(SUB, until=since)

    # Then each came once, and the filters picked the right ones
    assert sorted(seen) == sorted(early + late)
    assert [d.id for d in recent.items] == [late[1]]
    assert sorted(d.id for d in older.items) == sorted(early)


async def test_one_dead_letter_comes_with_its_payload_and_history(
    rig: Rig, client: AsyncClient
) -> None:
    # Given a dead letter
    (event_id,) = await rig.kill("card declined")

    # When it is read
    dead = await client.dead_letter(SUB, event_id)

    # Then it has its payload and its one fatal attempt
    assert msgspec.json.decode(dead.payload) == {"fail": "card declined", "n": 0}
    assert [(a.attempt, a.outcome, a.error) for a in dead.history] == [
        (1, AttemptOutcome.FATAL, "card declined")
    ]


async def test_redrive_and_purge_return_how_many_moved(rig: Rig, client: AsyncClient) -> None:
    # Given three declines and a timeout, on a subscription then paused (so that the redriven
    # ones wait: running, they could die again before the purges)
    first, second, *_ = await rig.kill("declined", "declined", "declined", "timeout")
    await client.pause(SUB)

    # When two are redriven by id, declines are purged, then everything
    redriven = await client.redrive(SUB, [first, second])
    declines = await client.purge_dead_letters(SUB, all=True, error="declined")
    rest = await client.purge_dead_letters(SUB, all=True)

    # Then two, one, then one moved
    assert (redriven.count, redriven.before_purge, declines, rest) == (2, 0, 1, 1)
    assert (await client.dead_letters(SUB)).items == []


async def test_an_unknown_subscription_raises_not_found_naming_it(client: AsyncClient) -> None:
    with pytest.raises(NotFound) as raised:
        await client.dead_letters("nope")
    assert (raised.value.kind, raised.value.name) == ("subscription", "nope")
    with pytest.raises(NotFound):
        await client.redrive("nope", all=True)


async def test_an_event_that_is_not_dead_raises_not_found_with_the_servers_message(
    rig: Rig, client: AsyncClient
) -> None:
    (ok,) = await rig.succeed({"ok": True})
    with pytest.raises(NotFound) as raised:
        await client.dead_letter(SUB, ok)
    assert raised.value.message == f"event {ok!r} is not a dead letter of subscription 'billing'"


async def test_an_unknown_event_id_raises_invalid_request_naming_it(
    rig: Rig, client: AsyncClient
) -> None:
    # Given a dead letter
    (dead,) = await rig.kill("boom")

    # When it is purged with an id that names no event
    with pytest.raises(InvalidRequest) as raised:
        await client.purge_dead_letters(SUB, [dead, "0" * 32])

    # Then the error names the bad id's place, and nothing moved
    assert [(e.field, e.rule) for e in raised.value.errors] == [("/event_ids/1", "exists")]
    assert [d.id for d in (await client.dead_letters(SUB)).items] == [dead]


async def test_a_bad_query_raises_invalid_request_naming_the_parameter(
    client: AsyncClient,
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await client.dead_letters(SUB, limit=5000)
    assert (raised.value.field, raised.value.rule) == ("/query/limit", "maximum")


NAIVE = datetime(2030, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({}, "give event_ids, or all=True", id="neither"),
        pytest.param({"event_ids": ["a"], "all": True}, "not both", id="both"),
        pytest.param({"event_ids": []}, "empty", id="no ids"),
        pytest.param({"event_ids": ["a"], "error": "x"}, "narrow all=True", id="ids and filter"),
        pytest.param({"all": True, "since": NAIVE}, "timezone-aware", id="naive since"),
    ],
)
async def test_a_malformed_selection_raises_value_error_without_a_request(
    kwargs: dict[str, object], message: str
) -> None:
    # Given a client of a node that does not exist: any request would fail otherwise
    async with AsyncClient(UNREACHABLE) as conveyor:
        for move in (conveyor.redrive, conveyor.purge_dead_letters):
            with pytest.raises(ValueError, match=message):
                await move(SUB, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timezone-aware"):
            await conveyor.dead_letters(SUB, until=NAIVE)


# -- the blocking client ------------------------------------------------------------------------
def test_the_blocking_client_lists_shows_redrives_and_purges(platform: ThreadedPlatform) -> None:
    # Given three dead letters
    first, second, third = platform.call(platform.rig.kill("a", "b", "c"))
    # (the first one's bug is fixed: redriven, it succeeds rather than going dead again
    # before the client looks, which a fast redelivery otherwise races with)
    platform.rig.lam.forgiven.add(first)

    # When the blocking client reads and moves them
    with Client(platform.url) as conveyor:
        listed = conveyor.dead_letters(SUB, limit=2)
        shown = conveyor.dead_letter(SUB, first)
        redriven = conveyor.redrive(SUB, [first])
        purged = conveyor.purge_dead_letters(SUB, [second, third])
        with pytest.raises(NotFound):
            conveyor.dead_letter(SUB, first)
        left = conveyor.dead_letters(SUB)

    # Then it saw what the async client sees
    assert len(listed.items) == 2
    assert listed.next is not None
    assert (shown.id, shown.last_error) == (first, "a")
    assert (redriven.count, purged) == (1, 2)
    assert left.items == []


def test_the_blocking_client_refuses_a_malformed_selection() -> None:
    with Client(UNREACHABLE) as conveyor, pytest.raises(ValueError, match="not both"):
        conveyor.redrive(SUB, ["a"], all=True)
