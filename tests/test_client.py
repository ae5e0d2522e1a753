"""The HTTP client against an aiohttp.web double of Conveyor's API on 127.0.0.1.

The double runs in a thread with its own event loop, so that both the async client and the
blocking client can talk to it; it records every request and answers with canned bodies
encoded from :mod:`conveyor.wire.schemas`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import aiohttp
import msgspec
import pydantic
import pytest
from aiohttp import web

from conveyor.client import AsyncClient, Client
from conveyor.errors import (
    Conflict,
    ConveyorError,
    InvalidRequest,
    NotFound,
    RateLimited,
    SchemaViolation,
    StoreUnavailable,
)
from conveyor.model import RetryPolicy, Subscription, Topic
from conveyor.wire.schemas import (
    BatchPublishResult,
    EndpointInfo,
    ErrorBody,
    ErrorDetail,
    ErrorResponse,
    EventView,
    Health,
    LambdaInfo,
    PublishRequest,
    PublishResult,
    SubscriptionInfo,
    SubscriptionStats,
)

EVENT_ID = "0190a1b2c3d4e5f60718293a4b5c6d7e"
PENDING = PublishResult(id=EVENT_ID, state="pending", partition=1, offset=7)
ORDERS = Topic(name="orders")


@dataclasses.dataclass(frozen=True)
class Recorded:
    """One request the double received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int

    def json(self) -> object:
        return msgspec.json.decode(self.body)


@dataclasses.dataclass(frozen=True)
class Canned:
    """One answer the double gives."""

    status: int
    body: bytes
    headers: dict[str, str]
    delay: float


class FakeConveyor:
    """A double of Conveyor's HTTP API: records requests, answers what it was told to."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._answers: dict[tuple[str, str], Canned] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def answer(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: object = None,
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer ``method path`` with ``status`` and ``body`` (encoded unless bytes)."""
        content = body if isinstance(body, bytes) else msgspec.json.encode(body)
        self._answers[method, path] = Canned(status, content, headers or {}, delay)

    def only_request(self) -> Recorded:
        assert len(self.requests) == 1, self.requests
        return self.requests[0]

    async def _handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.raw_path,
                headers=dict(request.headers),
                body=await request.read(),
                client_port=peer[1] if peer else 0,
            )
        )
        canned = self._answers.get((request.method, request.raw_path))
        if canned is None:
            return web.Response(status=599, text=f"no canned answer for {request.raw_path}")
        await asyncio.sleep(canned.delay)
        if canned.status == 204:
            return web.Response(status=204, headers=canned.headers)
        return web.Response(
            status=canned.status,
            body=canned.body,
            headers=canned.headers,
            content_type="application/json",
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            cleanup = self._runner.cleanup()
            asyncio.run_coroutine_threadsafe(cleanup, self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def double() -> Iterator[FakeConveyor]:
    fake = FakeConveyor()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def client(double: FakeConveyor) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(double.url) as conveyor:
        yield conveyor


def error(code: str, message: str, **details: object) -> ErrorResponse:
    return ErrorResponse(msgspec.convert({"code": code, "message": message, **details}, ErrorBody))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- payload kinds -------------------------------------------------------------------------


class OrderStruct(msgspec.Struct):
    id: int
    placed: datetime


@dataclasses.dataclass
class OrderDataclass:
    id: int
    placed: datetime


class OrderModel(pydantic.BaseModel):
    id: int
    placed: datetime


PLACED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ORDER_JSON = {"id": 42, "placed": "2026-01-02T03:04:05Z"}


# --- health and topics ---------------------------------------------------------------------


async def test_health_returns_the_nodes_health(double: FakeConveyor, client: AsyncClient) -> None:
    # Given
    double.answer("GET", "/v1/health", 200, Health(status="ok", version="0.1.0", store="sqlite"))
    # When
    health = await client.health()
    # Then
    assert health == Health(status="ok", version="0.1.0", store="sqlite")
    assert double.only_request().headers["Accept"] == "application/json"


async def test_create_topic_posts_the_full_definition_and_returns_the_stored_topic(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    schema: dict[str, object] = {"type": "object", "required": ["id"]}
    stored = Topic(name="orders", partitions=8, schema=schema, max_payload_bytes=2048)
    double.answer("POST", "/v1/topics", 201, stored)
    # When
    topic = await client.create_topic(
        "orders", partitions=8, schema=schema, max_payload_bytes=2048, retention_seconds=3600
    )
    # Then
    assert topic == stored
    sent = double.only_request()
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json() == {
        "name": "orders",
        "partitions": 8,
        "schema": schema,
        "max_payload_bytes": 2048,
        "retention_seconds": 3600,
        "schema_settings": None,
    }


async def test_create_topic_accepts_an_identical_existing_topic_by_default(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given the server answers 200, as it does for an identical existing topic
    double.answer("POST", "/v1/topics", 200, ORDERS)
    # When
    topic = await client.create_topic("orders")
    # Then
    assert topic == ORDERS


async def test_create_topic_without_exist_ok_raises_conflict_for_an_existing_topic(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("POST", "/v1/topics", 200, ORDERS)
    # When / Then
    with pytest.raises(Conflict, match="topic 'orders' already exists"):
        await client.create_topic("orders", exist_ok=False)


async def test_create_topic_raises_conflict_when_the_topic_exists_with_another_definition(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("POST", "/v1/topics", 409, error("conflict", "topic 'orders' differs"))
    # When / Then
    with pytest.raises(Conflict, match="topic 'orders' differs"):
        await client.create_topic("orders", partitions=2)


async def test_put_get_and_list_topics_use_their_paths(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("PUT", "/v1/topics/orders", 200, ORDERS)
    double.answer("GET", "/v1/topics/orders", 200, ORDERS)
    double.answer("GET", "/v1/topics", 200, [ORDERS, Topic(name="audit")])
    # When
    put = await client.put_topic(ORDERS)
    got = await client.get_topic("orders")
    listed = await client.list_topics()
    # Then
    assert (put, got, listed) == (ORDERS, ORDERS, [ORDERS, Topic(name="audit")])
    assert [(r.method, r.path) for r in double.requests] == [
        ("PUT", "/v1/topics/orders"),
        ("GET", "/v1/topics/orders"),
        ("GET", "/v1/topics"),
    ]
    assert double.requests[0].json() == msgspec.to_builtins(ORDERS)


async def test_names_are_percent_encoded_as_one_path_segment(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("GET", "/v1/topics/a%2Fb%20c", 200, ORDERS)
    # When
    await client.get_topic("a/b c")
    # Then
    assert double.only_request().path == "/v1/topics/a%2Fb%20c"


async def test_a_name_that_a_url_would_resolve_away_is_refused(client: AsyncClient) -> None:
    # When / Then
    with pytest.raises(ValueError, match="cannot name a resource"):
        await client.get_topic("..")


async def test_a_base_url_with_a_path_prefixes_every_request(double: FakeConveyor) -> None:
    # Given
    double.answer("GET", "/conveyor/v1/topics", 200, [])
    # When
    async with AsyncClient(double.url + "/conveyor/") as conveyor:
        topics = await conveyor.list_topics()
    # Then
    assert topics == []
    assert double.only_request().path == "/conveyor/v1/topics"


# --- subscriptions -------------------------------------------------------------------------

SUB = Subscription(name="billing", topic="orders", lambda_name="bill")
SUB_INFO = SubscriptionInfo(subscription=SUB, stats=SubscriptionStats(backlog=3))


async def test_create_subscription_posts_the_lambda_under_its_wire_name(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("POST", "/v1/subscriptions", 201, SUB_INFO)
    # When
    info = await client.create_subscription(
        "billing",
        "orders",
        "bill",
        ordered=True,
        retry=RetryPolicy(max_attempts=3),
        dead_letter_topic="orders-dead",
        locality=["aws/us-east-1/us-east-1a", "aws/us-east-1"],
    )
    # Then
    assert info == SUB_INFO
    assert double.only_request().json() == {
        "name": "billing",
        "topic": "orders",
        "lambda": "bill",
        "ordered": True,
        "max_concurrency": 512,
        "min_concurrency": 1,
        "adaptive": False,
        "max_batch": 256,
        "max_batch_bytes": 4194304,
        "max_wait": 0.0,
        "push_timeout": 30.0,
        "retry": {
            "max_attempts": 3,
            "min_backoff": 1.0,
            "max_backoff": 300.0,
            "multiplier": 2.0,
            "max_retry_duration": None,
        },
        "dead_letter_topic": "orders-dead",
        "control": {"paused": False, "rate_limit": None, "purged_before_ms": None},
        "format": {"encoding": "json", "cloudevents": False, "schema_version": None},
        "filter": None,
        "locality": ["aws/us-east-1/us-east-1a", "aws/us-east-1"],
    }


async def test_put_get_list_and_delete_subscriptions_use_their_paths(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("PUT", "/v1/subscriptions/billing", 200, SUB_INFO)
    double.answer("GET", "/v1/subscriptions/billing", 200, SUB_INFO)
    double.answer("GET", "/v1/subscriptions", 200, [SUB_INFO])
    double.answer("DELETE", "/v1/subscriptions/billing", 204)
    # When
    put = await client.put_subscription(SUB)
    got = await client.get_subscription("billing")
    listed = await client.list_subscriptions()
    await client.delete_subscription("billing")
    # Then
    assert (put, got, listed) == (SUB_INFO, SUB_INFO, [SUB_INFO])
    assert double.requests[0].json() == msgspec.to_builtins(SUB)
    assert [r.method for r in double.requests] == ["PUT", "GET", "GET", "DELETE"]


# --- publish -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({"id": 42, "tags": ["a"]}, {"id": 42, "tags": ["a"]}, id="dict"),
        pytest.param(OrderStruct(id=42, placed=PLACED), ORDER_JSON, id="msgspec-struct"),
        pytest.param(OrderDataclass(id=42, placed=PLACED), ORDER_JSON, id="dataclass"),
        pytest.param(OrderModel(id=42, placed=PLACED), ORDER_JSON, id="pydantic-model"),
        pytest.param([OrderModel(id=42, placed=PLACED)], [ORDER_JSON], id="nested-pydantic"),
        pytest.param(msgspec.Raw(b'{"raw":true}'), {"raw": True}, id="raw-json"),
        pytest.param(None, None, id="null"),
    ],
)
async def test_publish_sends_each_kind_of_payload_as_json(
    double: FakeConveyor, client: AsyncClient, payload: object, expected: object
) -> None:
    # Given
    double.answer("POST", "/v1/topics/orders/events", 201, PENDING)
    # When
    result = await client.publish("orders", payload)
    # Then
    assert result == PENDING
    assert double.only_request().json() == {"payload": expected}


@pytest.mark.parametrize(
    "delay", [1.5, timedelta(seconds=1, milliseconds=500)], ids=["seconds", "timedelta"]
)
async def test_publish_sends_a_delay_in_seconds(
    double: FakeConveyor, client: AsyncClient, delay: float | timedelta
) -> None:
    # Given
    scheduled = PublishResult(id=EVENT_ID, state="scheduled", deliver_at=PLACED)
    double.answer("POST", "/v1/topics/orders/events", 201, scheduled)
    # When
    result = await client.publish("orders", {}, delay=delay)
    # Then
    assert result == scheduled
    assert double.only_request().json() == {"payload": {}, "delay": 1.5}


async def test_publish_sends_deliver_at_as_rfc3339(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("POST", "/v1/topics/orders/events", 201, PENDING)
    # When
    await client.publish("orders", {}, deliver_at=PLACED)
    # Then
    assert double.only_request().json() == {"payload": {}, "deliver_at": "2026-01-02T03:04:05Z"}


async def test_publish_sends_key_attributes_and_idempotency_key_and_reads_a_replay(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given the server answers 200 with duplicate=true for a replay
    replay = PublishResult(id=EVENT_ID, state="pending", partition=1, offset=7, duplicate=True)
    double.answer("POST", "/v1/topics/orders/events", 200, replay)
    # When
    result = await client.publish(
        "orders", {"id": 1}, key="cust-7", attributes={"trace": "t1"}, idempotency_key="k-1"
    )
    # Then
    assert result.duplicate
    assert double.only_request().json() == {
        "payload": {"id": 1},
        "key": "cust-7",
        "attributes": {"trace": "t1"},
        "idempotency_key": "k-1",
    }


@pytest.mark.parametrize(
    ("delay", "deliver_at", "message"),
    [
        pytest.param(1.0, PLACED, "not both", id="delay-and-deliver-at"),
        pytest.param(None, datetime(2026, 1, 2), "timezone-aware", id="naive-deliver-at"),
    ],
)
async def test_publish_refuses_contradictory_or_naive_times_without_sending(
    double: FakeConveyor,
    client: AsyncClient,
    delay: float | None,
    deliver_at: datetime,
    message: str,
) -> None:
    # When / Then
    with pytest.raises(ValueError, match=message):
        await client.publish("orders", {}, delay=delay, deliver_at=deliver_at)
    assert double.requests == []


async def test_publish_refuses_a_payload_that_is_not_json_encodable(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # When / Then
    with pytest.raises(TypeError, match="payload is not JSON-encodable"):
        await client.publish("orders", {"at": object()})
    assert double.requests == []


async def test_publish_batch_sends_requests_and_mappings_in_order_and_returns_results(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    second = PublishResult(id="1" * 32, state="scheduled")
    double.answer(
        "POST", "/v1/topics/orders/events/batch", 201, BatchPublishResult([PENDING, second])
    )
    # When
    results = await client.publish_batch(
        "orders",
        [
            PublishRequest(payload=msgspec.Raw(b"1"), key="a"),
            {"payload": OrderModel(id=42, placed=PLACED), "delay": timedelta(minutes=1)},
        ],
    )
    # Then
    assert results == [PENDING, second]
    assert double.only_request().json() == {
        "events": [{"payload": 1, "key": "a"}, {"payload": ORDER_JSON, "delay": 60.0}]
    }


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param({"payload": 1, "urgency": 9}, "unknown field `urgency`", id="unknown-key"),
        pytest.param({"key": "a"}, "has no 'payload'", id="no-payload"),
        pytest.param({"payload": 1, "key": 7}, r"Expected `str \| null`", id="wrong-type"),
    ],
)
async def test_publish_batch_refuses_a_malformed_mapping_naming_its_index(
    double: FakeConveyor, client: AsyncClient, event: dict[str, object], message: str
) -> None:
    # When / Then
    with pytest.raises(TypeError, match=rf"events\[1\].*{message}"):
        await client.publish_batch("orders", [{"payload": 0}, event])
    assert double.requests == []


async def test_get_event_returns_the_event_with_its_raw_payload(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    view = EventView(
        id=EVENT_ID, topic="orders", payload=msgspec.Raw(b'{"id":1}'), publish_time=PLACED
    )
    double.answer("GET", f"/v1/events/{EVENT_ID}", 200, view)
    # When
    got = await client.get_event(EVENT_ID)
    # Then
    assert (got.id, got.topic, got.publish_time) == (EVENT_ID, "orders", PLACED)
    assert msgspec.json.decode(got.payload) == {"id": 1}


# --- lambdas -------------------------------------------------------------------------------


async def test_endpoints_are_registered_deregistered_and_listed(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    info = EndpointInfo(lambda_name="bill", id="w1", url="http://10.0.0.5:9000/push")
    double.answer("PUT", "/v1/lambdas/bill/endpoints/w1", 200, info)
    double.answer("DELETE", "/v1/lambdas/bill/endpoints/w1", 204)
    double.answer("GET", "/v1/lambdas", 200, [LambdaInfo(name="bill", endpoints=[info])])
    # When
    registered = await client.register_endpoint(
        "bill",
        "w1",
        "http://10.0.0.5:9000/push",
        ttl_seconds=5.0,
        concurrency=8,
        locality="aws/eu-west-1/eu-west-1a",
        version="v2",
    )
    await client.deregister_endpoint("bill", "w1")
    lambdas = await client.list_lambdas()
    # Then
    assert registered == info
    assert lambdas == [LambdaInfo(name="bill", endpoints=[info])]
    assert double.requests[0].json() == {
        "url": "http://10.0.0.5:9000/push",
        "ttl_seconds": 5.0,
        "concurrency": 8,
        "locality": "aws/eu-west-1/eu-west-1a",
        "version": "v2",
        "static": False,
        "health_url": "",
    }
    assert double.requests[1].method == "DELETE"


# --- errors --------------------------------------------------------------------------------

NOT_FOUND = error("not_found", "topic 'orders' does not exist")


class Answered(NamedTuple):
    """An error answer and what the client raises for it."""

    status: int
    body: object
    kind: type[ConveyorError]
    expected: dict[str, object]
    headers: dict[str, str] = {}


ERROR_ANSWERS = {
    "400": Answered(
        400,
        error("invalid_request", "key is too long", field="/key", rule="max_length"),
        InvalidRequest,
        {"message": "key is too long", "field": "/key", "rule": "max_length", "status": 400},
    ),
    "413": Answered(
        413,
        error("invalid_request", "payload too large", field="/payload", rule="max_size"),
        InvalidRequest,
        {"field": "/payload", "rule": "max_size", "status": 413},
    ),
    "422-schema": Answered(
        422,
        error("schema_violation", "no id", field="/payload/id", rule="required", index=0),
        SchemaViolation,
        {"message": "no id", "field": "/payload/id", "rule": "required", "index": 0},
    ),
    "422-other": Answered(
        422, error("invalid_request", "bad"), InvalidRequest, {"status": 422, "rule": None}
    ),
    "404": Answered(
        404,
        NOT_FOUND,
        NotFound,
        {"message": "topic 'orders' does not exist", "kind": "topic", "name": "orders"},
    ),
    "404-not-ours": Answered(
        404,
        b"404: Not Found",
        NotFound,
        {"message": "HTTP 404: 404: Not Found", "name": "/v1/topics/orders/events"},
    ),
    "409": Answered(
        409, error("conflict", "key reused"), Conflict, {"message": "key reused", "status": 409}
    ),
    "429": Answered(
        429,
        error("rate_limited", "slow down"),
        RateLimited,
        {"message": "slow down", "retry_after": 2.5},
        {"Retry-After": "2.5"},
    ),
    "429-no-retry-after": Answered(
        429, error("rate_limited", "slow down"), RateLimited, {"retry_after": 1.0}
    ),
    "503": Answered(
        503,
        error("store_unavailable", "store is down"),
        StoreUnavailable,
        {"message": "store is down", "status": 503},
    ),
    "500-not-json": Answered(
        500,
        b"Internal Server Error",
        StoreUnavailable,
        {"message": "HTTP 500: Internal Server Error", "status": 500},
    ),
}


@pytest.mark.parametrize("answered", ERROR_ANSWERS.values(), ids=ERROR_ANSWERS.keys())
async def test_an_error_answer_raises_the_matching_conveyor_error(
    double: FakeConveyor, client: AsyncClient, answered: Answered
) -> None:
    # Given
    double.answer(
        "POST", "/v1/topics/orders/events", answered.status, answered.body, headers=answered.headers
    )
    # When
    with pytest.raises(answered.kind) as raised:
        await client.publish("orders", {})
    # Then
    assert isinstance(raised.value, SchemaViolation) == (answered.kind is SchemaViolation)
    assert {name: getattr(raised.value, name) for name in answered.expected} == answered.expected
    assert str(raised.value) == raised.value.message


async def test_a_rejected_batch_raises_with_every_events_problem_and_index(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    problems = [
        ErrorDetail("missing id", field="/payload/id", rule="required", index=0),
        ErrorDetail("key is too long", field="/key", rule="max_length", index=2),
    ]
    body = error(
        "schema_violation",
        "2 events are invalid",
        field="/payload/id",
        rule="required",
        index=0,
        errors=msgspec.to_builtins(problems),
    )
    double.answer("POST", "/v1/topics/orders/events/batch", 422, body)
    # When
    with pytest.raises(SchemaViolation) as raised:
        await client.publish_batch("orders", [{"payload": i} for i in range(3)])
    # Then
    assert raised.value.index == 0
    assert [(e.message, e.field, e.rule, e.index) for e in raised.value.errors] == [
        (p.message, p.field, p.rule, p.index) for p in problems
    ]


async def test_an_invalid_request_always_carries_a_list_of_errors(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("POST", "/v1/topics", 400, error("invalid_request", "bad name", field="/name"))
    # When
    with pytest.raises(InvalidRequest) as raised:
        await client.create_topic("-bad")
    # Then
    assert type(raised.value) is InvalidRequest
    assert raised.value.errors == []


async def test_an_answer_that_is_not_the_promised_body_raises_conveyor_error(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("GET", "/v1/health", 200, {"unexpected": True})
    # When / Then
    with pytest.raises(ConveyorError, match="unexpected answer from Conveyor"):
        await client.health()


async def test_an_unreachable_node_raises_conveyor_error_naming_its_url() -> None:
    # Given nothing listens on the port
    url = f"http://127.0.0.1:{free_port()}"
    # When
    async with AsyncClient(url) as conveyor:
        with pytest.raises(ConveyorError) as raised:
            await conveyor.health()
    # Then
    assert type(raised.value) is ConveyorError
    assert raised.value.message.startswith(f"cannot reach Conveyor at {url}: ")
    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectionError)


async def test_a_node_that_answers_too_late_raises_conveyor_error(
    double: FakeConveyor,
) -> None:
    # Given
    double.answer("GET", "/v1/health", 200, Health("ok", "0", "sqlite"), delay=1.0)
    # When
    async with AsyncClient(double.url, timeout=0.05) as conveyor:
        with pytest.raises(ConveyorError, match=r"no answer from Conveyor .* within 0\.05s"):
            await conveyor.health()


# --- resources -----------------------------------------------------------------------------


async def test_requests_share_one_keep_alive_connection(
    double: FakeConveyor, client: AsyncClient
) -> None:
    # Given
    double.answer("GET", "/v1/topics", 200, [])
    # When
    for _ in range(3):
        await client.list_topics()
    # Then
    assert len({r.client_port for r in double.requests}) == 1


async def test_aclose_is_idempotent_and_a_closed_client_refuses_calls(
    double: FakeConveyor,
) -> None:
    # Given
    double.answer("GET", "/v1/topics", 200, [])
    conveyor = AsyncClient(double.url)
    await conveyor.list_topics()
    # When
    await conveyor.aclose()
    await conveyor.aclose()
    # Then
    with pytest.raises(RuntimeError, match="closed"):
        await conveyor.list_topics()


@pytest.mark.parametrize(
    ("base_url", "timeout"),
    [("127.0.0.1:8400", 1.0), ("ftp://host", 1.0), ("http://127.0.0.1:8400", 0.0)],
)
def test_a_client_refuses_a_bad_base_url_or_timeout(base_url: str, timeout: float) -> None:
    # When / Then
    with pytest.raises(ValueError, match=r"base_url|timeout"):
        AsyncClient(base_url, timeout=timeout)


# --- the blocking client -------------------------------------------------------------------


def test_the_blocking_client_makes_the_same_requests_as_the_async_one(
    double: FakeConveyor,
) -> None:
    # Given
    double.answer("POST", "/v1/topics", 201, ORDERS)
    double.answer("POST", "/v1/topics/orders/events", 201, PENDING)
    double.answer("DELETE", "/v1/subscriptions/billing", 204)
    # When
    with Client(double.url) as conveyor:
        topic = conveyor.create_topic("orders")
        result = conveyor.publish("orders", OrderModel(id=42, placed=PLACED), delay=2)
        conveyor.delete_subscription("billing")
    # Then
    assert (topic, result) == (ORDERS, PENDING)
    assert double.requests[1].json() == {"payload": ORDER_JSON, "delay": 2}
    assert len({r.client_port for r in double.requests}) == 1


def test_the_blocking_client_raises_the_same_errors(double: FakeConveyor) -> None:
    # Given
    double.answer(
        "GET", "/v1/topics/orders", 404, error("not_found", "topic 'orders' does not exist")
    )
    # When
    with Client(double.url) as conveyor, pytest.raises(NotFound) as raised:
        conveyor.get_topic("orders")
    # Then
    assert (raised.value.kind, raised.value.name) == ("topic", "orders")


def test_the_blocking_client_closes_once_and_then_refuses_calls(double: FakeConveyor) -> None:
    # Given
    double.answer("GET", "/v1/lambdas", 200, [])
    conveyor = Client(double.url)
    assert conveyor.list_lambdas() == []
    # When
    conveyor.close()
    conveyor.close()
    # Then
    with pytest.raises(RuntimeError, match="closed"):
        conveyor.list_lambdas()


async def test_the_blocking_client_refuses_to_run_inside_an_event_loop(
    double: FakeConveyor,
) -> None:
    # Given
    conveyor = Client(double.url)
    # When / Then
    with pytest.raises(RuntimeError, match="use AsyncClient"):
        conveyor.health()
    await asyncio.to_thread(conveyor.close)
