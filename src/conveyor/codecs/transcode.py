"""Formats out: an event's canonical JSON in the encoding, schema version and envelope its
subscription chose (its :class:`~conveyor.model.DeliveryFormat`).

* **Avro** — the JSON is written with the writer's schema; with a reader version, it is read
  back with the writer's and the reader's schemas (Avro schema resolution: a field the reader
  added takes its default, a field it removed disappears, numbers promote) and written with
  the reader's. Logical types are left as their underlying types, as in the canonical form.
* **Protobuf** — the JSON is encoded with the writer's message; with a reader version, it is
  parsed with the reader's message and the fields it does not know are dropped.
* **JSON with a reader version** — the reader's view of the event, as its canonical JSON.
  A JSON Schema subject defines no resolution: its events go as written.
* **CloudEvents** — the result wrapped by :func:`conveyor.codecs.envelope.cloud_event`.

A :class:`Route` is built once per (writer, reader) pair of versions; which versions, and what
becomes of an event that cannot be encoded, is the delivery layer's business
(:mod:`conveyor.delivery.transcode`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import msgspec

from conveyor.codecs import protobuf
from conveyor.codecs.avro import AvroCodec
from conveyor.codecs.envelope import cloud_event
from conveyor.codecs.media import BINARY_CONTENT_TYPES, CLOUDEVENTS_CONTENT_TYPE
from conveyor.codecs.schema import RegisteredSchema
from conveyor.model import DeliveryFormat, Event, SchemaType

__all__ = ["Encoded", "Route", "encoded", "transcode"]

_NULL = msgspec.Raw(b"null")


class Route:
    """How events written with one schema go out in one reader version (or the writer's).

    Args:
        writer: the version the events were written with.
        reader: the version the subscription reads (``writer`` itself when it names none).

    Raises:
        Exception: a schema does not compile (whatever its parser raises).
    """

    def __init__(self, writer: RegisteredSchema, reader: RegisteredSchema) -> None:
        self.kind = writer.type
        self.writer_id = writer.id
        self.reader_id = reader.id
        self.reader_version = reader.version
        self.same = writer.id == reader.id
        self._avro: tuple[AvroCodec, AvroCodec] | None = None
        self._proto: tuple[protobuf.ProtoSchema, protobuf.ProtoSchema] | None = None
        if self.kind is SchemaType.AVRO:
            w = AvroCodec.parse(writer.definition)
            r = w if self.same else AvroCodec.parse(reader.definition)
            self._avro = (w, r)
        elif self.kind is SchemaType.PROTOBUF:
            self._proto = (
                cast("protobuf.ProtoSchema", writer.parsed),
                cast("protobuf.ProtoSchema", reader.parsed),
            )

    def binary(self, value: object) -> bytes:
        """The event in its subject's binary encoding, in the reader's version."""
        if self._avro is not None:
            writer, reader = self._avro
            data = writer.encode(value)
            return data if self.same else writer.resolve(data, reader)
        if self._proto is not None:
            writer_msg, reader_msg = self._proto
            data = protobuf.encode(writer_msg, cast("Mapping[str, object]", value))
            if self.same:
                return data
            message = reader_msg.message_class.FromString(data)
            message.DiscardUnknownFields()
            out: bytes = message.SerializeToString(deterministic=True)
            return out
        raise ValueError(f"a {self.kind.value} schema has no binary encoding")

    def json(self, payload: bytes) -> bytes:
        """The event as the reader's canonical JSON."""
        if self.same or self.kind is SchemaType.JSON:
            return payload
        value = msgspec.json.decode(payload)
        if self._avro is not None:
            writer, reader = self._avro
            resolved = writer.decode(writer.encode(value), reader)
        else:
            writer_msg, reader_msg = cast(
                "tuple[protobuf.ProtoSchema, protobuf.ProtoSchema]", self._proto
            )
            data = protobuf.encode(writer_msg, cast("Mapping[str, object]", value))
            resolved = protobuf.decode(reader_msg, data)
        return msgspec.json.encode(resolved)


def transcode(
    fmt: DeliveryFormat, payload: bytes, route: Route | None
) -> tuple[bytes, bytes | None]:
    """An event's stored payload in ``fmt``'s encoding and reader version.

    Args:
        fmt: the subscription's format.
        payload: the event's canonical JSON, as stored.
        route: the event's route (``None``: the event has no schema; it goes as stored).

    Raises:
        ValueError: the event cannot be encoded (the message names the encoding and the
            schema); encoding is deterministic, so trying again would fail the same way.

    Returns:
        The JSON payload (converted to the reader's version when it differs) and the binary
        data (``None`` for a JSON encoding).
    """
    data: bytes | None = None
    try:
        if fmt.encoding != "json" and route is not None:
            data = route.binary(msgspec.json.decode(payload))
        elif route is not None and not route.same:
            payload = route.json(payload)
    except Exception as e:  # the codecs raise many types; all mean "does not fit"
        schema = "" if route is None else f" with schema {route.reader_id}"
        raise ValueError(f"cannot encode the event as {fmt.encoding}{schema}: {e}") from e
    return payload, data


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event as its subscriber receives it (the encoded fields of a push's event).

    Attributes:
        payload: the JSON that goes in the push's ``payload`` (``null`` beside binary data).
        content_type: ``None`` for JSON, else the data's or the CloudEvent's media type.
        data: the binary data in base64, when it goes beside the payload.
        schema_id: the schema the data follows (the reader's), if any.
        schema_version: that schema's version, if any.
    """

    payload: msgspec.Raw
    content_type: str | None
    data: str | None
    schema_id: int | None
    schema_version: int | None


def encoded(
    fmt: DeliveryFormat, event: Event, payload: bytes, data: bytes | None, route: Route | None
) -> Encoded:
    """The event as its subscriber receives it, from what :func:`transcode` gave."""
    schema_id = None if route is None else route.reader_id
    version = None if route is None else route.reader_version
    content_type = BINARY_CONTENT_TYPES.get(fmt.encoding) if data is not None else None
    text = None if data is None else base64.b64encode(data).decode("ascii")
    out = msgspec.Raw(payload)
    if fmt.cloudevents:
        out = cloud_event(event, payload if data is None else None, text, content_type, schema_id)
        content_type, text = CLOUDEVENTS_CONTENT_TYPE, None
    elif data is not None:
        out = _NULL
    return Encoded(out, content_type, text, schema_id, version)
