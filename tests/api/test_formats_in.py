"""Formats in: Avro and Protobuf binary, and CloudEvents, published over real HTTP on
127.0.0.1 to a node on each real store, and read back as the JSON Conveyor keeps.

Every refused request must name the field and the rule, and store nothing.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import fastavro
import msgspec
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from conveyor.api.app import build_app
from conveyor.api.openapi import openapi_document
from conveyor.clock import FakeClock
from conveyor.codecs import protobuf
from conveyor.codecs.cloudevents import to_cloudevent
from conveyor.model import Priority, SchemaSettings, SchemaType, Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.schemas import (
    BatchPublishResult,
    ErrorBody,
    ErrorResponse,
    EventView,
    PublishResult,
)

Client = TestClient[web.Request, web.Application]
Snapshot = tuple[dict[str, list[int]], list[tuple[int, str]]]

AVRO = "application/vnd.apache.avro"
PROTOBUF = "application/x-protobuf"
CE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"

ORDER_V1_FIELDS: list[dict[str, object]] = [
    {"name": "id", "type": "long"},
    {"name": "amount", "type": "double"},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "tag", "type": "bytes"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {
        "name": "lines",
        "type": {
            "type": "array",
            "items": {
                "type": "record",
                "name": "Line",
                "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
            },
        },
    },
]
ORDER_V1: dict[str, object] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": ORDER_V1_FIELDS,
}
# Version 2 adds an optional field (BACKWARD compatible).
COUPON: dict[str, object] = {"name": "coupon", "type": "string", "default": ""}
ORDER_V2: dict[str, object] = {**ORDER_V1, "fields": [*ORDER_V1_FIELDS, COUPON]}
ORDER = {
    "id": 7,
    "amount": 9.5,
    "note": "gift",
    "tag": b"\x00\xff",
    "status": "PAID",
    "placed": 1_700_000_000_000,
    "lines": [{"sku": "a", "qty": 2}],
}
ORDER_JSON = {**ORDER, "tag": "\u0000\u00ff"}  # bytes as code points 0-255

PAYMENT_PROTO = """
syntax = "proto3";
package shop;
message Payment {
  int64 id = 1;
  double amount = 2;
  bytes token = 3;
  enum Method { CARD = 0; IBAN = 1; }
  Method method = 4;
  repeated string refs = 5;
}
"""
PAYMENT = {"id": "42", "amount": 12.5, "token": "AP8=", "method": "IBAN", "refs": ["r1", "r2"]}

LEDGER_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}},
    "required": ["amount"],
}


@dataclass
class Rig:
    node: Node
    client: Client
    clock: FakeClock
    order_v1: int
    order_v2: int
    payment: int
    payment_schema: protobuf.ProtoSchema


def avro(value: Mapping[str, object], schema: Mapping[str, object] = ORDER_V2) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(dict(schema)), dict(value))
    return out.getvalue()


def order_v2_json() -> dict[str, object]:
    return {**ORDER_JSON, "coupon": "SPRING"}


@pytest.fixture
async def rig(store_url: str) -> AsyncIterator[Rig]:
    clock = FakeClock()
    async with Node(NodeSettings(store=store_url, cluster=False), clock=clock) as node:
        v1, _ = await node.registry.register("orders-avro", SchemaType.AVRO, json.dumps(ORDER_V1))
        v2, _ = await node.registry.register("orders-avro", SchemaType.AVRO, json.dumps(ORDER_V2))
        pay, _ = await node.registry.register("payments-proto", SchemaType.PROTOBUF, PAYMENT_PROTO)
        for topic in (
            Topic(name="orders", partitions=2, schema_settings=SchemaSettings("orders-avro")),
            Topic(name="orders-v2", schema_settings=SchemaSettings("orders-avro", first_version=2)),
            Topic(name="payments", schema_settings=SchemaSettings("payments-proto")),
            Topic(name="plain", partitions=2),
            Topic(name="ledger", schema=LEDGER_SCHEMA),
        ):
            await node.catalog.put_topic(topic)
        async with TestClient(TestServer(build_app(node), host="127.0.0.1")) as client:
            assert isinstance(pay.parsed, protobuf.ProtoSchema)
            yield Rig(node, client, clock, v1.id, v2.id, pay.id, pay.parsed)


async def stored(node: Node) -> Snapshot:
    ends = {t.name: await node.store.log_ends(t) for t in node.catalog.topics()}
    return ends, await node.store.due_timers(2**62, 1000)


async def error_of(response: ClientResponse) -> ErrorBody:
    return msgspec.json.decode(await response.read(), type=ErrorResponse).error


async def accepted(response: ClientResponse, status: int = 201) -> PublishResult:
    assert response.status == status, await response.text()
    return msgspec.json.decode(await response.read(), type=PublishResult)


async def event_of(rig: Rig, event_id: str) -> tuple[EventView, object]:
    response = await rig.client.get(f"/v1/events/{event_id}")
    assert response.status == 200
    view = msgspec.json.decode(await response.read(), type=EventView)
    return view, msgspec.json.decode(bytes(view.payload))


def cloudevent(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/shop/checkout",
        "type": "shop.order.placed",
        "data": {"amount": 1},
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


# -- Avro and Protobuf binary ---------------------------------------------------------------------
async def test_avro_binary_is_stored_as_its_canonical_json_with_the_schema_id(rig: Rig) -> None:
    # Given an order encoded with the subject's newest version (2)
    data = avro({**ORDER, "coupon": "SPRING"})

    # When it is published as Avro
    response = await rig.client.post(
        "/v1/topics/orders/events", data=data, headers={"Content-Type": AVRO}
    )

    # Then the event holds its JSON form (bytes as code points, the logical type as its
    # long, the union as its value), recorded as written with version 2
    result = await accepted(response)
    view, payload = await event_of(rig, result.id)
    assert payload == order_v2_json()
    assert view.schema_id == rig.order_v2


async def test_avro_metadata_travels_in_conveyor_headers(rig: Rig) -> None:
    # Given an Avro order and its metadata as headers (a key and a value percent-encoded)
    headers = {
        "Content-Type": "avro/binary",
        "Conveyor-Key": "customer%207",
        "Conveyor-Priority": "high",
        "Conveyor-Delay": "30",
        "Conveyor-Attr-Origin": "web%2Fmobile",
        "Conveyor-Attr-trace": "abc",
    }

    # When it is published
    response = await rig.client.post(
        "/v1/topics/orders/events", data=avro({**ORDER, "coupon": ""}), headers=headers
    )

    # Then the event has that key, lane, delivery time and attributes (names lower-cased)
    result = await accepted(response)
    assert result.state == "scheduled"
    view, _ = await event_of(rig, result.id)
    assert view.key == "customer 7"
    assert view.priority is Priority.HIGH
    assert view.attributes == {"origin": "web/mobile", "trace": "abc"}
    expected = datetime.fromtimestamp(rig.clock.now(), tz=UTC) + timedelta(seconds=30)
    assert view.deliver_at == expected


async def test_an_older_writer_version_is_chosen_by_version_or_by_id(rig: Rig) -> None:
    # Given an order encoded with version 1, which lacks the coupon
    data = avro(ORDER, ORDER_V1)

    # When it is published naming version 1, then naming its schema id
    by_version = await rig.client.post(
        "/v1/topics/orders/events",
        data=data,
        headers={"Content-Type": AVRO, "Conveyor-Schema-Version": "1"},
    )
    by_id = await rig.client.post(
        "/v1/topics/orders/events",
        data=data,
        headers={"Content-Type": AVRO, "Conveyor-Schema-Id": str(rig.order_v1)},
    )

    # Then both are read with version 1 and recorded as such
    for response in (by_version, by_id):
        view, payload = await event_of(rig, (await accepted(response)).id)
        assert payload == ORDER_JSON
        assert view.schema_id == rig.order_v1


async def test_protobuf_binary_is_stored_as_protobuf_json_with_the_schema_id(rig: Rig) -> None:
    # Given a payment encoded with the subject's message
    data = protobuf.encode(rig.payment_schema, PAYMENT)

    # When it is published as Protobuf, with an idempotency key
    headers = {"Content-Type": PROTOBUF, "Idempotency-Key": "pay-42"}
    first = await rig.client.post("/v1/topics/payments/events", data=data, headers=headers)
    again = await rig.client.post("/v1/topics/payments/events", data=data, headers=headers)

    # Then the event holds protobuf's JSON mapping (int64 as a string, bytes as base64, the
    # enum by name), and the replay returns it
    result = await accepted(first)
    view, payload = await event_of(rig, result.id)
    assert payload == PAYMENT
    assert view.schema_id == rig.payment
    replay = await accepted(again, 200)
    assert (replay.id, replay.duplicate) == (result.id, True)


async def test_json_still_publishes_with_or_without_a_declared_content_type(rig: Rig) -> None:
    # When a JSON body is posted as application/json and as curl's default type
    declared = await rig.client.post("/v1/topics/ledger/events", json={"payload": {"amount": 1}})
    undeclared = await rig.client.post(
        "/v1/topics/ledger/events",
        data=b'{"payload": {"amount": 2}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    # Then both are published as before
    for response, amount in ((declared, 1), (undeclared, 2)):
        _, payload = await event_of(rig, (await accepted(response)).id)
        assert payload == {"amount": amount}


# -- refusals of binary data ----------------------------------------------------------------------
UNSUPPORTED = [
    pytest.param("plain", "", "application/xml", b"<order/>", id="an unknown media type"),
    pytest.param("plain", "", AVRO, b"\x02", id="Avro for a topic without a subject"),
    pytest.param("ledger", "", PROTOBUF, b"\x08\x01", id="Protobuf for a JSON Schema topic"),
    pytest.param("orders", "", PROTOBUF, b"\x08\x01", id="Protobuf for an Avro subject"),
    pytest.param("payments", "", AVRO, b"\x02", id="Avro for a Protobuf subject"),
    pytest.param("orders", "/batch", AVRO, b"\x02", id="Avro to the batch endpoint"),
    pytest.param("plain", "", CE_BATCH, b"[]", id="a CloudEvents batch to the single endpoint"),
    pytest.param("plain", "/batch", CE, b"{}", id="one CloudEvent to the batch endpoint"),
]


@pytest.mark.parametrize(("topic", "suffix", "content_type", "body"), UNSUPPORTED)
async def test_a_content_type_the_topic_cannot_read_is_refused_with_415(
    rig: Rig, topic: str, suffix: str, content_type: str, body: bytes
) -> None:
    # Given the logs as they are
    before = await stored(rig.node)

    # When a body of a type the endpoint or the topic does not take is posted
    response = await rig.client.post(
        f"/v1/topics/{topic}/events{suffix}", data=body, headers={"Content-Type": content_type}
    )

    # Then it is refused naming the content type, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (415, "/content-type", "media_type")
    assert await stored(rig.node) == before


UNDECODABLE = [
    pytest.param("orders", AVRO, b"\x0e", id="Avro that ends early"),
    pytest.param(
        "orders", AVRO, avro({**ORDER, "coupon": ""}) + b"\x00", id="Avro with bytes left"
    ),
    pytest.param("payments", PROTOBUF, b"\xff\xff\xff", id="Protobuf that does not parse"),
]


@pytest.mark.parametrize(("topic", "content_type", "body"), UNDECODABLE)
async def test_data_that_does_not_decode_is_refused_naming_the_payload_and_the_schema(
    rig: Rig, topic: str, content_type: str, body: bytes
) -> None:
    # Given the logs as they are
    before = await stored(rig.node)

    # When bytes that are no datum of the newest version are posted
    response = await rig.client.post(
        f"/v1/topics/{topic}/events", data=body, headers={"Content-Type": content_type}
    )

    # Then it is refused naming the payload and the rule, with the schema tried
    error = await error_of(response)
    expected_id = rig.order_v2 if topic == "orders" else rig.payment
    expected_version = 2 if topic == "orders" else 1
    assert (response.status, error.field, error.rule) == (400, "/payload", "decode")
    assert (error.schema_id, error.schema_version) == (expected_id, expected_version)
    assert await stored(rig.node) == before


BAD_HEADERS = [
    pytest.param(
        "orders-v2",
        {"Conveyor-Schema-Version": "1"},
        (400, "/conveyor-schema-version", "range"),
        id="a version below the topic's range",
    ),
    pytest.param(
        "orders",
        {"Conveyor-Schema-Version": "9"},
        (400, "/conveyor-schema-version", "exists"),
        id="a version the subject lacks",
    ),
    pytest.param(
        "orders",
        {"Conveyor-Schema-Version": "two"},
        (400, "/conveyor-schema-version", "type"),
        id="a version that is no number",
    ),
    pytest.param(
        "orders",
        {"Conveyor-Schema-Version": "2", "Conveyor-Schema-Id": "1"},
        (400, "/conveyor-schema-id", "exclusive"),
        id="a version and an id",
    ),
    pytest.param(
        "orders",
        {"Conveyor-Delay": "-1"},
        (400, "/conveyor-delay", "minimum"),
        id="a negative delay",
    ),
    pytest.param(
        "orders",
        {"Conveyor-Priority": "urgent"},
        (400, "/conveyor-priority", "enum"),
        id="an unknown priority",
    ),
    pytest.param(
        "orders",
        {"Conveyor-Deliver-At": "2030-01-01T00:00:00"},
        (400, "/conveyor-deliver-at", "format"),
        id="a time without a zone",
    ),
    pytest.param(
        "orders",
        {"Conveyor-Delay": "5", "Conveyor-Deliver-At": "2030-01-01T00:00:00Z"},
        (400, "/conveyor-delay", "exclusive"),
        id="a delay and a time",
    ),
]


@pytest.mark.parametrize(("topic", "headers", "expected"), BAD_HEADERS)
async def test_bad_metadata_headers_are_refused_naming_the_header(
    rig: Rig, topic: str, headers: dict[str, str], expected: tuple[int, str, str]
) -> None:
    # Given the logs as they are
    before = await stored(rig.node)

    # When a valid Avro order is posted with a bad header
    response = await rig.client.post(
        f"/v1/topics/{topic}/events",
        data=avro({**ORDER, "coupon": ""}),
        headers={"Content-Type": AVRO, **headers},
    )

    # Then it is refused naming that header and the rule, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == expected
    assert await stored(rig.node) == before


async def test_a_schema_id_of_another_subject_is_refused(rig: Rig) -> None:
    # When an Avro order names the Protobuf subject's schema id
    response = await rig.client.post(
        "/v1/topics/orders/events",
        data=avro(ORDER, ORDER_V1),
        headers={"Content-Type": AVRO, "Conveyor-Schema-Id": str(rig.payment)},
    )

    # Then it is refused naming the id header
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, "/conveyor-schema-id", "subject")


# -- CloudEvents: structured ----------------------------------------------------------------------
async def test_a_structured_cloudevent_becomes_an_event_with_ce_attributes(rig: Rig) -> None:
    # Given a CloudEvent with optional attributes, extensions, a partition key and a priority
    event = cloudevent(
        subject="order-7",
        time="2030-01-01T00:00:00Z",
        datacontenttype="application/json",
        dataschema="https://example.com/order.json",
        partitionkey="customer-7",
        traceparent="00-abc-def-01",
        retries=3,
        urgent=True,
        conveyorpriority="high",
    )

    # When it is published in structured mode
    response = await rig.client.post(
        "/v1/topics/plain/events", data=json.dumps(event), headers={"Content-Type": CE}
    )

    # Then its data is the payload, its attributes are ce-* strings, and partitionkey is the key
    view, payload = await event_of(rig, (await accepted(response)).id)
    assert payload == {"amount": 1}
    assert view.key == "customer-7"
    assert view.priority is Priority.HIGH
    assert view.attributes == {
        "ce-id": "evt-1",
        "ce-source": "/shop/checkout",
        "ce-type": "shop.order.placed",
        "ce-subject": "order-7",
        "ce-time": "2030-01-01T00:00:00Z",
        "ce-datacontenttype": "application/json",
        "ce-dataschema": "https://example.com/order.json",
        "ce-partitionkey": "customer-7",
        "ce-traceparent": "00-abc-def-01",
        "ce-retries": "3",
        "ce-urgent": "true",
    }
    # And the CloudEvent can be rebuilt from them (extensions as their string form)
    rebuilt = to_cloudevent(view.attributes or {}, view.payload)
    expected = {k: v for k, v in event.items() if k != "conveyorpriority"}
    assert msgspec.json.decode(msgspec.json.encode(rebuilt)) == {
        **expected,
        "retries": "3",
        "urgent": "true",
    }


async def test_a_cloudevent_delay_extension_schedules_it(rig: Rig) -> None:
    # When a CloudEvent asks for a 60 s delay
    response = await rig.client.post(
        "/v1/topics/plain/events",
        data=json.dumps(cloudevent(conveyordelay=60)),
        headers={"Content-Type": CE},
    )

    # Then it is scheduled 60 s from now, and the extension is not kept as an attribute
    result = await accepted(response)
    assert result.state == "scheduled"
    view, _ = await event_of(rig, result.id)
    assert view.deliver_at == datetime.fromtimestamp(rig.clock.now() + 60, tz=UTC)
    assert "ce-conveyordelay" not in (view.attributes or {})


async def test_a_cloudevent_with_avro_data_base64_is_decoded_to_json(rig: Rig) -> None:
    # Given a CloudEvent whose data is an Avro order written with version 1
    data = base64.b64encode(avro(ORDER, ORDER_V1)).decode()
    event = cloudevent(
        data=None,
        data_base64=data,
        datacontenttype=AVRO,
        dataschema="http://conveyor.example/v1/subjects/orders-avro/versions/1",
    )

    # When it is published
    response = await rig.client.post(
        "/v1/topics/orders/events", data=json.dumps(event), headers={"Content-Type": CE}
    )

    # Then the event holds the order's JSON form, read with the version dataschema names
    view, payload = await event_of(rig, (await accepted(response)).id)
    assert payload == ORDER_JSON
    assert view.schema_id == rig.order_v1


@pytest.mark.parametrize("attribute", ["specversion", "id", "source", "type"])
async def test_a_cloudevent_without_a_required_attribute_is_refused_naming_it(
    rig: Rig, attribute: str
) -> None:
    # Given the logs as they are
    before = await stored(rig.node)

    # When a CloudEvent lacks one of the required attributes
    event = cloudevent(**{attribute: None})
    response = await rig.client.post(
        "/v1/topics/plain/events", data=json.dumps(event), headers={"Content-Type": CE}
    )

    # Then it is refused naming that attribute, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, f"/{attribute}", "required")
    assert await stored(rig.node) == before


BAD_CLOUDEVENTS = [
    pytest.param(cloudevent(specversion="0.3"), ("/specversion", "enum"), id="version 0.3"),
    pytest.param(cloudevent(id=""), ("/id", "min_length"), id="an empty id"),
    pytest.param(cloudevent(time="yesterday"), ("/time", "format"), id="a time not RFC 3339"),
    pytest.param(cloudevent(Shout="x"), ("/Shout", "attribute_name"), id="a capital letter"),
    pytest.param(cloudevent(nested={"a": 1}), ("/nested", "type"), id="an object extension"),
    pytest.param(cloudevent(data_base64="AA=="), ("/data_base64", "exclusive"), id="both data"),
    pytest.param(
        cloudevent(data=None, data_base64="%%%"), ("/data_base64", "base64"), id="bad base64"
    ),
    pytest.param(cloudevent(conveyordelay=-5), ("/conveyordelay", "minimum"), id="bad delay"),
    pytest.param(cloudevent(partitionkey="k" * 2000), ("/partitionkey", "max_length"), id="key"),
]


@pytest.mark.parametrize(("event", "expected"), BAD_CLOUDEVENTS)
async def test_a_malformed_cloudevent_is_refused_naming_its_attribute(
    rig: Rig, event: dict[str, object], expected: tuple[str, str]
) -> None:
    # Given the logs as they are
    before = await stored(rig.node)

    # When the CloudEvent is published
    response = await rig.client.post(
        "/v1/topics/plain/events", data=json.dumps(event), headers={"Content-Type": CE}
    )

    # Then it is refused naming the attribute and the rule, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, *expected)
    assert await stored(rig.node) == before


async def test_a_cloudevent_whose_data_is_off_the_schema_names_its_place_in_data(
    rig: Rig,
) -> None:
    # When a CloudEvent's data breaks the topic's JSON Schema
    response = await rig.client.post(
        "/v1/topics/ledger/events",
        data=json.dumps(cloudevent(data={"amount": "x"})),
        headers={"Content-Type": CE},
    )

    # Then the field points into the CloudEvent's data
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (422, "/data/amount", "type")


# -- CloudEvents: idempotency ---------------------------------------------------------------------
async def test_a_cloudevent_published_twice_is_stored_once(rig: Rig) -> None:
    # Given a CloudEvent published once
    body = json.dumps(cloudevent())
    first = await accepted(
        await rig.client.post("/v1/topics/plain/events", data=body, headers={"Content-Type": CE})
    )
    after_first = await stored(rig.node)

    # When the same event (same source and id) is published again
    response = await rig.client.post(
        "/v1/topics/plain/events", data=body, headers={"Content-Type": CE}
    )

    # Then the first is returned as a duplicate, and nothing more is stored
    replay = await accepted(response, 200)
    assert (replay.id, replay.duplicate) == (first.id, True)
    assert await stored(rig.node) == after_first


async def test_another_event_under_a_used_source_and_id_is_a_conflict(rig: Rig) -> None:
    # Given a CloudEvent published
    await rig.client.post(
        "/v1/topics/plain/events", data=json.dumps(cloudevent()), headers={"Content-Type": CE}
    )
    before = await stored(rig.node)

    # When another event comes with the same source and id
    response = await rig.client.post(
        "/v1/topics/plain/events",
        data=json.dumps(cloudevent(data={"amount": 2})),
        headers={"Content-Type": CE},
    )

    # Then it is refused as a conflict, and nothing is stored
    assert response.status == 409
    assert await stored(rig.node) == before


async def test_a_long_source_makes_a_hashed_idempotency_key_that_still_deduplicates(
    rig: Rig,
) -> None:
    # Given two events whose source is longer than the key limit, differing only in id
    source = "/" + "s" * 400
    one = json.dumps(cloudevent(source=source, id="a"))
    two = json.dumps(cloudevent(source=source, id="b"))

    # When each is published, and the first again
    post = rig.client.post
    first = await accepted(
        await post("/v1/topics/plain/events", data=one, headers={"Content-Type": CE})
    )
    second = await accepted(
        await post("/v1/topics/plain/events", data=two, headers={"Content-Type": CE})
    )
    again = await accepted(
        await post("/v1/topics/plain/events", data=one, headers={"Content-Type": CE}), 200
    )

    # Then they are two events, and the replay is the first
    assert first.id != second.id
    assert (again.id, again.duplicate) == (first.id, True)


# -- CloudEvents: batch ---------------------------------------------------------------------------
async def test_a_cloudevents_batch_is_stored_in_order(rig: Rig) -> None:
    # Given two CloudEvents for two keys
    events = [cloudevent(id=f"e{n}", partitionkey=f"k{n}", data={"amount": n}) for n in range(2)]

    # When they are published as a CloudEvents batch
    response = await rig.client.post(
        "/v1/topics/ledger/events/batch",
        data=json.dumps(events),
        headers={"Content-Type": CE_BATCH},
    )

    # Then both are acknowledged in order, each with its key, id and data
    assert response.status == 201, await response.text()
    results = msgspec.json.decode(await response.read(), type=BatchPublishResult).results
    for n, result in enumerate(results):
        view, payload = await event_of(rig, result.id)
        assert (view.key, payload) == (f"k{n}", {"amount": n})
        assert (view.attributes or {})["ce-id"] == f"e{n}"


async def test_a_cloudevents_batch_with_bad_events_is_refused_whole_naming_each(
    rig: Rig,
) -> None:
    # Given a batch whose second event lacks its source and whose third lacks its type
    before = await stored(rig.node)
    events = [cloudevent(id="a"), cloudevent(id="b", source=None), cloudevent(id="c", type=None)]

    # When it is published
    response = await rig.client.post(
        "/v1/topics/plain/events/batch", data=json.dumps(events), headers={"Content-Type": CE_BATCH}
    )

    # Then it is refused naming both events by index, and none of the three is stored
    error = await error_of(response)
    assert (response.status, error.index, error.field, error.rule) == (
        400,
        1,
        "/1/source",
        "required",
    )
    assert [(e.index, e.field) for e in error.errors] == [(1, "/1/source"), (2, "/2/type")]
    assert await stored(rig.node) == before


async def test_a_cloudevents_batch_off_the_schema_names_the_event_and_its_data(
    rig: Rig,
) -> None:
    # Given a batch whose second event's data breaks the topic's JSON Schema
    before = await stored(rig.node)
    events = [cloudevent(id="a"), cloudevent(id="b", data={"amount": "x"})]

    # When it is published
    response = await rig.client.post(
        "/v1/topics/ledger/events/batch",
        data=json.dumps(events),
        headers={"Content-Type": CE_BATCH},
    )

    # Then the field points into that event's data, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.index, error.field) == (422, 1, "/1/data/amount")
    assert await stored(rig.node) == before


async def test_a_cloudevents_batch_that_is_not_an_array_is_refused(rig: Rig) -> None:
    response = await rig.client.post(
        "/v1/topics/plain/events/batch", data=b"{}", headers={"Content-Type": CE_BATCH}
    )
    error = await error_of(response)
    assert (response.status, error.rule) == (400, "type")


# -- CloudEvents: binary mode ---------------------------------------------------------------------
def binary_headers(content_type: str, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "/shop/checkout",
        "ce-type": "shop.order.placed",
        **extra,
    }


async def test_a_binary_mode_cloudevent_with_json_data_becomes_an_event(rig: Rig) -> None:
    # Given a CloudEvent in binary mode: attributes in headers, one percent-encoded
    headers = binary_headers(
        "application/json", **{"ce-partitionkey": "customer-7", "ce-note": "caf%C3%A9 au lait"}
    )

    # When it is published
    response = await rig.client.post(
        "/v1/topics/ledger/events", data=b'{"amount": 3}', headers=headers
    )

    # Then the body is its data and the headers its attributes, decoded
    view, payload = await event_of(rig, (await accepted(response)).id)
    assert payload == {"amount": 3}
    assert view.key == "customer-7"
    assert view.attributes == {
        "ce-id": "bin-1",
        "ce-source": "/shop/checkout",
        "ce-type": "shop.order.placed",
        "ce-datacontenttype": "application/json",
        "ce-partitionkey": "customer-7",
        "ce-note": "café au lait",
    }


async def test_a_binary_mode_cloudevent_with_protobuf_data_is_decoded(rig: Rig) -> None:
    # When a binary-mode CloudEvent carries a Protobuf payment
    response = await rig.client.post(
        "/v1/topics/payments/events",
        data=protobuf.encode(rig.payment_schema, PAYMENT),
        headers=binary_headers(PROTOBUF),
    )

    # Then the event holds its JSON form
    view, payload = await event_of(rig, (await accepted(response)).id)
    assert payload == PAYMENT
    assert view.schema_id == rig.payment


BAD_BINARY = [
    pytest.param({"ce-specversion": "0.3"}, (400, "/ce-specversion", "enum"), id="version 0.3"),
    pytest.param({"ce-source": ""}, (400, "/ce-source", "min_length"), id="empty source"),
    pytest.param(
        {"Content-Type": "image/png"}, (415, "/content-type", "media_type"), id="png data"
    ),
    pytest.param(
        {"Idempotency-Key": "other"}, (400, "/ce-id", "match_header"), id="another key header"
    ),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_BINARY)
async def test_a_bad_binary_mode_cloudevent_is_refused_naming_the_header(
    rig: Rig, changes: dict[str, str], expected: tuple[int, str, str]
) -> None:
    # Given the logs as they are
    before = await stored(rig.node)

    # When a binary-mode CloudEvent with a bad header is published
    response = await rig.client.post(
        "/v1/topics/plain/events",
        data=b'{"amount": 1}',
        headers={**binary_headers("application/json"), **changes},
    )

    # Then it is refused naming the header, and nothing is stored
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == expected
    assert await stored(rig.node) == before


# -- the document ---------------------------------------------------------------------------------
def test_the_openapi_document_still_describes_json_bodies_and_names_the_other_formats() -> None:
    # When the document is generated
    paths = openapi_document()["paths"]
    assert isinstance(paths, dict)

    # Then the publish operations take JSON bodies, mention the other formats and list 415
    for path in ("/v1/topics/{topic}/events", "/v1/topics/{topic}/events/batch"):
        operation = paths[path]["post"]
        assert set(operation["requestBody"]["content"]) == {"application/json"}
        assert "CloudEvents" in operation["summary"]
        assert "docs/schemas.md" in operation["summary"]
        assert "415" in operation["responses"]


async def test_avro_arrays_of_items_that_take_no_bytes_are_not_decoded(rig: Rig) -> None:
    # Given a subject whose records hold an array of nulls: a few bytes of data can claim
    # any number of them
    nulls = {
        "type": "record",
        "name": "Nulls",
        "fields": [{"name": "xs", "type": {"type": "array", "items": "null"}}],
    }
    await rig.node.registry.register("nulls", SchemaType.AVRO, json.dumps(nulls))
    await rig.node.catalog.put_topic(Topic(name="nulls", schema_settings=SchemaSettings("nulls")))
    before = await stored(rig.node)

    # When five bytes claim ten million of them
    response = await rig.client.post(
        "/v1/topics/nulls/events", data=b"\x80\xda\xc4\t\x00", headers={"Content-Type": AVRO}
    )

    # Then the data is refused as undecodable, without reading them
    error = await error_of(response)
    assert (response.status, error.field, error.rule) == (400, "/payload", "decode")
    assert "take no bytes" in error.message
    assert await stored(rig.node) == before


# -- rebuilding a CloudEvent ----------------------------------------------------------------------
ATTRIBUTES = {
    "ce-id": "e1",
    "ce-source": "/s",
    "ce-type": "t",
    "ce-datacontenttype": AVRO,
    "origin": "web",
}


def test_a_cloudevent_is_rebuilt_with_json_data_as_json_and_bytes_as_base64() -> None:
    # When an event first published as Avro is rebuilt with its stored JSON, and with bytes
    as_json = to_cloudevent(ATTRIBUTES, msgspec.Raw(b'{"id": 1}'))
    as_bytes = to_cloudevent(ATTRIBUTES, b"\x02")
    as_protobuf = to_cloudevent(ATTRIBUTES, b"\x08\x01", content_type=PROTOBUF)

    # Then JSON data says it is JSON, bytes keep the stored type unless told another, and
    # attributes that are not ce-* stay out
    assert msgspec.json.decode(msgspec.json.encode(as_json)) == {
        "specversion": "1.0",
        "id": "e1",
        "source": "/s",
        "type": "t",
        "datacontenttype": "application/json",
        "data": {"id": 1},
    }
    assert (as_bytes["data_base64"], as_bytes["datacontenttype"]) == ("Ag==", AVRO)
    assert (as_protobuf["data_base64"], as_protobuf["datacontenttype"]) == ("CAE=", PROTOBUF)


def test_a_cloudevent_cannot_be_rebuilt_without_its_required_attributes() -> None:
    with pytest.raises(ValueError, match="source"):
        to_cloudevent({"ce-id": "e1", "ce-type": "t"}, None)
