"""The OpenAPI document is a valid OpenAPI 3.1 document, and it tells the truth: every status
an operation answers is one the document gives it.

The second is checked by a table over every operation: each is called with a valid request
twice (idempotent creates and replacements answer 200 the second time), with each path
parameter unknown, holding a control character and overlong, with bad bodies (empty, not
JSON, the wrong type, an unknown field, too deep, over the size limit) and bad query values,
and with a header over the HTTP parser's limit. Any status outside the operation's
documented responses fails the test, naming the operation and the request. A new route
needs a valid example in ``EXAMPLES`` (a test says so).

In process, the API's server on 127.0.0.1 over a node on a real SQLite store; the store does
not change what an operation may answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from openapi_spec_validator import validate
from yarl import URL

from conveyor.api.app import Server
from conveyor.api.openapi import openapi_document, operation_id
from conveyor.api.routes import ROUTES, Route
from conveyor.clock import FakeClock
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.schemas import ErrorResponse

MAX_REQUEST_BYTES = 16 * 1024
DOCUMENT: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(openapi_document()))

# A valid body for every operation that takes one, by (method, path). The world below has a
# topic "orders", a subscription "s1" of lambda "billing" with endpoint "e1", a subject "subj"
# with one version, and one published event.
EXAMPLES: dict[tuple[str, str], object] = {
    ("POST", "/v1/topics"): {"name": "orders2", "partitions": 1},
    ("PUT", "/v1/topics/{name}"): {"name": "orders", "partitions": 1},
    ("POST", "/v1/topics/{topic}/events"): {"payload": {"a": 1}, "idempotency_key": "k1"},
    ("POST", "/v1/topics/{topic}/events/batch"): {
        "events": [{"payload": {"a": 1}, "idempotency_key": "k2"}]
    },
    ("POST", "/v1/subscriptions"): {"name": "s2", "topic": "orders", "lambda": "billing"},
    ("PUT", "/v1/subscriptions/{name}"): {"name": "s1", "topic": "orders", "lambda": "billing"},
    ("PUT", "/v1/lambdas/{lambda}/endpoints/{id}"): {
        "url": "http://127.0.0.1:9/conveyor/push",
        "version": "v1",
    },
    ("PUT", "/v1/subscriptions/{name}/rate-limit"): {"per_second": 10},
    ("POST", "/v1/subjects/{subject}/versions"): {
        "schema": {"type": "object", "description": "v2"}
    },
    ("POST", "/v1/subjects/{subject}/check"): {"schema": {"type": "object"}},
    ("PUT", "/v1/config/compatibility"): {"compatibility": "BACKWARD"},
    ("PUT", "/v1/subjects/{subject}/compatibility"): {"compatibility": "NONE"},
    ("POST", "/v1/subscriptions/{name}/dead-letters:redrive"): {"all": True},
    ("POST", "/v1/subscriptions/{name}/dead-letters:purge"): {"all": True},
    ("PUT", "/v1/lambdas/{lambda}/release-policy"): {},
}
# Operations whose valid call cannot succeed in the world below (no dead letter; v1 is the
# stable version, with nothing before it to roll back to).
NO_SUCCESS_HERE = {
    ("GET", "/v1/subscriptions/{name}/dead-letters/{event_id}"),
    ("POST", "/v1/lambdas/{lambda}/releases/{version}/rollback"),
}
BAD_VALUES = ("nope", "a%01b", "x" * 300)
BAD_BODIES = (
    b"",
    b"{",
    b"[]",
    b"null",
    b'{"zzz": 1}',
    b"[" * 100_000 + b"]" * 100_000,
    b"[" * 129 + b"]" * 129,
    b'"' + b"x" * MAX_REQUEST_BYTES + b'"',
)


@dataclass
class World:
    client: aiohttp.ClientSession
    event_id: str
    schema_id: int


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The API as ``conveyor serve`` runs it (its connection handling included), on a free
    port, with a few things to name."""
    settings = NodeSettings(
        store=str(tmp_path / "c.db"), port=0, max_request_bytes=MAX_REQUEST_BYTES
    )
    server = Server(settings, Node(settings, clock=FakeClock()))
    await server.start()
    try:
        async with aiohttp.ClientSession(base_url=server.url) as client:
            await client.post("/v1/topics", json={"name": "orders", "partitions": 1})
            sub = EXAMPLES["PUT", "/v1/subscriptions/{name}"]
            await client.post("/v1/subscriptions", json=sub)
            endpoint = EXAMPLES["PUT", "/v1/lambdas/{lambda}/endpoints/{id}"]
            await client.put("/v1/lambdas/billing/endpoints/e1", json=endpoint)
            schema = {"schema": {"type": "object"}}
            registered = await client.post("/v1/subjects/subj/versions", json=schema)
            published = await client.post("/v1/topics/orders/events", json={"payload": 1})
            event_id = (await published.json())["id"]
            yield World(client, event_id, (await registered.json())["id"])
    finally:
        await server.aclose()


def valid_value(route: Route, param: str, world: World) -> str:
    """A path parameter's value that names something in the world."""
    by_path = {
        ("id", "/v1/events/{id}"): world.event_id,
        ("id", "/v1/schemas/{id}"): str(world.schema_id),
        ("id", "/v1/lambdas/{lambda}/endpoints/{id}"): "e1",
        ("version", "/v1/subjects/{subject}/versions/{version}"): "1",
    }
    by_name = {
        "name": "s1" if route.path.startswith("/v1/subscriptions") else "orders",
        "topic": "orders",
        "lambda": "billing",
        "subject": "subj",
        "version": "v1",
        "event_id": world.event_id,
    }
    return by_path.get((param, route.path), by_name.get(param, "x"))


def url_of(route: Route, values: Mapping[str, str], query: str = "") -> URL:
    path = route.path
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return URL(path + query, encoded=True)


@dataclass
class Call:
    what: str
    url: URL
    body: bytes | None
    headers: dict[str, str]


def calls(route: Route, world: World) -> list[Call]:
    """The requests one operation is checked with."""
    params = [p.strip("{}") for p in route.path.split("/") if p.startswith("{")]
    values = {p: valid_value(route, p, world) for p in params}
    example = EXAMPLES.get((route.method, route.path))
    body = None if route.body is None else json.dumps(example).encode()
    good = Call("valid", url_of(route, values), body, {})
    out = [good, Call("valid, again", good.url, body, {})]
    for param in params:
        for bad in BAD_VALUES:
            out.append(Call(f"{param}={bad[:8]}", url_of(route, {**values, param: bad}), body, {}))
    if route.body is not None:
        out += [Call(f"body {b[:8]!r}", good.url, b, {}) for b in BAD_BODIES]
        out.append(Call("text/csv", good.url, body, {"Content-Type": "text/csv"}))
    if route.query is not None:
        for field in msgspec.structs.fields(route.query):
            out.append(
                Call(f"?{field.name}", url_of(route, values, f"?{field.name}=%01"), body, {})
            )
    out.append(Call("header too long", good.url, body, {"X-Big": "a" * 9000}))
    return out


def documented(route: Route) -> set[int]:
    operation = DOCUMENT["paths"][route.path][route.method.lower()]
    return {int(status) for status in operation["responses"]}


def test_the_document_is_a_valid_openapi_document() -> None:
    # When the served document is checked against the OpenAPI 3.1 specification
    # Then it is valid (no operationId twice, every reference resolves, every schema holds)
    validate(DOCUMENT)


def test_every_operation_has_a_unique_id_and_a_valid_example() -> None:
    ids = [operation_id(route) for route in ROUTES]
    assert len(ids) == len(set(ids))
    missing = [
        f"{r.method} {r.path}"
        for r in ROUTES
        if r.body is not None and (r.method, r.path) not in EXAMPLES
    ]
    assert missing == []


def test_bounds_of_the_request_types_are_in_the_document() -> None:
    # msgspec's Meta constraints travel into the document (bodies and query parameters)
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["RateLimit"]["properties"]["per_second"]["exclusiveMinimum"] == 0
    limit = next(
        p
        for p in DOCUMENT["paths"]["/v1/subscriptions/{name}/dead-letters"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert {"minimum", "maximum"} <= set(limit["schema"])


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_every_status_an_operation_answers_is_documented(world: World, route: Route) -> None:
    # Given the operation's documented statuses
    allowed = documented(route)

    # When it is called with valid and bad requests
    undocumented = []
    answers = []
    for call in calls(route, world):
        response = await world.client.request(
            route.method, call.url, data=call.body, headers=call.headers
        )
        body = await response.read()
        answers.append(response.status)
        if response.status not in allowed:
            undocumented.append(f"{call.what}: {response.status} {body[:120]!r}")
        elif response.status >= 400:
            msgspec.json.decode(body, type=ErrorResponse)  # every error is in the envelope

    # Then every answer is one the document gives (and the valid request succeeded)
    assert undocumented == [], f"{route.method} {route.path} documents {sorted(allowed)}"
    assert answers[0] < 300 or (route.method, route.path) in NO_SUCCESS_HERE
