"""Every number the API accepts is bounded: past its bound it gets a 400 naming the field and
the rule, nothing is stored, and the OpenAPI document states the bound.

(A topic created with a retention of 10^16 s used to answer 201; from then on every
housekeeping pass failed and no topic's retention was applied.)
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator, Mapping

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conveyor.api.app import build_app
from conveyor.api.openapi import openapi_document
from conveyor.clock import FakeClock
from conveyor.model import Subscription, Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.schemas import ErrorResponse

Client = TestClient[web.Request, web.Application]
HUGE = 10**16
ORDERS = Topic(name="orders", partitions=1)


@pytest.fixture
async def node(store_url: str) -> AsyncIterator[Node]:
    async with Node(NodeSettings(store=store_url), clock=FakeClock()) as started:
        await started.catalog.put_topic(ORDERS)
        await started.catalog.put_subscription(
            Subscription(name="billing", topic="orders", lambda_name="l")
        )
        yield started


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(node))) as opened:
        yield opened


def _cursor(part: int, off: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([part, off])).decode().rstrip("=")


SUB = {"name": "s2", "topic": "orders", "lambda": "l"}
OVER_BOUND = [
    pytest.param(
        "POST", "/v1/topics", {"name": "t", "retention_seconds": HUGE}, {},
        ("/retention_seconds", "maximum"), id="retention",
    ),
    pytest.param(
        "PUT", "/v1/topics/t", {"name": "t", "retention_seconds": 10**30}, {},
        ("/retention_seconds", "maximum"), id="retention past 64 bits",
    ),
    pytest.param(
        "POST", "/v1/topics",
        {"name": "t", "schema_settings": {"subject": "s", "first_version": HUGE}}, {},
        ("/schema_settings/first_version", "maximum"), id="first version",
    ),
    pytest.param(
        "POST", "/v1/subscriptions", {**SUB, "control": {"purged_before_ms": HUGE * 1000}}, {},
        ("/control/purged_before_ms", "maximum"), id="purge mark",
    ),
    pytest.param(
        "POST", "/v1/subscriptions", {**SUB, "format": {"schema_version": HUGE}}, {},
        ("/format/schema_version", "maximum"), id="delivery schema version",
    ),
    pytest.param(
        "POST", "/v1/topics/orders/events", {"payload": 1, "schema_version": HUGE}, {},
        ("/schema_version", "maximum"), id="publish schema version",
    ),
    pytest.param(
        "POST", "/v1/topics/orders/events", b"\x00", {"Content-Type": "application/avro",
        "Conveyor-Schema-Version": str(HUGE)}, ("/conveyor-schema-version", "type"),
        id="schema version header",
    ),
    pytest.param(
        "GET", f"/v1/schemas/{HUGE}", None, {}, ("/id", "maximum"), id="schema id in the path",
    ),
    pytest.param(
        "GET", f"/v1/subjects/s/versions/{HUGE}", None, {}, ("/version", "maximum"),
        id="version in the path",
    ),
    pytest.param(
        "GET", f"/v1/subscriptions/billing/dead-letters?after={_cursor(2**64, 0)}", None, {},
        ("/query/after", "format"), id="dead-letter page cursor",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "headers", "expected"), OVER_BOUND)
async def test_a_number_past_its_bound_is_refused_naming_the_field_and_the_rule(  # noqa: PLR0917 - one per parameter
    client: Client,
    node: Node,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str],
    expected: tuple[str, str],
) -> None:
    # Given a node with one topic and one subscription
    before = ([t.name for t in node.catalog.topics()], await node.store.log_ends(ORDERS))

    # When a request carries a number past its bound
    data = body if isinstance(body, bytes) or body is None else msgspec.json.encode(body)
    response = await client.request(method, path, data=data, headers=headers)

    # Then it is refused with a 400 that names the field and the rule, and nothing is stored
    assert response.status == 400, await response.text()
    error = msgspec.json.decode(await response.read(), type=ErrorResponse).error
    assert (error.field, error.rule) == expected
    assert [s.name for s in node.catalog.subscriptions()] == ["billing"]
    assert ([t.name for t in node.catalog.topics()], await node.store.log_ends(ORDERS)) == before


def _numbers(schema: object, components: Mapping[str, object], path: str) -> Iterator[str]:
    """The place of every integer or number in ``schema`` that has no upper bound."""
    if isinstance(schema, list):
        for item in schema:
            yield from _numbers(item, components, path)
        return
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        yield from _numbers(components[name], components, f"{name}")
        return
    if schema.get("type") in ("integer", "number") and not (
        "maximum" in schema or "exclusiveMaximum" in schema
    ):
        yield path
    for key, value in schema.items():
        if key == "properties":
            for name, prop in value.items():
                yield from _numbers(prop, components, f"{path}.{name}")
        elif key in ("anyOf", "oneOf", "allOf", "items", "additionalProperties"):
            yield from _numbers(value, components, path)


def test_the_openapi_document_bounds_every_number_a_request_carries() -> None:
    # Given the OpenAPI document
    # (decoded from its JSON, as a client reads it: the nested values are typed as Any)
    document = msgspec.json.decode(msgspec.json.encode(openapi_document()))
    components = document["components"]["schemas"]

    # When every request body and query parameter is searched for numbers
    unbounded: list[str] = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            content = op.get("requestBody", {}).get("content", {})
            for media in content.values():
                unbounded += [f"{where}: {p}" for p in _numbers(media["schema"], components, "")]
            for param in op.get("parameters", []):
                found = _numbers(param["schema"], components, param["name"])
                unbounded += [f"{where}: {p}" for p in found]

    # Then each has an upper bound
    assert unbounded == []
