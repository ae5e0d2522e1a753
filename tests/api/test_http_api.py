"""The HTTP API in process (aiohttp's TestServer on 127.0.0.1) over a node on each real store.

Every refused request must name the field and the rule it broke, with the documented status,
and store nothing: each such test compares the logs and the timer store before and after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from conveyor.api.app import build_app
from conveyor.api.openapi import documented_statuses
from conveyor.api.routes import ROUTES
from conveyor.clock import FakeClock
from conveyor.model import Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.schemas import (
    BatchPublishResult,
    ErrorBody,
    ErrorResponse,
    PublishResult,
    SubscriptionInfo,
)

MAX_REQUEST_BYTES = 64 * 1024
SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}},
    "required": ["amount"],
}
ORDERS = Topic(name="orders", partitions=2, schema=SCHEMA, max_payload_bytes=64)

Client = TestClient[web.Request, web.Application]
Snapshot = tuple[dict[str, list[int]], list[tuple[int, str]]]


@pytest.fixture
async def node(store_url: str) -> AsyncIterator[Node]:
    settings = NodeSettings(store=store_url, max_request_bytes=MAX_REQUEST_BYTES)
    async with Node(settings, clock=FakeClock()) as started:
        await started.catalog.put_topic(ORDERS)
        yield started


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(node))) as opened:
        yield opened


async def stored(node: Node) -> Snapshot:
    """Every topic's log ends and every timer: what a refused request must not change."""
    ends = {t.name: await node.store.log_ends(t) for t in node.catalog.topics()}
    return ends, await node.store.due_timers(2**62, 1000)


async def error_of(response: ClientResponse) -> ErrorBody:
    return msgspec.json.decode(await response.read(), type=ErrorResponse).error


def json(value: object) -> bytes:
    return msgspec.json.encode(value)


# -- refused publishes ----------------------------------------------------------------------------
BAD_PUBLISHES = [
    pytest.param(b'{"payload": ', (400, None, "json"), id="malformed JSON"),
    pytest.param(
        json({"payload": {"amount": "x"}}), (422, "/payload/amount", "type"), id="wrong type"
    ),
    pytest.param(json({"payload": {}}), (422, "/payload/amount", "required"), id="missing field"),
    pytest.param(
        json({"payload": {"amount": 1, "pad": "x" * 100}}),
        (413, "/payload", "max_size"),
        id="payload over the topic's limit",
    ),
    pytest.param(
        json({"payload": {"amount": 1}, "colour": "red"}),
        (400, "/colour", "unknown_field"),
        id="unknown field",
    ),
    pytest.param(
        json({"payload": {"amount": 1}, "delay": 5, "deliver_at": "2030-01-01T00:00:00Z"}),
        (400, "/delay", "exclusive"),
        id="delay and deliver_at",
    ),
    pytest.param(
        json({"payload": {"amount": 1}, "deliver_at": "2030-01-01T00:00:00"}),
        (400, "/deliver_at", "format"),
        id="deliver_at without a time zone",
    ),
    pytest.param(
        json({"payload": {"amount": 1}, "delay": -1}),
        (400, "/delay", "minimum"),
        id="negative delay",
    ),
]


@pytest.mark.parametrize(("body", "expected"), BAD_PUBLISHES)
async def test_a_bad_publish_is_refused_naming_the_field_and_rule_and_stores_nothing(
    node: Node, client: Client, body: bytes, expected: tuple[int, str | None, str]
) -> None:
    # Given the topic's logs and timers as they are
    before = await stored(node)

    # When a bad event is published
    response = await client.post(
        "/v1/topics/orders/events", data=body, headers={"Content-Type": "application/json"}
    )

    # Then it is refused with the documented status, field and rule, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == expected
    assert await stored(node) == before


async def test_a_body_over_the_request_limit_is_refused_with_413(
    node: Node, client: Client
) -> None:
    # Given the node accepts request bodies of at most 64 KiB
    before = await stored(node)
    body = json({"payload": {"amount": 1, "pad": "x" * MAX_REQUEST_BYTES}})

    # When a larger body is posted
    response = await client.post("/v1/topics/orders/events", data=body)

    # Then it is refused as too large, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.rule) == (413, "max_size")
    assert await stored(node) == before


async def test_a_publish_to_an_unknown_topic_is_refused_with_404(
    node: Node, client: Client
) -> None:
    # Given no topic named "nope"
    before = await stored(node)

    # When an event is published to it
    response = await client.post("/v1/topics/nope/events", json={"payload": {"amount": 1}})

    # Then it is refused as not found, and nothing is stored
    assert response.status == 404
    assert (await error_of(response)).code == "not_found"
    assert await stored(node) == before


async def test_a_batch_with_one_bad_event_is_refused_whole_naming_it_by_index(
    node: Node, client: Client
) -> None:
    # Given a batch whose middle event is off the schema
    before = await stored(node)
    events = [{"payload": {"amount": 1}}, {"payload": {"amount": "x"}}, {"payload": {"amount": 2}}]

    # When it is published
    response = await client.post("/v1/topics/orders/events/batch", json={"events": events})

    # Then it is refused, listing the bad event by index, and none of the three is stored
    error = await error_of(response)
    assert response.status == 422
    assert error.index == 1
    assert [(e.index, e.rule) for e in error.errors] == [(1, "type")]
    assert await stored(node) == before


async def test_every_field_a_refused_batch_names_points_into_the_request_body(
    node: Node, client: Client
) -> None:
    # Given a batch whose second event is too large and whose third is off the schema
    events = [
        {"payload": {"amount": 1}},
        {"payload": {"amount": 1, "pad": "x" * 100}},
        {"payload": {"amount": "x"}},
    ]

    # When it is published
    response = await client.post("/v1/topics/orders/events/batch", json={"events": events})

    # Then each problem's field is a JSON pointer into {"events": [...]}, like the first
    error = await error_of(response)
    assert response.status == 413
    assert [(e.index, e.field, e.rule) for e in error.errors] == [
        (1, "/events/1/payload", "max_size"),
        (2, "/events/2/payload/amount", "type"),
    ]


async def test_a_batch_event_with_an_unknown_field_is_refused_naming_its_place(
    node: Node, client: Client
) -> None:
    # Given a batch whose second event has a field the API does not know
    before = await stored(node)
    events = [{"payload": {"amount": 1}}, {"payload": {"amount": 1}, "colour": "red"}]

    # When it is published
    response = await client.post("/v1/topics/orders/events/batch", json={"events": events})

    # Then it is refused naming the field inside that event, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, "/events/1/colour", "unknown_field")
    assert await stored(node) == before


# -- idempotency ----------------------------------------------------------------------------------
async def test_an_idempotent_replay_returns_the_first_result_with_200(
    node: Node, client: Client
) -> None:
    # Given an event published with an Idempotency-Key
    headers = {"Idempotency-Key": "order-1"}
    first = await client.post(
        "/v1/topics/orders/events", json={"payload": {"amount": 1}}, headers=headers
    )
    assert first.status == 201
    after_first = await stored(node)

    # When the same request is sent again
    replay = await client.post(
        "/v1/topics/orders/events", json={"payload": {"amount": 1}}, headers=headers
    )

    # Then the answer is 200, a duplicate with the first id, and nothing more is stored
    original = msgspec.json.decode(await first.read(), type=PublishResult)
    again = msgspec.json.decode(await replay.read(), type=PublishResult)
    assert replay.status == 200
    assert again.duplicate
    assert (again.id, again.partition, again.offset) == (
        original.id,
        original.partition,
        original.offset,
    )
    assert await stored(node) == after_first


async def test_an_idempotency_key_reused_for_another_event_is_refused_with_409(
    node: Node, client: Client
) -> None:
    # Given an event published with an Idempotency-Key
    headers = {"Idempotency-Key": "order-1"}
    await client.post("/v1/topics/orders/events", json={"payload": {"amount": 1}}, headers=headers)
    before = await stored(node)

    # When another event is published under the same key
    response = await client.post(
        "/v1/topics/orders/events", json={"payload": {"amount": 2}}, headers=headers
    )

    # Then it is refused as a conflict, and nothing is stored
    assert response.status == 409
    assert (await error_of(response)).code == "conflict"
    assert await stored(node) == before


async def test_a_header_key_that_differs_from_the_bodys_is_refused(
    node: Node, client: Client
) -> None:
    # Given the store as it is
    before = await stored(node)

    # When the header and the body name different idempotency keys
    response = await client.post(
        "/v1/topics/orders/events",
        json={"payload": {"amount": 1}, "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    )

    # Then it is refused naming the body's field, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, "/idempotency_key", "match_header")
    assert await stored(node) == before


async def test_a_batch_is_acknowledged_in_request_order(node: Node, client: Client) -> None:
    # Given two events for partition-spreading keys
    events = [{"payload": {"amount": n}, "key": f"k{n}"} for n in range(2)]

    # When they are published as a batch
    response = await client.post("/v1/topics/orders/events/batch", json={"events": events})

    # Then both are acknowledged, in order, and found in the log where the answer says
    assert response.status == 201
    results = msgspec.json.decode(await response.read(), type=BatchPublishResult).results
    for n, result in enumerate(results):
        assert result.partition is not None
        assert result.offset is not None
        (logged,) = await node.store.read_log(ORDERS, result.partition, result.offset, 1)
        assert (logged.id, logged.key) == (result.id, f"k{n}")


# -- topics ---------------------------------------------------------------------------------------
async def test_an_invalid_topic_name_is_refused_naming_the_pattern(
    node: Node, client: Client
) -> None:
    # When a topic is created with a space in its name
    response = await client.post("/v1/topics", json={"name": "bad name!"})

    # Then it is refused by the name's pattern, and no topic is created
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, "/name", "pattern")
    assert [t.name for t in await node.store.list_topics()] == ["orders"]


async def test_an_invalid_json_schema_is_refused_naming_its_place(
    node: Node, client: Client
) -> None:
    # When a topic is created with a schema that is not a JSON Schema
    topic = {"name": "refunds", "schema": {"properties": {"a": {"minimum": "x"}}}}
    response = await client.post("/v1/topics", json=topic)

    # Then it is refused pointing inside the schema, and no topic is created
    error = await error_of(response)
    assert response.status == 400
    assert error.field == "/schema/properties/a/minimum"
    assert error.rule == "json_schema"
    assert [t.name for t in await node.store.list_topics()] == ["orders"]
    assert (await client.get("/v1/topics/refunds")).status == 404


async def test_creating_a_topic_again_is_200_when_identical_and_409_when_not(
    client: Client,
) -> None:
    # Given a topic created by POST
    topic = {"name": "refunds", "partitions": 2}
    created = await client.post("/v1/topics", json=topic)

    # When it is posted again identical, then with another retention
    identical = await client.post("/v1/topics", json=topic)
    different = await client.post("/v1/topics", json={**topic, "retention_seconds": 3600})

    # Then the answers are 201, 200 and 409, and the topic kept its definition
    assert (created.status, identical.status, different.status) == (201, 200, 409)
    current = msgspec.json.decode(await (await client.get("/v1/topics/refunds")).read(), type=Topic)
    assert current == Topic(name="refunds", partitions=2)


# -- subscriptions --------------------------------------------------------------------------------
async def test_putting_a_subscription_creates_it_then_updates_it(client: Client) -> None:
    # Given no subscription named "billing"
    spec = {"name": "billing", "topic": "orders", "lambda": "worker"}

    # When it is put, then put again ordered
    created = await client.put("/v1/subscriptions/billing", json=spec)
    updated = await client.put("/v1/subscriptions/billing", json={**spec, "ordered": True})

    # Then the first creates it (201), the second updates it (200)
    assert (created.status, updated.status) == (201, 200)
    info = msgspec.json.decode(
        await (await client.get("/v1/subscriptions/billing")).read(), type=SubscriptionInfo
    )
    assert info.subscription.ordered


async def test_putting_a_subscription_under_another_name_is_refused(client: Client) -> None:
    # When the body's name differs from the path's
    spec = {"name": "audit", "topic": "orders", "lambda": "worker"}
    response = await client.put("/v1/subscriptions/billing", json=spec)

    # Then it is refused naming the rule, and neither exists
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, "/name", "match_path")
    assert (await client.get("/v1/subscriptions/billing")).status == 404
    assert (await client.get("/v1/subscriptions/audit")).status == 404


# -- the document and the metrics -----------------------------------------------------------------
async def test_the_openapi_document_lists_every_route_and_its_error_statuses(
    client: Client,
) -> None:
    # When the OpenAPI document is fetched
    response = await client.get("/openapi.json")
    document = msgspec.json.decode(await response.read())

    # Then every route is in it, with its success status and every error it documents
    assert response.status == 200
    assert isinstance(document, dict)
    paths = document["paths"]
    for route in ROUTES:
        operation = paths[route.path][route.method.lower()]
        expected = {str(s) for s in documented_statuses(route)}
        assert {str(route.status), *(str(s) for s in route.errors)} <= expected
        assert set(operation["responses"]) == expected, route.path
        for status in expected - {str(route.status), *(str(s) for s in route.also)}:
            error = operation["responses"][str(status)]
            assert error["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
    # And nothing else but the document itself
    listed = {(path, method.upper()) for path, ops in paths.items() for method in ops}
    assert listed == {(r.path, r.method) for r in ROUTES} | {("/openapi.json", "GET")}


async def test_metrics_are_prometheus_text(client: Client) -> None:
    # Given one event published
    await client.post("/v1/topics/orders/events", json={"payload": {"amount": 1}})

    # When the metrics are fetched
    response = await client.get("/metrics")
    text = await response.text()

    # Then they are Prometheus text, counting that event
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE conveyor_published_events_total counter" in text
    assert 'conveyor_published_events_total{topic="orders"} 1.0' in text
