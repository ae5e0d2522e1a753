"""The Lambda SDK decodes Avro, Protobuf and CloudEvents pushes into the handler's declared
type, with the schemas it fetches from the platform (``GET /v1/schemas/{id}``)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field

import msgspec
import pydantic
import pytest
from aiohttp import web

from conveyor.codecs import protobuf
from conveyor.codecs.avro import AvroCodec
from conveyor.codecs.envelope import cloud_event
from conveyor.execution import EventContext, Lambda
from conveyor.execution._payload import CanonicalDecoder
from conveyor.execution._schemas import SchemaCache, SchemaFetchError
from conveyor.model import DeliveryFormat, Event, Outcome
from conveyor.wire.push import (
    AVRO_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
    PushEvent,
    PushRequest,
    PushResult,
)

PUBLISHED_MS = 1_700_000_000_000
AVRO_ID, PROTO_ID = 11, 12
AVRO_TEXT = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "sku", "type": "string"},
            {"name": "amount", "type": "int"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)
PROTO_TEXT = """
syntax = "proto3";
package shop;
message Order { string sku = 1; int32 amount = 2; }
"""
AVRO = AvroCodec.parse(AVRO_TEXT)
PROTO = protobuf.parse(PROTO_TEXT)
OrderMessage = PROTO.message_class  # a generated Protobuf message class
ORDER = {"sku": "A-1", "amount": 3, "note": "fragile"}


class Order(msgspec.Struct):
    sku: str
    amount: int
    note: str | None = None


class OrderModel(pydantic.BaseModel):
    sku: str
    amount: int


@dataclass
class Lookups:
    """A stand-in for the worker's schema cache, counting what it is asked."""

    asked: list[int] = field(default_factory=list)
    failure: SchemaFetchError | None = None

    async def __call__(self, schema_id: int) -> CanonicalDecoder:
        self.asked.append(schema_id)
        if self.failure is not None:
            raise self.failure
        if schema_id == AVRO_ID:
            return AVRO.decode
        return lambda data: protobuf.decode(PROTO, data)


@dataclass
class Recorder:
    app: Lambda = field(default_factory=lambda: Lambda("shop"))
    seen: list[tuple[object, EventContext]] = field(default_factory=list)

    def add(self, annotation: type, name: str) -> None:
        async def handle(payload: object, ctx: EventContext) -> None:
            self.seen.append((payload, ctx))

        handle.__annotations__ = {"payload": annotation, "ctx": EventContext, "return": None}
        self.app.handler("orders", subscription=name)(handle)


def binary_event(content_type: str, data: bytes, schema_id: int | None) -> PushEvent:
    return PushEvent(
        id="e0",
        topic="orders",
        partition=0,
        offset=0,
        payload=msgspec.Raw(b"null"),
        published_ms=PUBLISHED_MS,
        content_type=content_type,
        data=base64.b64encode(data).decode(),
        schema_id=schema_id,
        schema_version=4,
    )


def stored(payload: object, attributes: dict[str, str] | None = None) -> Event:
    return Event(
        "e0",
        "orders",
        0,
        0,
        "k",
        attributes,
        msgspec.json.encode(payload),
        PUBLISHED_MS,
    )


async def run(
    annotation: type, event: PushEvent, lookups: Lookups | None = None
) -> tuple[PushResult, list[tuple[object, EventContext]]]:
    recorder = Recorder()
    recorder.add(annotation, "s")
    response = await recorder.app.run_batch(
        PushRequest("s", [event]), schemas=lookups if lookups is not None else Lookups()
    )
    [result] = response.results
    return result, recorder.seen


# -- Avro -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Order, Order("A-1", 3, "fragile")),
        (dict, ORDER),
        (OrderModel, OrderModel(sku="A-1", amount=3)),
    ],
)
async def test_avro_data_decodes_into_the_declared_type(annotation: type, expected: object) -> None:
    # Given an Avro push of the order
    lookups = Lookups()
    event = binary_event(AVRO_CONTENT_TYPE, AVRO.encode(ORDER), AVRO_ID)

    # When a handler of each type runs it
    result, [(payload, ctx)] = await run(annotation, event, lookups)

    # Then it gets the order in its type, and the context tells the format
    assert result.status is Outcome.SUCCESS
    assert payload == expected
    assert (ctx.content_type, ctx.schema_id, ctx.schema_version) == (AVRO_CONTENT_TYPE, 11, 4)
    assert ctx.cloudevent is None
    assert lookups.asked == [AVRO_ID]


async def test_a_bytes_handler_gets_the_data_undecoded_without_a_schema() -> None:
    lookups = Lookups()
    data = AVRO.encode(ORDER)

    result, [(payload, _)] = await run(bytes, binary_event(AVRO_CONTENT_TYPE, data, 11), lookups)

    assert result.status is Outcome.SUCCESS
    assert payload == data
    assert lookups.asked == []


async def test_a_bytes_handler_of_a_json_push_gets_the_json_text() -> None:
    event = PushEvent("e0", "orders", 0, 0, msgspec.Raw(b'{"a": 1}'), PUBLISHED_MS)

    _, [(payload, ctx)] = await run(bytes, event)

    assert payload == b'{"a": 1}'
    assert ctx.content_type == "application/json"


# -- Protobuf -------------------------------------------------------------------------------


async def test_protobuf_data_decodes_straight_into_a_generated_message_class() -> None:
    lookups = Lookups()
    data = protobuf.encode(PROTO, {"sku": "A-1", "amount": 3})

    result, [(payload, _)] = await run(
        OrderMessage, binary_event(PROTOBUF_CONTENT_TYPE, data, PROTO_ID), lookups
    )

    assert result.status is Outcome.SUCCESS
    assert isinstance(payload, OrderMessage)
    assert (payload.sku, payload.amount) == ("A-1", 3)
    assert lookups.asked == []  # the class is the schema


async def test_protobuf_data_decodes_into_a_struct_through_its_registry_schema() -> None:
    data = protobuf.encode(PROTO, {"sku": "A-1", "amount": 3})

    result, [(payload, _)] = await run(Order, binary_event(PROTOBUF_CONTENT_TYPE, data, PROTO_ID))

    assert result.status is Outcome.SUCCESS
    assert payload == Order("A-1", 3)


async def test_a_message_class_handler_of_a_json_push_parses_the_json() -> None:
    event = PushEvent("e0", "orders", 0, 0, msgspec.Raw(b'{"sku": "B", "extra": 1}'), PUBLISHED_MS)

    result, [(payload, _)] = await run(OrderMessage, event)

    assert result.status is Outcome.SUCCESS
    assert payload.sku == "B"  # type: ignore[attr-defined]


# -- CloudEvents ----------------------------------------------------------------------------


async def test_a_cloudevent_of_json_gives_its_data_and_its_attributes() -> None:
    # Given a CloudEvent built by the platform's transcoder
    envelope = cloud_event(
        stored(ORDER, {"ce-traceparent": "00-1-01"}), msgspec.json.encode(ORDER), None, None, 11
    )
    event = PushEvent(
        "e0", "orders", 0, 0, envelope, PUBLISHED_MS, content_type=CLOUDEVENTS_CONTENT_TYPE
    )

    # When a Struct handler runs it
    result, [(payload, ctx)] = await run(Order, event)

    # Then it gets the data, and the attributes are in the context
    assert result.status is Outcome.SUCCESS
    assert payload == Order("A-1", 3, "fragile")
    assert ctx.content_type == "application/json"
    assert ctx.cloudevent == {
        "specversion": "1.0",
        "id": "e0",
        "source": "conveyor://orders",
        "type": "orders",
        "time": "2023-11-14T22:13:20.000Z",
        "datacontenttype": "application/json",
        "dataschema": "/v1/schemas/11",
        "subject": "k",
        "traceparent": "00-1-01",
    }


async def test_a_cloudevent_of_avro_data_decodes_its_data_base64() -> None:
    data = base64.b64encode(AVRO.encode(ORDER)).decode()
    envelope = cloud_event(stored(ORDER), None, data, AVRO_CONTENT_TYPE, AVRO_ID)
    event = PushEvent(
        "e0",
        "orders",
        0,
        0,
        envelope,
        PUBLISHED_MS,
        content_type=CLOUDEVENTS_CONTENT_TYPE,
        schema_id=AVRO_ID,
    )

    result, [(payload, ctx)] = await run(dict, event)

    assert result.status is Outcome.SUCCESS
    assert payload == ORDER
    assert ctx.content_type == AVRO_CONTENT_TYPE
    assert ctx.cloudevent is not None
    assert ctx.cloudevent["datacontenttype"] == AVRO_CONTENT_TYPE


# -- failures -------------------------------------------------------------------------------


async def test_data_that_does_not_decode_is_fatal() -> None:
    result, seen = await run(dict, binary_event(AVRO_CONTENT_TYPE, b"\xff\xff", AVRO_ID))

    assert result.status is Outcome.FATAL
    assert "does not decode" in (result.error or "")
    assert seen == []


async def test_a_schema_the_platform_cannot_give_now_is_a_retry() -> None:
    lookups = Lookups(failure=SchemaFetchError(AVRO_ID, "platform unreachable", retry=True))

    result, seen = await run(
        dict, binary_event(AVRO_CONTENT_TYPE, AVRO.encode(ORDER), AVRO_ID), lookups
    )

    assert (result.status, result.error) == (Outcome.RETRY, "platform unreachable")
    assert seen == []


async def test_binary_data_without_a_schema_id_is_fatal() -> None:
    result, _ = await run(dict, binary_event(AVRO_CONTENT_TYPE, AVRO.encode(ORDER), None))

    assert result.status is Outcome.FATAL
    assert "without its schema id" in (result.error or "")


# -- the handler decorator ------------------------------------------------------------------


def test_the_handler_decorator_registers_the_subscriptions_format() -> None:
    app = Lambda("shop")

    @app.handler("orders", encoding="avro", cloudevents=True, schema_version=2)
    async def charge(order: Order) -> None: ...

    [subscription] = app.subscriptions()
    assert subscription.format == DeliveryFormat(
        encoding="avro", cloudevents=True, schema_version=2
    )


def test_a_schema_version_below_one_is_refused_at_registration() -> None:
    app = Lambda("shop")

    with pytest.raises(ValueError, match="schema_version"):

        @app.handler("orders", schema_version=0)
        async def charge(order: Order) -> None: ...


# -- the worker's schema cache --------------------------------------------------------------


@dataclass
class Platform:
    url: str
    requests: list[str]
    release: asyncio.Event


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    requests: list[str] = []
    release = asyncio.Event()
    release.set()

    async def schema(request: web.Request) -> web.Response:
        requests.append(request.match_info["id"])
        await release.wait()
        if request.match_info["id"] != str(AVRO_ID):
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        body = {"id": AVRO_ID, "subject": "s", "version": 1, "type": "avro", "schema": AVRO_TEXT}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/schemas/{id}", schema)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield Platform(f"http://127.0.0.1:{runner.addresses[0][1]}", requests, release)
    await runner.cleanup()


async def test_the_cache_fetches_a_schema_once_for_concurrent_and_later_calls(
    platform: Platform,
) -> None:
    # Given a platform that answers only once released
    platform.release.clear()
    async with SchemaCache(f"http://127.0.0.1:1,{platform.url}") as cache:
        # When three decodes of the same id start together, and one more later
        calls: list[Awaitable[CanonicalDecoder]] = [cache.decoder(AVRO_ID) for _ in range(3)]
        gathered = asyncio.gather(*calls)
        await asyncio.sleep(0.05)
        platform.release.set()
        decoders = await gathered
        later = await cache.decoder(AVRO_ID)

    # Then the platform was asked once (after the unreachable first server), and it decodes
    assert platform.requests == [str(AVRO_ID)]
    assert all(d(AVRO.encode(ORDER)) == ORDER for d in [*decoders, later])


async def test_a_schema_the_platform_lacks_is_final(platform: Platform) -> None:
    async with SchemaCache(platform.url) as cache:
        with pytest.raises(SchemaFetchError) as failed:
            await cache.decoder(99)

    assert not failed.value.retry


async def test_an_unreachable_platform_is_worth_a_retry() -> None:
    async with SchemaCache("http://127.0.0.1:1", timeout=2) as cache:
        with pytest.raises(SchemaFetchError) as failed:
            await cache.decoder(AVRO_ID)

    assert failed.value.retry
