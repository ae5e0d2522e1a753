"""Binary data and CloudEvents in: the events of one publish request that is not JSON.

Avro and Protobuf bodies carry their metadata in ``Conveyor-*`` headers; CloudEvents carry
theirs as attributes (structured mode, batches) or ``ce-*`` headers (binary mode). Each event
becomes a :class:`~conveyor.wire.schemas.PublishRequest` with a JSON payload, checked as the
JSON API checks it; binary data is decoded with the registry version it was written with
(:mod:`conveyor.frontend._decoding`, :mod:`conveyor.codecs`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import unquote

import msgspec

from conveyor.codecs import cloudevents
from conveyor.codecs.media import AVRO_TYPES, PROTOBUF_TYPES, media_type
from conveyor.errors import InvalidRequest
from conveyor.frontend._decoding import Place, WriterSchemas, decoded
from conveyor.frontend._fields import (
    ATTRIBUTE_HEADER_PREFIX,
    DELAY_HEADER,
    DELIVER_AT_HEADER,
    IDEMPOTENCY_KEY,
    KEY_HEADER,
    PRIORITY_HEADER,
    SCHEMA_ID_HEADER,
    SCHEMA_VERSION_HEADER,
    Format,
    relocated,
)
from conveyor.frontend.registry.registry import SchemaRegistry
from conveyor.model import MAX_VERSION, SchemaType, Topic
from conveyor.wire.envelope import decode_body, from_msgspec, too_deep
from conveyor.wire.schemas import MAX_BATCH_EVENTS, PublishRequest

__all__ = ["Reader"]

MAX_IDEMPOTENCY_KEY = 256  # api.schemas.IdempotencyKey's max_length
_SCHEMA_TYPE: dict[str, SchemaType] = {
    **dict.fromkeys(AVRO_TYPES, SchemaType.AVRO),
    **dict.fromkeys(PROTOBUF_TYPES, SchemaType.PROTOBUF),
}
_CLOUDEVENT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_CLOUDEVENTS = msgspec.json.Decoder(
    Annotated[
        list[dict[str, msgspec.Raw]],
        msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS),
    ]
)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)

_HEADERS = Place("/content-type", "/conveyor-schema-version", "/conveyor-schema-id", "/payload")
_CE_HEADERS = Place("/content-type", "/ce-dataschema", "/ce-dataschema", "/payload")


def _structured(index: int | None) -> Place:
    prefix = "" if index is None else f"/{index}"
    return Place(
        f"{prefix}/datacontenttype",
        f"{prefix}/dataschema",
        f"{prefix}/dataschema",
        f"{prefix}/data_base64",
        index,
    )


class Reader:
    """Reads the events of one request to one topic."""

    def __init__(self, topic: Topic, registry: SchemaRegistry) -> None:
        self._writers = WriterSchemas(topic, registry)

    async def binary(
        self, headers: Mapping[str, str], body: bytes, kind: SchemaType
    ) -> PublishRequest:
        """One event of Avro or Protobuf data, its metadata in headers."""
        version = _int_header(headers, SCHEMA_VERSION_HEADER)
        schema_id = _int_header(headers, SCHEMA_ID_HEADER)
        schema = await self._writers.schema(kind, version, schema_id, _HEADERS)
        fields: dict[str, object] = {
            "key": _percent_decoded(headers, KEY_HEADER),
            "delay": headers.get(DELAY_HEADER),
            "deliver_at": headers.get(DELIVER_AT_HEADER),
            "priority": headers.get(PRIORITY_HEADER),
            "idempotency_key": headers.get(IDEMPOTENCY_KEY),
            "attributes": _attribute_headers(headers),
        }
        format_ = Format.AVRO if kind is SchemaType.AVRO else Format.PROTOBUF
        return _request(decoded(schema, body, _HEADERS), schema.version, fields, format_, None)

    async def structured(self, body: bytes) -> PublishRequest:
        """One CloudEvent in the structured JSON form."""
        obj = decode_body(_CLOUDEVENT, body, "a CloudEvent (a JSON object)")
        attributes, data, content_type = cloudevents.from_cloudevent(obj)
        return await self.cloudevent(
            attributes, data, content_type, Format.CLOUDEVENT, _structured(None)
        )

    async def binary_mode(
        self, headers: Mapping[str, str], body: bytes, content_type: str | None
    ) -> PublishRequest:
        """One CloudEvent in the HTTP binary mode: attributes in ``ce-*`` headers."""
        attributes, data, _ = cloudevents.from_binary(headers, body, content_type)
        return await self.cloudevent(
            attributes, data, content_type, Format.CLOUDEVENT_BINARY, _CE_HEADERS
        )

    async def cloudevent_batch(self, body: bytes) -> list[PublishRequest]:
        """A CloudEvents batch: every event is read, and all their problems reported."""
        expected = "a JSON array of CloudEvents"
        try:
            objs = decode_body(_CLOUDEVENTS, body, expected)
        except InvalidRequest as error:
            at = re.match(r"/([0-9]+)", error.field or "")
            error.index = int(at.group(1)) if at else None
            raise
        events: list[PublishRequest] = []
        problems: list[InvalidRequest] = []
        for index, obj in enumerate(objs):
            try:
                attributes, data, content_type = cloudevents.from_cloudevent(obj, index=index)
                events.append(
                    await self.cloudevent(
                        attributes,
                        data,
                        content_type,
                        Format.CLOUDEVENTS_BATCH,
                        _structured(index),
                    )
                )
            except InvalidRequest as e:
                problems.append(e)
        if problems:
            raise _batch_error(problems, len(objs))
        return events

    async def cloudevent(
        self,
        attributes: dict[str, str],
        data: cloudevents.Data,
        content_type: str | None,
        format_: Format,
        place: Place,
    ) -> PublishRequest:
        """One CloudEvent: its data as JSON, its attributes ``ce-*``, its Conveyor
        extensions as the event's delay, time and priority."""
        version = await self._writers.dataschema_version(attributes.get("ce-dataschema"), place)
        payload, version = await self._payload(data, content_type, version, place)
        fields: dict[str, object] = {
            "key": attributes.get("ce-partitionkey"),
            "delay": attributes.pop("ce-conveyordelay", None),
            "deliver_at": attributes.pop("ce-conveyordeliverat", None),
            "priority": attributes.pop("ce-conveyorpriority", None),
            "idempotency_key": _identity(attributes),
            "attributes": attributes,
        }
        return _request(payload, version, fields, format_, place.index)

    async def _payload(
        self, data: cloudevents.Data, content_type: str | None, version: int | None, place: Place
    ) -> tuple[msgspec.Raw, int | None]:
        if data is None:
            return msgspec.Raw(b"null"), version
        if isinstance(data, msgspec.Raw):
            return data, version  # the "data" member: JSON, the payload as it is
        media = media_type(content_type)
        kind = _SCHEMA_TYPE.get(media or "")
        if kind is not None:
            schema = await self._writers.schema(kind, version, None, place)
            return decoded(schema, data, place), schema.version
        if not cloudevents.is_json_media_type(media):
            raise InvalidRequest(
                f"data of type {media!r} cannot be published: payloads are JSON, or Avro or "
                "Protobuf decoded to JSON",
                field=place.media,
                rule="media_type",
                status=415,
                index=place.index,
            )
        try:
            msgspec.json.decode(data)
        except RecursionError as e:
            error = too_deep("the data", place.payload)
            error.index = place.index
            raise error from e
        except msgspec.DecodeError as e:
            raise InvalidRequest(
                f"the data is not valid JSON: {e}",
                field=place.payload,
                rule="json",
                index=place.index,
            ) from e
        return msgspec.Raw(data), version


def _request(
    payload: msgspec.Raw,
    version: int | None,
    fields: Mapping[str, object],
    format_: Format,
    index: int | None,
) -> PublishRequest:
    """A request from metadata given as text, checked as the JSON API checks it."""
    given = {name: value for name, value in fields.items() if value is not None}
    given["payload"] = payload
    if version is not None:
        given["schema_version"] = version
    try:
        return msgspec.convert(given, PublishRequest, strict=False)
    except msgspec.ValidationError as e:
        error = from_msgspec(e)
        prefix = "" if index is None else f"/events/{index}"
        error.field = relocated(prefix + (error.field or ""), format_)
        error.index = index
        raise error from e


def _batch_error(problems: list[InvalidRequest], total: int) -> InvalidRequest:
    first = problems[0]
    error = InvalidRequest(
        f"{len(problems)} of {total} events are invalid; none was stored. First: {first.message}",
        field=first.field,
        rule=first.rule,
        status=first.status,
        index=first.index,
        errors=problems,
    )
    error.schema_id, error.schema_version = first.schema_id, first.schema_version
    return error


def _identity(attributes: Mapping[str, str]) -> str:
    """A CloudEvent's idempotency key: ``<source>/<id>`` (unique per event, says the spec),
    its tail replaced by a hash of the whole when longer than the key limit."""
    key = f"{attributes['ce-source']}/{attributes['ce-id']}"
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{key[: MAX_IDEMPOTENCY_KEY - len(digest) - 1]}#{digest}"


# -- headers --------------------------------------------------------------------------------
def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value.strip()) or not 1 <= int(value) <= MAX_VERSION:
        raise InvalidRequest(
            f"header {name} must be a whole number from 1 to {MAX_VERSION}, not {value!r}",
            field="/" + name.lower(),
            rule="type",
        )
    return int(value)


def _percent_decoded(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as e:
        raise InvalidRequest(
            f"header {name} is not percent-encoded UTF-8: {e}",
            field="/" + name.lower(),
            rule="format",
        ) from e


def _attribute_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """``Conveyor-Attr-<name>: <value>`` headers as attributes: names lower-cased (HTTP
    header names carry no case), values percent-decoded."""
    attributes: dict[str, str] = {}
    for header in headers:
        name = header.lower()
        if name.startswith(ATTRIBUTE_HEADER_PREFIX):
            value = _percent_decoded(headers, header)
            attributes[name.removeprefix(ATTRIBUTE_HEADER_PREFIX)] = value or ""
    return attributes or None
