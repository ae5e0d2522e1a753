"""Bad input that used to get a bad answer: every refusal is a 4xx in the JSON envelope that
names the field and the rule (and says what to send instead), and stores nothing.

In process (aiohttp's TestServer on 127.0.0.1) over a node on each real store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from conveyor.api.app import build_app
from conveyor.api.routes import ROUTES
from conveyor.clock import FakeClock
from conveyor.model import Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.nesting import MAX_NESTING
from conveyor.wire.schemas import MAX_DELAY_SECONDS, ErrorBody, ErrorResponse

Client = TestClient[web.Request, web.Application]
Snapshot = tuple[dict[str, list[int]], list[tuple[int, str]]]
NOW = 1_700_000_000.0
EVENTS = "/v1/topics/orders/events"
BATCH = "/v1/topics/orders/events/batch"


@pytest.fixture
async def node(store_url: str) -> AsyncIterator[Node]:
    async with Node(NodeSettings(store=store_url), clock=FakeClock(NOW)) as started:
        await started.catalog.put_topic(Topic(name="orders", partitions=2))
        yield started


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(node))) as opened:
        yield opened


async def stored(node: Node) -> Snapshot:
    ends = {t.name: await node.store.log_ends(t) for t in node.catalog.topics()}
    return ends, await node.store.due_timers(2**62, 1000)


async def refusal(response: ClientResponse) -> tuple[int, ErrorBody]:
    assert response.content_type == "application/json"
    return response.status, msgspec.json.decode(await response.read(), type=ErrorResponse).error


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# -- nesting ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [EVENTS, BATCH])
async def test_a_body_nested_100000_levels_deep_is_refused_with_400_in_the_envelope(
    node: Node, client: Client, path: str
) -> None:
    # Given a body nested 100,000 levels deep (once a RecursionError and a plain-text 500)
    before = await stored(node)
    body = b'{"payload": ' + nested(100_000) + b"}"
    if path == BATCH:
        body = b'{"events": [' + body + b"]}"

    # When it is published
    status, error = await refusal(await client.post(path, data=body))

    # Then it is a 400 naming the rule, and nothing is stored
    assert (status, error.rule) == (400, "max_depth")
    assert str(MAX_NESTING) in error.message
    assert await stored(node) == before


async def test_a_payload_nests_at_most_the_documented_limit(node: Node, client: Client) -> None:
    # Given a payload at the limit and one a level deeper, in a batch
    before = await stored(node)
    at_limit = b'{"payload": ' + nested(MAX_NESTING) + b"}"
    over = b'{"payload": ' + nested(MAX_NESTING + 1) + b"}"

    # When the batch holding both is published, then the one at the limit alone
    batch = await client.post(BATCH, data=b'{"events": [' + at_limit + b", " + over + b"]}")
    status, error = await refusal(batch)
    accepted = await client.post(EVENTS, data=at_limit)

    # Then the deeper one is named by its place and the rule, and the batch stores nothing
    assert (status, error.field, error.rule, error.index) == (
        400,
        "/events/1/payload",
        "max_depth",
        1,
    )
    assert accepted.status == 201
    assert (
        sum(sum(ends) for ends in (await stored(node))[0].values())
        == sum(sum(ends) for ends in before[0].values()) + 1
    )


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 100_000])
async def test_any_other_body_nested_too_deep_is_refused_with_400(
    node: Node, client: Client, levels: int
) -> None:
    # Given a topic definition whose schema nests too deep
    schema = b'{"a": ' * levels + b"1" + b"}" * levels

    # When it is created
    response = await client.post("/v1/topics", data=b'{"name": "deep", "schema": ' + schema + b"}")

    # Then it is refused with the rule, and no topic exists
    status, error = await refusal(response)
    assert (status, error.rule) == (400, "max_depth")
    assert node.catalog.find_topic("deep") is None


# -- field pointers ----------------------------------------------------------------------------
async def test_a_non_string_attribute_value_is_named_by_its_key(node: Node, client: Client) -> None:
    # Given events whose attribute "region" (and "a/b~", which a pointer escapes) is not text
    before = await stored(node)
    single = {"payload": 1, "attributes": {"zone": "a", "region": 5}}
    batch = {"events": [{"payload": 1}, {"payload": 2, "attributes": {"ok": "x", "a/b~": None}}]}

    # When they are published
    one = await refusal(await client.post(EVENTS, json=single))
    many = await refusal(await client.post(BATCH, json=batch))

    # Then each error points at the attribute itself
    assert (one[0], one[1].field, one[1].rule) == (400, "/attributes/region", "type")
    assert (many[0], many[1].field, many[1].index) == (400, "/events/1/attributes/a~1b~0", 1)
    assert await stored(node) == before


# -- one horizon for delay and deliver_at --------------------------------------------------------
async def test_deliver_at_beyond_the_horizon_of_delay_is_refused(
    node: Node, client: Client
) -> None:
    # Given times just inside and just beyond the horizon (delay's maximum) from now
    now = datetime.fromtimestamp(NOW, tz=UTC)
    inside = (now + timedelta(seconds=MAX_DELAY_SECONDS - 1)).isoformat()
    beyond = (now + timedelta(seconds=MAX_DELAY_SECONDS + 1)).isoformat()
    before = await stored(node)

    # When events are published for year 9999, just beyond, and just inside
    far = await refusal(
        await client.post(EVENTS, json={"payload": 1, "deliver_at": "9999-12-31T00:00:00Z"})
    )
    just = await refusal(await client.post(EVENTS, json={"payload": 1, "deliver_at": beyond}))
    batch = await refusal(
        await client.post(BATCH, json={"events": [{"payload": 1, "deliver_at": beyond}]})
    )
    assert await stored(node) == before
    ok = await client.post(EVENTS, json={"payload": 1, "deliver_at": inside})

    # Then those beyond are refused naming deliver_at and the rule delay breaks there too
    assert (far[0], far[1].field, far[1].rule) == (400, "/deliver_at", "maximum")
    assert (just[0], just[1].field, just[1].rule) == (400, "/deliver_at", "maximum")
    assert (batch[1].field, batch[1].index) == ("/events/0/deliver_at", 0)
    delay = await refusal(await client.post(EVENTS, json={"payload": 1, "delay": 1e12}))
    assert (delay[1].field, delay[1].rule) == ("/delay", "maximum")
    assert ok.status == 201


# -- messages that say what to do -----------------------------------------------------------------
async def test_a_single_publish_reusing_a_key_speaks_of_the_event_not_a_batch(
    client: Client,
) -> None:
    # Given an event published with an idempotency key
    await client.post(EVENTS, json={"payload": 1, "idempotency_key": "order-1"})

    # When another event is published with the same key
    status, error = await refusal(
        await client.post(EVENTS, json={"payload": 2, "idempotency_key": "order-1"})
    )

    # Then the conflict names the key, and no batch index
    assert (status, error.code) == (409, "conflict")
    assert "order-1" in error.message
    assert "events[" not in error.message


@pytest.mark.parametrize(
    ("path", "expected"), [(EVENTS, '{"payload": '), (BATCH, '{"events": [{"payload": ')]
)
async def test_an_empty_body_is_refused_saying_it_is_empty_and_what_to_send(
    node: Node, client: Client, path: str, expected: str
) -> None:
    before = await stored(node)

    # When a publish arrives with no body
    status, error = await refusal(
        await client.post(path, data=b"", headers={"Content-Type": "application/json"})
    )

    # Then the answer says the body is empty and shows the envelope
    assert (status, error.rule) == (400, "json")
    assert "empty" in error.message
    assert "truncated" not in error.message
    assert expected in error.message
    assert await stored(node) == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (EVENTS, {"amount": 1}, "/amount"),
        (EVENTS, [1, 2], None),
        (EVENTS, {"key": "k"}, "/payload"),
        (BATCH, {"events": [{"amount": 1}]}, "/events/0/amount"),
    ],
)
async def test_a_bare_payload_without_the_envelope_gets_a_hint(
    client: Client, path: str, body: object, field: str | None
) -> None:
    # When the event itself is posted, not inside {"payload": …}
    status, error = await refusal(await client.post(path, json=body))

    # Then the error still names the field, and the message shows the envelope
    assert (status, error.field) == (400, field)
    assert "wrap it so" in error.message
    assert '{"payload": <the event>}' in error.message


async def test_a_wrong_field_inside_the_envelope_gets_no_envelope_hint(client: Client) -> None:
    # When an event's key is a number (the envelope is right, a field of it is wrong)
    status, error = await refusal(await client.post(EVENTS, json={"payload": 1, "key": 5}))

    # Then the error is about the key only
    assert (status, error.field, error.rule) == (400, "/key", "type")
    assert "envelope" not in error.message


# -- 405 ----------------------------------------------------------------------------------------
def _methods_by_path() -> dict[str, set[str]]:
    methods: dict[str, set[str]] = {"/openapi.json": {"GET"}}
    for route in ROUTES:
        methods.setdefault(route.path, set()).add(route.method)
    return methods


@pytest.mark.parametrize(("path", "methods"), sorted(_methods_by_path().items()))
async def test_a_method_a_route_lacks_gets_405_with_an_allow_header(
    client: Client, path: str, methods: set[str]
) -> None:
    # Given a path and a method it does not have
    url = path.replace("{", "x").replace("}", "")
    other = next(m for m in ("PATCH", "DELETE", "PUT", "POST") if m not in methods)

    # When that method is asked for
    response = await client.request(other, url)

    # Then it is a 405 in the envelope whose Allow header lists the path's methods
    status, error = await refusal(response)
    assert (status, error.code) == (405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) == methods
