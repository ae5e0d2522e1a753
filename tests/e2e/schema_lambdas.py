"""Lambdas of the schema round trip: one subscription per delivery format, served by a real
``conveyor worker``.

Every handler call appends one JSON line to the file named by ``RECORD_FILE``: the
subscription, the event id, what the handler decoded (as plain JSON values), and the format
the context reports.
"""

from __future__ import annotations

import json
import os

import msgspec
from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

from conveyor import EventContext, Lambda
from conveyor.codecs import protobuf

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
# Version 2 drops `note` and adds `currency` with a default (BACKWARD compatible).
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
PROTO = """
syntax = "proto3";
package shop;
message Order { int32 id = 1; string sku = 2; int32 qty = 3; repeated string tags = 4; }
"""
OrderMessage = protobuf.parse(PROTO).message_class  # as protoc's generated class would be

AVRO_TOPIC = "avro-orders"
PROTO_TOPIC = "proto-orders"

app = Lambda("schemas")
_record = os.environ.get("RECORD_FILE", "record.jsonl")


class Order(msgspec.Struct):
    """Version 1 of the Avro order (bytes in the canonical form: code points 0-255)."""

    id: int
    sku: str
    blob: str
    note: str | None = None


def _write(ctx: EventContext, payload: object) -> None:
    if isinstance(payload, OrderMessage):
        payload = json_format.MessageToDict(payload, preserving_proto_field_name=True)
    line = json.dumps(
        {
            "sub": ctx.subscription,
            "id": ctx.id,
            "payload": msgspec.to_builtins(payload),
            "content_type": ctx.content_type,
            "schema_id": ctx.schema_id,
            "schema_version": ctx.schema_version,
            "cloudevent": ctx.cloudevent,
        }
    )
    with open(_record, "a") as f:
        f.write(line + "\n")


@app.handler(AVRO_TOPIC, subscription="avro-json")
async def avro_json(order: Order, ctx: EventContext) -> None:
    """JSON, as stored."""
    _write(ctx, order)


@app.handler(AVRO_TOPIC, subscription="avro-avro", encoding="avro")
async def avro_avro(order: dict[str, object], ctx: EventContext) -> None:
    """Avro binary in the writer's version."""
    _write(ctx, order)


@app.handler(AVRO_TOPIC, subscription="avro-v2", encoding="avro", schema_version=2)
async def avro_v2(order: dict[str, object], ctx: EventContext) -> None:
    """Avro binary in version 2, resolved from the writer's."""
    _write(ctx, order)


@app.handler(AVRO_TOPIC, subscription="avro-ce", encoding="avro", cloudevents=True)
async def avro_ce(order: Order, ctx: EventContext) -> None:
    """A CloudEvent of Avro binary."""
    _write(ctx, order)


@app.handler(AVRO_TOPIC, subscription="avro-json-ce", cloudevents=True)
async def avro_json_ce(order: dict[str, object], ctx: EventContext) -> None:
    """A CloudEvent of JSON."""
    _write(ctx, order)


@app.handler(PROTO_TOPIC, subscription="proto-json")
async def proto_json(order: dict[str, object], ctx: EventContext) -> None:
    """JSON, as stored."""
    _write(ctx, order)


@app.handler(PROTO_TOPIC, subscription="proto-proto", encoding="protobuf")
async def proto_proto(order: OrderMessage, ctx: EventContext) -> None:  # type: ignore[valid-type]
    """Protobuf binary, into the generated message class."""
    _write(ctx, order)


@app.handler(PROTO_TOPIC, subscription="proto-ce", encoding="protobuf", cloudevents=True)
async def proto_ce(order: dict[str, object], ctx: EventContext) -> None:
    """A CloudEvent of Protobuf binary, into a dict through the registry's schema."""
    _write(ctx, order)


SUBSCRIPTIONS = {
    AVRO_TOPIC: ["avro-json", "avro-avro", "avro-v2", "avro-ce", "avro-json-ce"],
    PROTO_TOPIC: ["proto-json", "proto-proto", "proto-ce"],
}
