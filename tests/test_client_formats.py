"""Formats in through the SDK and the CLI, against a real node on 127.0.0.1 on every store.

The async client talks to an in-process server on the test's loop; the blocking client and
``conveyor publish`` to the same kind of node on a loop in a thread of its own.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from conveyor.api.app import build_app
from conveyor.cli import app
from conveyor.client import AsyncClient, Client
from conveyor.codecs import protobuf
from conveyor.errors import InvalidRequest
from conveyor.model import Priority, SchemaSettings, SchemaType, Topic
from conveyor.node import Node
from conveyor.wire.schemas import EventView, PublishResult
from dead_letters_platform import Rig, ThreadedPlatform, dead_letter_rig

AVRO = "application/vnd.apache.avro"
PROTOBUF = "application/x-protobuf"
UNREACHABLE = "http://127.0.0.1:9"

ORDER_V1: dict[str, object] = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "tag", "type": "bytes"},
    ],
}
ORDER_V2: dict[str, object] = {
    **ORDER_V1,
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "tag", "type": "bytes"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
PAYMENT_PROTO = 'syntax = "proto3";\nmessage Payment { int64 id = 1; string memo = 2; }\n'


@dataclass
class Schemas:
    order_v1: int
    order_v2: int
    payment: protobuf.ProtoSchema


async def bind_schemas(node: Node) -> Schemas:
    """Subjects ``orders-avro`` (two versions) and ``payments-proto``, bound to the topics
    ``avro-orders`` and ``payments``."""
    v1, _ = await node.registry.register("orders-avro", SchemaType.AVRO, json.dumps(ORDER_V1))
    v2, _ = await node.registry.register("orders-avro", SchemaType.AVRO, json.dumps(ORDER_V2))
    pay, _ = await node.registry.register("payments-proto", SchemaType.PROTOBUF, PAYMENT_PROTO)
    await node.catalog.put_topic(
        Topic(name="avro-orders", schema_settings=SchemaSettings("orders-avro"))
    )
    await node.catalog.put_topic(
        Topic(name="payments", schema_settings=SchemaSettings("payments-proto"))
    )
    assert isinstance(pay.parsed, protobuf.ProtoSchema)
    return Schemas(v1.id, v2.id, pay.parsed)


def avro(value: dict[str, object], schema: dict[str, object]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return out.getvalue()


def payload_of(view: EventView) -> object:
    return msgspec.json.decode(bytes(view.payload))


@pytest.fixture
async def rig(store_url: str) -> AsyncIterator[tuple[Rig, Schemas]]:
    async with dead_letter_rig(store_url) as started:
        yield started, await bind_schemas(started.node)


@pytest.fixture
async def client(rig: tuple[Rig, Schemas]) -> AsyncIterator[AsyncClient]:
    server: TestServer = TestServer(build_app(rig[0].node), host="127.0.0.1")
    await server.start_server()
    try:
        async with AsyncClient(str(server.make_url(""))) as conveyor:
            yield conveyor
    finally:
        await server.close()


@pytest.fixture
def platform(store_url: str) -> Iterator[tuple[ThreadedPlatform, Schemas]]:
    started = ThreadedPlatform(store_url)
    started.start()
    try:
        yield started, started.call(bind_schemas(started.rig.node))
    finally:
        started.stop()


# -- the async client -----------------------------------------------------------------------------
async def test_avro_data_is_published_with_its_metadata_and_read_back_as_json(
    rig: tuple[Rig, Schemas], client: AsyncClient
) -> None:
    # Given an order written with version 1 of the subject
    _, schemas = rig
    data = avro({"id": 7, "tag": b"\x01\xfe"}, ORDER_V1)

    # When it is published encoded, with metadata that must survive header encoding
    result = await client.publish_encoded(
        "avro-orders",
        data,
        AVRO,
        key="customer 7/ü",
        attributes={"origin": "web, mobile", "trace": "a%b"},
        priority=Priority.HIGH,
        schema_version=1,
        idempotency_key="order-7",
    )
    again = await client.publish_encoded(
        "avro-orders",
        data,
        AVRO,
        key="customer 7/ü",
        attributes={"origin": "web, mobile", "trace": "a%b"},
        priority=Priority.HIGH,
        schema_version=1,
        idempotency_key="order-7",
    )

    # Then the event holds the JSON form, read with version 1, and its metadata as given
    view = await client.get_event(result.id)
    assert payload_of(view) == {"id": 7, "tag": "\u0001\u00fe"}
    assert view.schema_id == schemas.order_v1
    assert view.key == "customer 7/ü"
    assert view.attributes == {"origin": "web, mobile", "trace": "a%b"}
    assert view.priority is Priority.HIGH
    # And the same publish again is its duplicate
    assert (again.id, again.duplicate) == (result.id, True)


async def test_protobuf_and_json_data_are_published_encoded(
    rig: tuple[Rig, Schemas], client: AsyncClient
) -> None:
    # Given a payment in Protobuf and an order's JSON form
    _, schemas = rig
    payment = protobuf.encode(schemas.payment, {"id": "5", "memo": "rent"})

    # When both are published encoded
    paid = await client.publish_encoded("payments", payment, PROTOBUF)
    ordered = await client.publish_encoded(
        "avro-orders", b'{"id": 1, "tag": ""}', "application/json"
    )

    # Then each event holds its JSON, checked against the newest version
    assert payload_of(await client.get_event(paid.id)) == {"id": "5", "memo": "rent"}
    view = await client.get_event(ordered.id)
    assert (payload_of(view), view.schema_id) == ({"id": 1, "tag": ""}, schemas.order_v2)


async def test_data_that_does_not_decode_raises_naming_the_payload(client: AsyncClient) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await client.publish_encoded("avro-orders", b"\x0e", AVRO)
    assert (refused.value.status, refused.value.field, refused.value.rule) == (
        400,
        "/payload",
        "decode",
    )


async def test_a_cloudevent_is_published_once_however_often_it_is_sent(
    rig: tuple[Rig, Schemas], client: AsyncClient
) -> None:
    # Given a CloudEvent whose data is Avro bytes
    _, schemas = rig
    event: dict[str, object] = {
        "id": "evt-1",
        "source": "/shop",
        "type": "order.placed",
        "datacontenttype": AVRO,
        "partitionkey": "customer-7",
        "data": avro({"id": 9, "tag": b"", "note": "hi"}, ORDER_V2),
    }

    # When it is published twice
    first = await client.publish_cloudevent("avro-orders", event)
    second = await client.publish_cloudevent("avro-orders", event)

    # Then one event holds its data as JSON, keyed by its partition key
    view = await client.get_event(first.id)
    assert payload_of(view) == {"id": 9, "tag": "", "note": "hi"}
    assert (view.key, view.schema_id) == ("customer-7", schemas.order_v2)
    assert (view.attributes or {})["ce-source"] == "/shop"
    assert (second.id, second.duplicate) == (first.id, True)


async def test_a_cloudevent_without_a_source_raises_naming_it(client: AsyncClient) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await client.publish_cloudevent("orders", {"id": "1", "type": "t", "data": {}})
    assert (refused.value.field, refused.value.rule) == ("/source", "required")


@pytest.mark.parametrize(
    ("content_type", "options"),
    [
        pytest.param(AVRO, {"attributes": {"Origin": "web"}}, id="an attribute name with case"),
        pytest.param(AVRO, {"attributes": {"a b": "web"}}, id="an attribute name with a space"),
        pytest.param("application/cloudevents+json", {"key": "k"}, id="metadata for a CE"),
        pytest.param(
            AVRO, {"delay": 1, "deliver_at": datetime(2030, 1, 1, tzinfo=UTC)}, id="delay and time"
        ),
    ],
)
async def test_metadata_that_cannot_travel_is_refused_before_any_request(
    content_type: str, options: dict[str, object]
) -> None:
    async with AsyncClient(UNREACHABLE) as conveyor:
        with pytest.raises(ValueError):  # noqa: PT011 (each case words its own reason)
            await conveyor.publish_encoded("t", b"", content_type, **options)  # type: ignore[arg-type]


# -- the blocking client and the CLI --------------------------------------------------------------
def test_the_blocking_client_publishes_encoded_data_and_cloudevents(
    platform: tuple[ThreadedPlatform, Schemas],
) -> None:
    started, schemas = platform
    with Client(started.url) as conveyor:
        # When an order is published encoded, and a CloudEvent
        encoded = conveyor.publish_encoded(
            "avro-orders", avro({"id": 1, "tag": b""}, ORDER_V1), AVRO, schema_version=1
        )
        event = conveyor.publish_cloudevent(
            "orders", {"id": "e", "source": "/s", "type": "t", "data": {"n": 1}}
        )

        # Then both are stored as JSON
        view = conveyor.get_event(encoded.id)
        assert (payload_of(view), view.schema_id) == ({"id": 1, "tag": ""}, schemas.order_v1)
        assert payload_of(conveyor.get_event(event.id)) == {"n": 1}


def test_conveyor_publish_sends_a_data_file_with_its_content_type(
    platform: tuple[ThreadedPlatform, Schemas], tmp_path: Path
) -> None:
    # Given an Avro order in a file
    started, schemas = platform
    path = tmp_path / "order.avro"
    path.write_bytes(avro({"id": 3, "tag": b"\xff"}, ORDER_V1))

    # When it is published with conveyor publish
    result = CliRunner().invoke(
        app,
        [
            "publish",
            "avro-orders",
            "--data-file",
            str(path),
            "--content-type",
            AVRO,
            "--schema-version",
            "1",
            "--key",
            "k",
            "--json",
            "--server",
            started.url,
        ],
    )

    # Then it is stored as JSON, read with version 1
    assert result.exit_code == 0, result.output
    published = msgspec.json.decode(result.stdout, type=PublishResult)
    with Client(started.url) as conveyor:
        view = conveyor.get_event(published.id)
    assert (payload_of(view), view.schema_id, view.key) == (
        {"id": 3, "tag": "\u00ff"},
        schemas.order_v1,
        "k",
    )


def test_conveyor_publish_with_a_json_payload_takes_a_schema_version(
    platform: tuple[ThreadedPlatform, Schemas],
) -> None:
    # When an order's JSON form is published naming version 1
    started, schemas = platform
    result = CliRunner().invoke(
        app,
        [
            "publish",
            "avro-orders",
            '{"id": 4, "tag": ""}',
            "--schema-version",
            "1",
            "--json",
            "--server",
            started.url,
        ],
    )

    # Then it is checked against and recorded with version 1
    assert result.exit_code == 0, result.output
    published = msgspec.json.decode(result.stdout, type=PublishResult)
    with Client(started.url) as conveyor:
        assert conveyor.get_event(published.id).schema_id == schemas.order_v1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["t"], "give a JSON payload or --data-file", id="neither"),
        pytest.param(["t", "{}", "--data-file", "x"], "one of them", id="both"),
        pytest.param(["t", "{}", "--content-type", AVRO], "describes --data-file", id="type"),
        pytest.param(["t", "--data-file", "/nonexistent/x"], "cannot read", id="missing file"),
    ],
)
def test_conveyor_publish_refuses_a_malformed_input_before_any_request(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["publish", *args, "--server", UNREACHABLE])
    assert result.exit_code == 2
    assert message in result.output
