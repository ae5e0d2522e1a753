"""Formats out: a subscription's events in JSON, Avro or Protobuf, in the writer's or a reader
version, optionally as CloudEvents — over a real schema registry and catalog (SQLite)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import fastavro
import msgspec
import pytest
from aiohttp import web

from conveyor.catalog import Catalog
from conveyor.clock import FakeClock
from conveyor.codecs import protobuf
from conveyor.delivery.endpoints import EndpointState
from conveyor.delivery.push import Pusher
from conveyor.delivery.transcode import Transcoder, Unencodable, check_format
from conveyor.errors import InvalidRequest
from conveyor.frontend.registry.registry import SchemaRegistry
from conveyor.model import (
    DeliveryFormat,
    Event,
    Outcome,
    SchemaSettings,
    SchemaType,
    Subscription,
    Topic,
)
from conveyor.node import open_store
from conveyor.wire.push import (
    AVRO_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
    PushEvent,
    PushRequest,
    PushResponse,
    PushResult,
    push_request_decoder,
)

AVRO, PROTO = SchemaType.AVRO, SchemaType.PROTOBUF
PUBLISHED_MS = 1_700_000_000_123

AVRO_V1: dict[str, object] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "sku", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "blob", "type": "bytes"},
    ],
}
# v2 removes `note` and adds `currency` with a default: BACKWARD compatible.
AVRO_V2: dict[str, object] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "sku", "type": "string"},
        {"name": "blob", "type": "bytes"},
        {"name": "currency", "type": "string", "default": "EUR"},
    ],
}
ORDER = {"id": 7, "sku": "A-1", "note": "fragile", "blob": "\u00ff\u0000x"}

PROTO_V1 = """
syntax = "proto3";
package shop;
message Order { int32 id = 1; string sku = 2; int32 qty = 3; }
"""
# v2 removes `qty` (its number reserved): readers skip it.
PROTO_V2 = """
syntax = "proto3";
package shop;
message Order { int32 id = 1; string sku = 2; reserved 3; }
"""
PROTO_ORDER = {"id": 7, "sku": "A-1", "qty": 3}


@dataclass
class World:
    registry: SchemaRegistry
    catalog: Catalog
    transcoder: Transcoder
    ids: dict[str, int]

    async def subscribe(self, topic: str, fmt: DeliveryFormat, name: str = "s") -> None:
        await self.catalog.put_subscription(
            Subscription(name=name, topic=topic, lambda_name="l", format=fmt)
        )

    async def prepare(
        self, fmt: DeliveryFormat, *events: Event, name: str = "s"
    ) -> list[PushEvent | Unencodable]:
        found = self.transcoder.format_for(name)
        assert found == fmt
        return await self.transcoder.prepare(fmt, events, [1] * len(events))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with open_store(str(tmp_path / "c.db")) as store:
        registry = SchemaRegistry(store, FakeClock())
        catalog = Catalog(store)
        await catalog.load()
        ids: dict[str, int] = {}
        for key, subject, kind, text in (
            ("avro1", "orders-avro", AVRO, json.dumps(AVRO_V1)),
            ("avro2", "orders-avro", AVRO, json.dumps(AVRO_V2)),
            ("proto1", "orders-proto", PROTO, PROTO_V1),
            ("proto2", "orders-proto", PROTO, PROTO_V2),
        ):
            schema, _ = await registry.register(subject, kind, text)
            ids[key] = schema.id
        await catalog.put_topic(
            Topic(name="avro", schema_settings=SchemaSettings(subject="orders-avro"))
        )
        await catalog.put_topic(
            Topic(name="proto", schema_settings=SchemaSettings(subject="orders-proto"))
        )
        await catalog.put_topic(Topic(name="plain"))
        yield World(registry, catalog, Transcoder(registry, catalog), ids)


def event(
    topic: str,
    payload: object,
    schema_id: int | None,
    *,
    key: str | None = None,
    attributes: dict[str, str] | None = None,
    n: int = 0,
) -> Event:
    return Event(
        id=f"{n:032x}",
        topic=topic,
        partition=0,
        offset=n,
        key=key,
        attributes=attributes,
        payload=msgspec.json.encode(payload),
        publish_ms=PUBLISHED_MS,
        schema_id=schema_id,
    )


def pushed(item: PushEvent | Unencodable) -> PushEvent:
    assert isinstance(item, PushEvent), item
    return item


def avro_read(data: bytes, schema: dict[str, object]) -> object:
    return fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(dict(schema)))


def binary(item: PushEvent) -> bytes:
    assert item.data is not None
    return base64.b64decode(item.data)


# -- as stored ------------------------------------------------------------------------------


async def test_a_json_subscription_to_an_unbound_topic_takes_the_hot_path(world: World) -> None:
    await world.subscribe("plain", DeliveryFormat())

    assert world.transcoder.format_for("s") is None
    assert world.transcoder.format_for("no-such-subscription") is None


async def test_a_json_subscription_to_a_bound_topic_gets_events_as_stored_with_their_schema(
    world: World,
) -> None:
    # Given a plain subscription to an Avro topic
    fmt = DeliveryFormat()
    await world.subscribe("avro", fmt)

    # When an event written with v1 is prepared
    [item] = await world.prepare(fmt, event("avro", ORDER, world.ids["avro1"]))

    # Then its JSON goes unchanged, naming its schema
    out = pushed(item)
    assert bytes(out.payload) == msgspec.json.encode(ORDER)
    assert (out.content_type, out.data) == (None, None)
    assert (out.schema_id, out.schema_version) == (world.ids["avro1"], 1)


# -- Avro -----------------------------------------------------------------------------------


async def test_avro_in_the_writers_version_decodes_to_the_original(world: World) -> None:
    fmt = DeliveryFormat(encoding="avro")
    await world.subscribe("avro", fmt)

    [item] = await world.prepare(fmt, event("avro", ORDER, world.ids["avro1"]))

    out = pushed(item)
    assert out.content_type == AVRO_CONTENT_TYPE
    assert bytes(out.payload) == b"null"
    assert (out.schema_id, out.schema_version) == (world.ids["avro1"], 1)
    decoded = avro_read(binary(out), AVRO_V1)
    assert decoded == {**ORDER, "blob": b"\xff\x00x"}


async def test_avro_in_a_reader_version_adds_defaults_and_drops_removed_fields(
    world: World,
) -> None:
    # Given a subscription reading version 2 (note removed, currency added with a default)
    fmt = DeliveryFormat(encoding="avro", schema_version=2)
    await world.subscribe("avro", fmt)

    # When a v1 event is prepared
    [item] = await world.prepare(fmt, event("avro", ORDER, world.ids["avro1"]))

    # Then it is written with v2: the new field has its default, the removed one is gone
    out = pushed(item)
    assert (out.schema_id, out.schema_version) == (world.ids["avro2"], 2)
    decoded = avro_read(binary(out), AVRO_V2)
    assert decoded == {"id": 7, "sku": "A-1", "blob": b"\xff\x00x", "currency": "EUR"}


async def test_json_in_an_avro_reader_version_is_the_readers_canonical_json(
    world: World,
) -> None:
    fmt = DeliveryFormat(schema_version=2)
    await world.subscribe("avro", fmt)

    [item] = await world.prepare(fmt, event("avro", ORDER, world.ids["avro1"]))

    out = pushed(item)
    assert out.content_type is None
    assert msgspec.json.decode(out.payload) == {
        "id": 7,
        "sku": "A-1",
        "blob": "\u00ff\u0000x",
        "currency": "EUR",
    }
    assert (out.schema_id, out.schema_version) == (world.ids["avro2"], 2)


async def test_an_event_already_in_the_reader_version_goes_as_written(world: World) -> None:
    fmt = DeliveryFormat(schema_version=2)
    await world.subscribe("avro", fmt)
    v2 = {"id": 1, "sku": "B", "blob": "", "currency": "USD"}

    [item] = await world.prepare(fmt, event("avro", v2, world.ids["avro2"]))

    assert bytes(pushed(item).payload) == msgspec.json.encode(v2)


# -- Protobuf -------------------------------------------------------------------------------


async def test_protobuf_in_the_writers_version_decodes_to_the_original(world: World) -> None:
    fmt = DeliveryFormat(encoding="protobuf")
    await world.subscribe("proto", fmt)

    [item] = await world.prepare(fmt, event("proto", PROTO_ORDER, world.ids["proto1"]))

    out = pushed(item)
    assert out.content_type == PROTOBUF_CONTENT_TYPE
    assert (out.schema_id, out.schema_version) == (world.ids["proto1"], 1)
    v1 = protobuf.parse(PROTO_V1)
    assert protobuf.decode(v1, binary(out)) == PROTO_ORDER


async def test_protobuf_in_a_reader_version_drops_the_fields_it_does_not_know(
    world: World,
) -> None:
    # Given a subscription reading version 2, which removed qty
    fmt = DeliveryFormat(encoding="protobuf", schema_version=2)
    await world.subscribe("proto", fmt)

    # When a v1 event with qty is prepared
    [item] = await world.prepare(fmt, event("proto", PROTO_ORDER, world.ids["proto1"]))

    # Then the bytes hold no qty, not even as an unknown field a v1 reader would see
    out = pushed(item)
    assert (out.schema_id, out.schema_version) == (world.ids["proto2"], 2)
    data = binary(out)
    assert protobuf.decode(protobuf.parse(PROTO_V1), data) == {"id": 7, "sku": "A-1"}
    assert data == protobuf.encode(protobuf.parse(PROTO_V2), {"id": 7, "sku": "A-1"})


async def test_json_in_a_protobuf_reader_version_lacks_the_removed_field(world: World) -> None:
    fmt = DeliveryFormat(schema_version=2)
    await world.subscribe("proto", fmt)

    [item] = await world.prepare(fmt, event("proto", PROTO_ORDER, world.ids["proto1"]))

    assert msgspec.json.decode(pushed(item).payload) == {"id": 7, "sku": "A-1"}


# -- CloudEvents ----------------------------------------------------------------------------


async def test_a_cloudevent_wraps_json_data_with_the_events_attributes(world: World) -> None:
    fmt = DeliveryFormat(cloudevents=True)
    await world.subscribe("plain", fmt)
    attributes = {"ce-traceparent": "00-abc-01", "ce-bad_name": "x", "ce-id": "spoof", "a": "b"}

    [item] = await world.prepare(
        fmt, event("plain", {"x": 1}, None, key="customer-7", attributes=attributes)
    )

    out = pushed(item)
    assert out.content_type == CLOUDEVENTS_CONTENT_TYPE
    assert (out.schema_id, out.schema_version) == (None, None)
    assert msgspec.json.decode(out.payload) == {
        "specversion": "1.0",
        "id": f"{0:032x}",
        "source": "conveyor://plain",
        "type": "plain",
        "time": "2023-11-14T22:13:20.123Z",
        "datacontenttype": "application/json",
        "subject": "customer-7",
        "traceparent": "00-abc-01",
        "data": {"x": 1},
    }


async def test_a_cloudevent_takes_source_type_and_subject_from_ce_attributes(
    world: World,
) -> None:
    fmt = DeliveryFormat(cloudevents=True)
    await world.subscribe("avro", fmt)
    attributes = {"ce-source": "/shop", "ce-type": "order.placed", "ce-subject": "o-7"}

    [item] = await world.prepare(
        fmt, event("avro", ORDER, world.ids["avro1"], key="k", attributes=attributes)
    )

    envelope = msgspec.json.decode(pushed(item).payload)
    assert (envelope["source"], envelope["type"], envelope["subject"]) == (
        "/shop",
        "order.placed",
        "o-7",
    )
    assert envelope["dataschema"] == f"/v1/schemas/{world.ids['avro1']}"
    assert envelope["data"] == ORDER


async def test_a_cloudevent_of_binary_data_carries_it_in_data_base64(world: World) -> None:
    fmt = DeliveryFormat(encoding="avro", cloudevents=True, schema_version=2)
    await world.subscribe("avro", fmt)

    [item] = await world.prepare(fmt, event("avro", ORDER, world.ids["avro1"]))

    out = pushed(item)
    envelope = msgspec.json.decode(out.payload)
    assert out.content_type == CLOUDEVENTS_CONTENT_TYPE
    assert out.data is None
    assert envelope["datacontenttype"] == AVRO_CONTENT_TYPE
    assert envelope["dataschema"] == f"/v1/schemas/{world.ids['avro2']}"
    assert "data" not in envelope
    decoded = avro_read(base64.b64decode(envelope["data_base64"]), AVRO_V2)
    assert decoded == {"id": 7, "sku": "A-1", "blob": b"\xff\x00x", "currency": "EUR"}


async def test_a_protobuf_cloudevent_carries_its_bytes(world: World) -> None:
    fmt = DeliveryFormat(encoding="protobuf", cloudevents=True)
    await world.subscribe("proto", fmt)

    [item] = await world.prepare(fmt, event("proto", PROTO_ORDER, world.ids["proto1"]))

    envelope = msgspec.json.decode(pushed(item).payload)
    assert envelope["datacontenttype"] == PROTOBUF_CONTENT_TYPE
    data = base64.b64decode(envelope["data_base64"])
    assert protobuf.decode(protobuf.parse(PROTO_V1), data) == PROTO_ORDER


# -- what cannot be encoded -----------------------------------------------------------------


async def test_an_event_without_a_schema_cannot_go_out_as_avro(world: World) -> None:
    # Given an Avro subscription, and an event published before the topic was bound
    fmt = DeliveryFormat(encoding="avro")
    await world.subscribe("avro", fmt)

    [item] = await world.prepare(fmt, event("avro", ORDER, None))

    assert isinstance(item, Unencodable)
    assert not item.retry
    assert "has no schema" in item.error
    assert "as avro" in item.error


async def test_an_event_of_another_schema_type_cannot_go_out_in_this_encoding(
    world: World,
) -> None:
    fmt = DeliveryFormat(encoding="protobuf")
    await world.subscribe("avro", fmt)

    [item] = await world.prepare(fmt, event("avro", ORDER, world.ids["avro1"]))

    assert isinstance(item, Unencodable)
    assert "written with a avro schema" in item.error


async def test_a_reader_version_the_subject_lacks_is_final_for_the_event(world: World) -> None:
    fmt = DeliveryFormat(encoding="avro", schema_version=9)
    await world.subscribe("avro", fmt)

    [item] = await world.prepare(fmt, event("avro", ORDER, world.ids["avro1"]))

    assert isinstance(item, Unencodable)
    assert not item.retry
    assert "has no version 9" in item.error


async def test_data_that_does_not_fit_is_final_and_its_batch_mates_still_go(
    world: World,
) -> None:
    fmt = DeliveryFormat(encoding="avro")
    await world.subscribe("avro", fmt)
    bad = {"id": "not a number", "sku": "A", "blob": ""}

    good_item, bad_item = await world.prepare(
        fmt, event("avro", ORDER, world.ids["avro1"]), event("avro", bad, world.ids["avro1"], n=1)
    )

    assert pushed(good_item).content_type == AVRO_CONTENT_TYPE
    assert isinstance(bad_item, Unencodable)
    assert f"with schema {world.ids['avro1']}" in bad_item.error


# -- the pusher: unencodable events get their own result --------------------------------------


@dataclass
class Endpoint:
    received: list[PushRequest]
    url: str


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    received: list[PushRequest] = []

    async def on_push(request: web.Request) -> web.Response:
        push = push_request_decoder.decode(await request.read())
        received.append(push)
        answer = PushResponse([PushResult(e.id, Outcome.SUCCESS) for e in push.events])
        return web.Response(body=msgspec.json.encode(answer), content_type="application/json")

    app = web.Application()
    app.router.add_post("/push", on_push)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Endpoint(received, f"http://127.0.0.1:{port}/push")
    await runner.cleanup()


async def test_the_pusher_settles_an_unencodable_event_as_fatal_and_pushes_the_rest(
    world: World, endpoint: Endpoint
) -> None:
    # Given an Avro subscription and a batch whose middle event has no schema
    await world.subscribe("avro", DeliveryFormat(encoding="avro"))
    batch = [
        event("avro", ORDER, world.ids["avro1"], n=0),
        event("avro", ORDER, None, n=1),
        event("avro", ORDER, world.ids["avro1"], n=2),
    ]
    target = EndpointState("l", "e1", endpoint.url, expires_at=1e12, concurrency=10)

    # When it is pushed
    async with Pusher(transcoder=world.transcoder) as pusher:
        outcome = await pusher.push(target, "s", batch, [1, 1, 1], 5.0)

    # Then the lambda got the two others, in Avro, and the middle one is dead with the reason
    [request] = endpoint.received
    assert [e.offset for e in request.events] == [0, 2]
    assert {e.content_type for e in request.events} == {AVRO_CONTENT_TYPE}
    assert [r.outcome for r in outcome.results] == [
        Outcome.SUCCESS,
        Outcome.FATAL,
        Outcome.SUCCESS,
    ]
    assert "has no schema" in (outcome.results[1].error or "")
    assert not outcome.failed


async def test_the_pusher_sends_nothing_when_no_event_can_be_encoded(
    world: World, endpoint: Endpoint
) -> None:
    await world.subscribe("avro", DeliveryFormat(encoding="avro"))
    target = EndpointState("l", "e1", endpoint.url, expires_at=1e12, concurrency=10)

    async with Pusher(transcoder=world.transcoder) as pusher:
        outcome = await pusher.push(target, "s", [event("avro", ORDER, None)], [1], 5.0)

    assert endpoint.received == []
    assert [r.outcome for r in outcome.results] == [Outcome.FATAL]


# -- the check when a subscription is put -----------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "fmt", "field", "words"),
    [
        ("plain", DeliveryFormat(encoding="avro"), "/format/encoding", "bound to no"),
        ("plain", DeliveryFormat(schema_version=1), "/format/schema_version", "bound to no"),
        ("avro", DeliveryFormat(encoding="protobuf"), "/format/encoding", "holds avro data"),
        ("proto", DeliveryFormat(encoding="avro"), "/format/encoding", "holds protobuf data"),
        ("avro", DeliveryFormat(schema_version=3), "/format/schema_version", "no version 3"),
    ],
)
async def test_a_format_the_topic_cannot_give_is_refused(
    world: World, topic: str, fmt: DeliveryFormat, field: str, words: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await check_format(world.registry, world.catalog.topic(topic), fmt)

    assert refused.value.field == field
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("topic", "fmt"),
    [
        ("plain", DeliveryFormat()),
        ("plain", DeliveryFormat(cloudevents=True)),
        ("avro", DeliveryFormat(encoding="avro", schema_version=2, cloudevents=True)),
        ("proto", DeliveryFormat(encoding="protobuf", schema_version=1)),
        ("proto", DeliveryFormat(schema_version=2)),
    ],
)
async def test_a_format_the_topic_can_give_is_accepted(
    world: World, topic: str, fmt: DeliveryFormat
) -> None:
    await check_format(world.registry, world.catalog.topic(topic), fmt)


async def test_a_schema_version_on_a_json_schema_subject_is_refused(world: World) -> None:
    schema = json.dumps({"type": "object"})
    await world.registry.register("orders-json", SchemaType.JSON, schema)
    topic = Topic(name="js", schema_settings=SchemaSettings(subject="orders-json"))

    with pytest.raises(InvalidRequest) as refused:
        await check_format(world.registry, topic, DeliveryFormat(schema_version=1))

    assert refused.value.rule == "schema_type"
