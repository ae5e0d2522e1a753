"""Formats in: an HTTP publish in any accepted format, as :class:`PublishRequest` s with JSON
payloads.

Conveyor keeps every payload as JSON: Avro in the canonical JSON form of
:mod:`~conveyor.frontend.registry.avro_json` (a union is its branch's value, bytes and fixed
are strings of code points 0-255, a logical type is its underlying type), Protobuf in
protobuf's JSON mapping with the ``.proto`` field names. This module converts at the HTTP
edge; the publish path then validates the JSON against the registry version the data was
written with, which each request names in ``schema_version``, and records its id.

By ``Content-Type`` (see docs/schemas.md, "Formats in"):

* ``application/json`` (or none, or what HTTP tools send unasked: form-urlencoded,
  octet-stream, text/plain): a :class:`PublishRequest` (``/events``) or a
  :class:`BatchPublishRequest` (``/events/batch``), as before formats existed.
* Avro and Protobuf binary (``/events`` only): the body is one event's data, written with a
  version of the topic's subject (``Conveyor-Schema-Version`` or ``Conveyor-Schema-Id``,
  else the newest the topic admits); metadata in ``Conveyor-*`` headers.
* CloudEvents: structured (``application/cloudevents+json``, ``/events``), batch
  (``application/cloudevents-batch+json``, ``/events/batch``, atomic) and binary mode (a
  ``ce-specversion`` header, ``/events``); see :mod:`conveyor.frontend.cloudevents`.

Any other type is refused with 415, naming ``/content-type``.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import unquote

import msgspec
from aiohttp import hdrs, web

from conveyor.errors import InvalidRequest
from conveyor.frontend import cloudevents
from conveyor.frontend._decoding import Place, WriterSchemas, decoded
from conveyor.frontend.registry.registry import SchemaRegistry
from conveyor.model import MAX_VERSION, SchemaType, Topic
from conveyor.wire.envelope import decode_body, from_msgspec, too_deep
from conveyor.wire.schemas import MAX_BATCH_EVENTS, BatchPublishRequest, PublishRequest

__all__ = [
    "AVRO_TYPES",
    "CLOUDEVENTS_BATCH_TYPE",
    "CLOUDEVENT_TYPE",
    "PROTOBUF_TYPES",
    "Format",
    "detect_format",
    "relocate",
    "requests_from_http",
]

JSON_TYPE = "application/json"
# What HTTP tools send when told nothing (curl -d, fetch with a string, aiohttp with bytes):
# read as JSON, as every body was before formats existed.
UNDECLARED_TYPES = ("application/x-www-form-urlencoded", "application/octet-stream", "text/plain")
AVRO_TYPES = ("application/vnd.apache.avro", "avro/binary", "application/avro")
PROTOBUF_TYPES = (
    "application/x-protobuf",
    "application/protobuf",
    "application/vnd.google.protobuf",
)
CLOUDEVENT_TYPE = "application/cloudevents+json"
CLOUDEVENTS_BATCH_TYPE = "application/cloudevents-batch+json"

IDEMPOTENCY_KEY = "Idempotency-Key"
KEY_HEADER = "Conveyor-Key"
DELAY_HEADER = "Conveyor-Delay"
DELIVER_AT_HEADER = "Conveyor-Deliver-At"
PRIORITY_HEADER = "Conveyor-Priority"
SCHEMA_VERSION_HEADER = "Conveyor-Schema-Version"
SCHEMA_ID_HEADER = "Conveyor-Schema-Id"
ATTRIBUTE_HEADER_PREFIX = "conveyor-attr-"  # compared lower-cased
CE_SPECVERSION_HEADER = "ce-specversion"
MAX_IDEMPOTENCY_KEY = 256  # api.schemas.IdempotencyKey's max_length


class Format(enum.Enum):
    """How a publish request's body is written."""

    JSON = "json"
    AVRO = "avro"
    PROTOBUF = "protobuf"
    CLOUDEVENT = "cloudevent"
    CLOUDEVENTS_BATCH = "cloudevents-batch"
    CLOUDEVENT_BINARY = "cloudevent-binary"


_BY_MEDIA: dict[str, Format] = {
    JSON_TYPE: Format.JSON,
    **dict.fromkeys(UNDECLARED_TYPES, Format.JSON),
    **dict.fromkeys(AVRO_TYPES, Format.AVRO),
    **dict.fromkeys(PROTOBUF_TYPES, Format.PROTOBUF),
    CLOUDEVENT_TYPE: Format.CLOUDEVENT,
    CLOUDEVENTS_BATCH_TYPE: Format.CLOUDEVENTS_BATCH,
}
_SINGLE = frozenset(
    {Format.JSON, Format.AVRO, Format.PROTOBUF, Format.CLOUDEVENT, Format.CLOUDEVENT_BINARY}
)
_BATCH = frozenset({Format.JSON, Format.CLOUDEVENTS_BATCH})
_SCHEMA_TYPE: dict[str, SchemaType] = {
    **dict.fromkeys(AVRO_TYPES, SchemaType.AVRO),
    **dict.fromkeys(PROTOBUF_TYPES, SchemaType.PROTOBUF),
}
_STRUCTURED = (Format.CLOUDEVENT, Format.CLOUDEVENTS_BATCH)

_PUBLISH = msgspec.json.Decoder(PublishRequest)
_BATCH_PUBLISH = msgspec.json.Decoder(BatchPublishRequest)
_CLOUDEVENT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_CLOUDEVENTS = msgspec.json.Decoder(
    Annotated[
        list[dict[str, msgspec.Raw]],
        msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS),
    ]
)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ENVELOPE = '{"payload": <the event>} (with key, attributes, delay … beside payload)'
_BATCH_ENVELOPE = '{"events": [{"payload": <an event>}, …]}'
_BARE_HINT = f"an event is sent in an envelope, {_ENVELOPE}: to publish this JSON, wrap it so"
_OTHER_FORMATS = " (send Avro, Protobuf or CloudEvents with their own Content-Type)"
_EVENT_PLACE = re.compile(r"^/events/[0-9]+")

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


# -- the entry points -----------------------------------------------------------------------
def detect_format(request: web.Request) -> Format | None:
    """The format of a publish request: by Content-Type, except that a ``ce-specversion``
    header makes any body but a structured CloudEvent a binary-mode CloudEvent.

    Returns:
        The format, or ``None`` for a media type Conveyor does not read.
    """
    media = _media_type(request.headers.get(hdrs.CONTENT_TYPE)) or JSON_TYPE
    found = _BY_MEDIA.get(media)
    if CE_SPECVERSION_HEADER in request.headers and found not in _STRUCTURED:
        return Format.CLOUDEVENT_BINARY
    return found


async def requests_from_http(
    request: web.Request, topic: Topic, registry: SchemaRegistry, *, batch: bool
) -> list[PublishRequest]:
    """Read a publish request in any accepted format.

    Args:
        request: the HTTP request to ``/v1/topics/{topic}/events`` (or ``/events/batch``).
        topic: its topic.
        registry: the schema registry, for binary data.
        batch: whether it is the batch endpoint.

    Raises:
        InvalidRequest: 415 for a content type not accepted at this endpoint (or binary data
            for a topic without a subject of its type); 400 for bad metadata, a bad
            CloudEvent or data that does not decode (``rule`` ``decode``, with the schema's
            id and version); nothing is stored.
        msgspec.ValidationError, msgspec.DecodeError: a JSON body is malformed (400 by the
            error middleware).

    Returns:
        The events, in order, with JSON payloads.
    """
    found = detect_format(request)
    if found is None or found not in (_BATCH if batch else _SINGLE):
        raise _unsupported(request, topic, batch=batch)
    body = await request.read()
    reader = _Reader(topic, registry)
    if found is Format.JSON:
        return _json_requests(request, body, batch=batch)
    if found is Format.CLOUDEVENTS_BATCH:
        return await reader.cloudevent_batch(body)
    if found is Format.CLOUDEVENT:
        obj = decode_body(_CLOUDEVENT, body, "a CloudEvent (a JSON object)")
        attributes, data, content_type = cloudevents.from_cloudevent(obj)
        event = await reader.cloudevent(attributes, data, content_type, found, _structured(None))
        _match_header(request, event, "/id")
        return [event]
    if found is Format.CLOUDEVENT_BINARY:
        content_type = request.headers.get(hdrs.CONTENT_TYPE)
        attributes, data, _ = cloudevents.from_binary(request.headers, body, content_type)
        event = await reader.cloudevent(attributes, data, content_type, found, _CE_HEADERS)
        _match_header(request, event, "/ce-id")
        return [event]
    kind = SchemaType.AVRO if found is Format.AVRO else SchemaType.PROTOBUF
    return [await reader.binary(request.headers, body, kind)]


def relocate(error: InvalidRequest, request: web.Request) -> None:
    """Point the fields of an error the publish path raised at the places in ``request``
    they came from: ``/conveyor-delay`` for a header, ``/data`` for a CloudEvent's data,
    ``/2/source`` in a CloudEvents batch. A JSON request's fields are left as they are."""
    found = detect_format(request)
    if found is None or found is Format.JSON:
        return
    error.field = _relocated(error.field, found)
    for problem in error.errors:
        problem.field = _relocated(problem.field, found)


# -- JSON -----------------------------------------------------------------------------------
def _json_requests(request: web.Request, body: bytes, *, batch: bool) -> list[PublishRequest]:
    # Each payload's nesting is measured by the publish path: the envelope's fields are typed.
    try:
        if batch:
            return decode_body(_BATCH_PUBLISH, body, _BATCH_ENVELOPE, whole_depth=False).events
        req = decode_body(_PUBLISH, body, _ENVELOPE, whole_depth=False)
    except InvalidRequest as e:
        e.message += _hint(e, request, batch=batch)
        raise
    header_key = request.headers.get(IDEMPOTENCY_KEY)
    if header_key is not None:
        if req.idempotency_key not in (None, header_key):
            raise InvalidRequest(
                "the Idempotency-Key header differs from the body's idempotency_key",
                field="/idempotency_key",
                rule="match_header",
            )
        req.idempotency_key = header_key
    return [req]


def _hint(error: InvalidRequest, request: web.Request, *, batch: bool) -> str:
    """What to send instead, when the body is not JSON or not the publish envelope."""
    if error.rule == "json":
        declared = _media_type_of(request) in (None, JSON_TYPE)
        unreadable = error.message.startswith("the body is not valid JSON")
        return "" if declared or not unreadable else _OTHER_FORMATS
    field = error.field or ""
    if batch:
        if field in ("", "/events") or (error.rule == "unknown_field" and field.count("/") == 1):
            return f"; a batch is {_BATCH_ENVELOPE}"
        field = _EVENT_PLACE.sub("", field)
        if field == (error.field or ""):
            return ""
    bare = (
        (error.rule == "type" and field == "")
        or (error.rule == "unknown_field" and field.count("/") == 1)
        or (error.rule == "required" and field == "/payload")
    )
    return f"; {_BARE_HINT}" if bare else ""


def _unsupported(request: web.Request, topic: Topic, *, batch: bool) -> InvalidRequest:
    given = request.headers.get(hdrs.CONTENT_TYPE)
    if batch:
        accepted = f"{JSON_TYPE} or {CLOUDEVENTS_BATCH_TYPE}; single events of other formats "
        accepted += f"go to /v1/topics/{topic.name}/events"
    else:
        accepted = (
            f"{JSON_TYPE}, Avro ({AVRO_TYPES[0]}), Protobuf ({PROTOBUF_TYPES[0]}), "
            f"{CLOUDEVENT_TYPE} or a binary-mode CloudEvent; batches of CloudEvents "
            f"({CLOUDEVENTS_BATCH_TYPE}) go to /v1/topics/{topic.name}/events/batch"
        )
    return InvalidRequest(
        f"Content-Type {given!r} is not accepted here: send {accepted}",
        field="/content-type",
        rule="media_type",
        status=415,
    )


def _media_type(header: str | None) -> str | None:
    media = (header or "").partition(";")[0].strip().lower()
    return media or None


def _media_type_of(request: web.Request) -> str | None:
    return _media_type(request.headers.get(hdrs.CONTENT_TYPE))


def _match_header(request: web.Request, event: PublishRequest, field: str) -> None:
    header_key = request.headers.get(IDEMPOTENCY_KEY)
    if header_key is not None and header_key != event.idempotency_key:
        raise InvalidRequest(
            "a CloudEvent's idempotency key is its source and id "
            f"({event.idempotency_key!r}); the Idempotency-Key header differs",
            field=field,
            rule="match_header",
        )


# -- binary data and the registry -----------------------------------------------------------
class _Reader:
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
        media = _media_type(content_type)
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
        error.field = _relocated(prefix + (error.field or ""), format_)
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


# -- relocating the publish path's fields ----------------------------------------------------
_FIELD = re.compile(r"(?:/events/(?P<index>[0-9]+))?/(?P<name>[a-z_]+)(?P<rest>/.*)?", re.DOTALL)
_HEADER_NAMES = {
    "key": "/conveyor-key",
    "delay": "/conveyor-delay",
    "deliver_at": "/conveyor-deliver-at",
    "priority": "/conveyor-priority",
    "idempotency_key": "/idempotency-key",
    "schema_version": "/conveyor-schema-version",
}
_CE_NAMES = {
    "payload": "/data",
    "key": "/partitionkey",
    "delay": "/conveyordelay",
    "deliver_at": "/conveyordeliverat",
    "priority": "/conveyorpriority",
    "idempotency_key": "/id",
    "schema_version": "/dataschema",
}
_CE_HEADER_NAMES = {
    name: "/ce-" + place.removeprefix("/") for name, place in _CE_NAMES.items() if name != "payload"
}
_NAMES: dict[Format, dict[str, str]] = {
    Format.AVRO: _HEADER_NAMES,
    Format.PROTOBUF: _HEADER_NAMES,
    Format.CLOUDEVENT: _CE_NAMES,
    Format.CLOUDEVENTS_BATCH: _CE_NAMES,
    Format.CLOUDEVENT_BINARY: _CE_HEADER_NAMES,
}


def _relocated(field: str | None, format_: Format) -> str | None:
    """A field of a :class:`PublishRequest` (``/events/<i>/…`` in a batch) as the place in a
    request of ``format_`` it came from."""
    found = _FIELD.fullmatch(field or "")
    names = _NAMES.get(format_)
    if found is None or names is None:
        return field
    name, rest = found.group("name"), found.group("rest") or ""
    head = "" if found.group("index") is None else f"/{found.group('index')}"
    if name == "attributes":
        attribute = rest.removeprefix("/")
        if format_ in (Format.AVRO, Format.PROTOBUF):
            return f"{head}/{ATTRIBUTE_HEADER_PREFIX}{attribute or '*'}"
        if format_ is Format.CLOUDEVENT_BINARY:
            return head + "/" + (attribute or "ce-*")
        return head + "/" + attribute.removeprefix(cloudevents.ATTRIBUTE_PREFIX)
    if name not in names:
        return field
    return head + names[name] + rest
