"""The dead-letter routes in process (aiohttp's TestServer on 127.0.0.1) over a node on each
real store whose lambda kills chosen events.

Every refused request must name the field (``/query/<name>`` for a query parameter) and the
rule, and move nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import msgspec
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from conveyor.api.app import build_app
from conveyor.model import AttemptOutcome
from conveyor.wire.dead_letters import DeadLetter, DeadLetterCount, DeadLetterPage
from conveyor.wire.schemas import ErrorBody, ErrorResponse
from dead_letters_platform import SUB, Rig, dead_letter_rig

Client = TestClient[web.Request, web.Application]
BASE = f"/v1/subscriptions/{SUB}/dead-letters"


@pytest.fixture
async def rig(store_url: str) -> AsyncIterator[Rig]:
    async with dead_letter_rig(store_url) as started:
        yield started


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(rig.node))) as opened:
        yield opened


async def error_of(response: ClientResponse) -> ErrorBody:
    return msgspec.json.decode(await response.read(), type=ErrorResponse).error


async def page_of(response: ClientResponse) -> DeadLetterPage:
    assert response.status == 200, await response.text()
    return msgspec.json.decode(await response.read(), type=DeadLetterPage)


async def count_of(response: ClientResponse) -> int:
    assert response.status == 200, await response.text()
    return msgspec.json.decode(await response.read(), type=DeadLetterCount).count


def rfc3339(when: datetime) -> str:
    return when.isoformat()


# -- list and show --------------------------------------------------------------------------------
async def test_dead_letters_are_listed_filtered_and_paged(rig: Rig, client: Client) -> None:
    # Given three dead letters at t and two at t+60 s
    start = datetime.fromtimestamp(rig.clock.now(), tz=UTC)
    early = await rig.kill("timeout", "declined", "timeout")
    rig.clock.advance(60)
    late = await rig.kill("timeout", "declined")

    # When they are listed two at a time, and filtered by time and error
    first = await page_of(await client.get(BASE, params={"limit": "2"}))
    assert first.next is not None
    second = await page_of(await client.get(BASE, params={"limit": "2", "after": first.next}))
    since = rfc3339(start + timedelta(seconds=30))
    recent = await page_of(await client.get(BASE, params={"since": since, "error": "TIME"}))
    older = await page_of(await client.get(BASE, params={"until": since}))

    # Then pages follow each other, and the filters pick the right ones
    assert len(first.items) == len(second.items) == 2
    assert {d.id for d in first.items} & {d.id for d in second.items} == set()
    assert [d.id for d in recent.items] == [late[0]]
    assert {d.id for d in older.items} == set(early)
    assert all(d.history == [] for d in older.items)


async def test_a_zone_offset_whose_plus_was_left_unescaped_still_reads(
    rig: Rig, client: Client
) -> None:
    # Given a dead letter
    await rig.kill("boom")
    an_hour_ago = datetime.fromtimestamp(rig.clock.now() - 3600, tz=UTC)

    # When the listing's since carries "+00:00" as typed in a URL (a '+' reads as a space)
    raw = an_hour_ago.isoformat().replace("+", " ")
    response = await client.get(BASE + "?since=" + quote(raw, safe=":"))

    # Then it is read as the offset
    assert len((await page_of(response)).items) == 1


async def test_one_dead_letter_is_shown_with_its_payload_and_history(
    rig: Rig, client: Client
) -> None:
    # Given a dead letter
    (event_id,) = await rig.kill("card declined")

    # When it is asked for
    response = await client.get(f"{BASE}/{event_id}")

    # Then it comes with its payload and its attempt
    assert response.status == 200
    dead = msgspec.json.decode(await response.read(), type=DeadLetter)
    assert msgspec.json.decode(dead.payload) == {"fail": "card declined", "n": 0}
    assert [(a.attempt, a.outcome, a.error) for a in dead.history] == [
        (1, AttemptOutcome.FATAL, "card declined")
    ]


# -- redrive and purge ----------------------------------------------------------------------------
async def test_dead_letters_are_redriven_by_id_and_purged_all_at_once(
    rig: Rig, client: Client
) -> None:
    # Given three dead letters
    first, second, third = await rig.kill("a", "b", "c")

    # When one is redriven by id, and the rest purged
    redriven = await client.post(BASE + ":redrive", json={"event_ids": [second]})
    purged = await client.post(BASE + ":purge", json={"all": True})

    # Then one was sent back and two dropped, and the queue is empty
    assert (await count_of(redriven), await count_of(purged)) == (1, 2)
    assert (await page_of(await client.get(BASE))).items == []
    states = {}
    for event_id in (first, second, third):
        view = await rig.node.status.event(event_id)
        states[event_id] = view.deliveries[0].state
    assert states[first] == states[third] == "dropped"


async def test_a_purge_of_all_is_narrowed_by_its_filters(rig: Rig, client: Client) -> None:
    # Given a timeout at t, and a timeout and a decline at t+60 s
    start = datetime.fromtimestamp(rig.clock.now(), tz=UTC)
    await rig.kill("timeout")
    rig.clock.advance(60)
    await rig.kill("timeout", "declined")
    since = rfc3339(start + timedelta(seconds=1))

    # When timeouts since t+1 s are purged
    body = {"all": True, "since": since, "error": "timeout"}
    purged = await count_of(await client.post(BASE + ":purge", json=body))

    # Then that one only was dropped
    assert purged == 1
    assert len((await page_of(await client.get(BASE))).items) == 2


# -- refused requests -----------------------------------------------------------------------------
BAD_LISTINGS = [
    pytest.param({"since": "yesterday"}, "/query/since", "format", id="since not RFC 3339"),
    pytest.param({"until": "2030-13-01T00:00:00Z"}, "/query/until", "format", id="bad month"),
    pytest.param({"since": "2030-01-01T00:00:00"}, "/query/since", "format", id="no zone"),
    pytest.param(
        {"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
        "/query/until",
        "range",
        id="until before since",
    ),
    pytest.param({"limit": "0"}, "/query/limit", "minimum", id="limit 0"),
    pytest.param({"limit": "1001"}, "/query/limit", "maximum", id="limit over 1000"),
    pytest.param({"limit": "ten"}, "/query/limit", "type", id="limit not a number"),
    pytest.param({"after": "zz"}, "/query/after", "format", id="after not a cursor"),
    pytest.param({"error": ""}, "/query/error", "min_length", id="empty error text"),
    pytest.param({"colour": "red"}, "/query/colour", "unknown_field", id="unknown parameter"),
]


@pytest.mark.parametrize(("params", "field", "rule"), BAD_LISTINGS)
async def test_a_bad_listing_query_is_refused_naming_the_parameter(
    client: Client, params: dict[str, str], field: str, rule: str
) -> None:
    response = await client.get(BASE, params=params)
    error = await error_of(response)
    assert (response.status, error.code, error.field, error.rule) == (
        400,
        "invalid_request",
        field,
        rule,
    )
    assert field.rsplit("/", 1)[-1] in error.message


async def test_a_query_parameter_given_twice_is_refused(client: Client) -> None:
    response = await client.get(BASE + "?limit=1&limit=2")
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, "/query/limit", "unique")


BAD_SELECTIONS = [
    pytest.param(b"{}", ("/event_ids", "required"), id="neither ids nor all"),
    pytest.param(b'{"all": false}', ("/event_ids", "required"), id="all false"),
    pytest.param(b'{"event_ids": ["x"], "all": true}', ("/all", "exclusive"), id="ids and all"),
    pytest.param(
        b'{"event_ids": ["x"], "since": "2030-01-01T00:00:00Z"}',
        ("/since", "exclusive"),
        id="ids and a filter",
    ),
    pytest.param(b'{"event_ids": []}', ("/event_ids", "min_length"), id="no ids"),
    pytest.param(b'{"all": true, "since": "soon"}', ("/since", "format"), id="since not RFC 3339"),
    pytest.param(
        b'{"all": true, "until": "2030-01-01T00:00:00"}', ("/until", "format"), id="until no zone"
    ),
    pytest.param(b'{"all": "yes"}', ("/all", "type"), id="all not a boolean"),
    pytest.param(b'{"all": true, "colour": 1}', ("/colour", "unknown_field"), id="unknown field"),
    pytest.param(b'{"all": tru', (None, "json"), id="malformed JSON"),
    pytest.param(b'{"event_ids": ["ffffffff"]}', ("/event_ids/0", "exists"), id="unknown event"),
]


@pytest.mark.parametrize(("body", "expected"), BAD_SELECTIONS)
@pytest.mark.parametrize("verb", ["redrive", "purge"])
async def test_a_bad_selection_is_refused_naming_the_field_and_rule_and_moves_nothing(
    rig: Rig, client: Client, verb: str, body: bytes, expected: tuple[str | None, str]
) -> None:
    # Given a dead letter
    await rig.kill("boom")

    # When a redrive or a purge is posted with a bad selection
    response = await client.post(
        f"{BASE}:{verb}", data=body, headers={"Content-Type": "application/json"}
    )

    # Then it is refused naming the field and the rule, and nothing moved
    error = await error_of(response)
    assert (response.status, (error.field, error.rule)) == (400, expected)
    assert await rig.node.store.count_rows(SUB) == {"dead": 1}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/v1/subscriptions/nope/dead-letters", None, id="list"),
        pytest.param("GET", "/v1/subscriptions/nope/dead-letters/" + "0" * 32, None, id="show"),
        pytest.param(
            "POST", "/v1/subscriptions/nope/dead-letters:redrive", {"all": True}, id="redrive"
        ),
        pytest.param(
            "POST", "/v1/subscriptions/nope/dead-letters:purge", {"all": True}, id="purge"
        ),
    ],
)
async def test_an_unknown_subscription_is_not_found(
    client: Client, method: str, path: str, body: object
) -> None:
    response = await client.request(method, path, json=body)
    error = await error_of(response)
    assert (response.status, error.code, error.message) == (
        404,
        "not_found",
        "subscription 'nope' does not exist",
    )


async def test_an_event_that_is_not_dead_is_not_found_as_a_dead_letter(
    rig: Rig, client: Client
) -> None:
    # Given an event that succeeded, and one redriven on a paused subscription (so that it
    # waits as redriven: running, it could die again before the question)
    (ok,) = await rig.succeed({"ok": True})
    (redriven,) = await rig.kill("boom")
    assert (await client.post("/v1/subscriptions/billing/pause")).status == 200
    await count_of(await client.post(BASE + ":redrive", json={"event_ids": [redriven]}))

    # When either is asked for as a dead letter, and an unknown event
    answers = [await client.get(f"{BASE}/{e}") for e in (ok, redriven, "0" * 32)]

    # Then each is not found, saying why
    errors = [await error_of(a) for a in answers]
    assert [a.status for a in answers] == [404, 404, 404]
    assert errors[0].message == f"event {ok!r} is not a dead letter of subscription 'billing'"
    assert errors[1].message.startswith(f"event {redriven!r} is not a dead letter")
    assert errors[2].message == f"event {'0' * 32!r} does not exist"


# -- the document ---------------------------------------------------------------------------------
async def test_the_openapi_document_describes_the_listings_query_parameters(
    client: Client,
) -> None:
    # When the OpenAPI document is fetched
    document = msgspec.json.decode(await (await client.get("/openapi.json")).read())

    # Then the listing documents its path and query parameters, and the selection's schema
    assert isinstance(document, dict)
    listing = document["paths"]["/v1/subscriptions/{name}/dead-letters"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["name"]["in"] == "path"
    assert {n for n, p in params.items() if p["in"] == "query"} == {
        "since",
        "until",
        "error",
        "after",
        "limit",
    }
    assert params["since"]["schema"] == {"type": "string", "format": "date-time"}
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 100,
    }
    assert all(not p["required"] and p["description"] for n, p in params.items() if n != "name")
    redrive = document["paths"]["/v1/subscriptions/{name}/dead-letters:redrive"]["post"]
    assert redrive["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeadLetterSelection"
    }
