"""Formats in: an HTTP publish in any accepted format, as :class:`PublishRequest` s with JSON
payloads.

Conveyor keeps every payload as JSON: Avro in the canonical JSON form of
:mod:`~conveyor.codecs.avro` (a union is its branch's value, bytes and fixed are strings of
code points 0-255, a logical type is its underlying type), Protobuf in protobuf's JSON mapping
with the ``.proto`` field names. This module converts at the HTTP edge: it tells the format
and reads JSON; :mod:`~conveyor.frontend._reader` reads the other formats, with the codecs
of :mod:`conveyor.codecs`. The publish path then validates the JSON against the registry
version the data was written with, which each request names in ``schema_version``, and
records its id.

By ``Content-Type`` (see docs/schemas.md, "Formats in"):

* ``application/json`` (or none, or what HTTP tools send unasked: form-urlencoded,
  octet-stream, text/plain): a :class:`PublishRequest` (``/events``) or a
  :class:`BatchPublishRequest` (``/events/batch``), as before formats existed.
* Avro and Protobuf binary (``/events`` only): the body is one event's data, written with a
  version of the topic's subject (``Conveyor-Schema-Version`` or ``Conveyor-Schema-Id``,
  else the newest the topic admits); metadata in ``Conveyor-*`` headers.
* CloudEvents: structured (``application/cloudevents+json``, ``/events``), batch
  (``application/cloudevents-batch+json``, ``/events/batch``, atomic) and binary mode (a
  ``ce-specversion`` header, ``/events``); see :mod:`conveyor.codecs.cloudevents`.

Any other type is refused with 415, naming ``/content-type``.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import hdrs, web

from conveyor.codecs.media import (
    AVRO_TYPES,
    CLOUDEVENTS_BATCH_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PROTOBUF_TYPES,
    media_type,
)
from conveyor.errors import InvalidRequest
from conveyor.frontend._fields import IDEMPOTENCY_KEY, Format, relocated
from conveyor.frontend._reader import Reader
from conveyor.frontend.registry.registry import SchemaRegistry
from conveyor.model import SchemaType, Topic
from conveyor.wire.envelope import decode_body
from conveyor.wire.schemas import BatchPublishRequest, PublishRequest

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

JSON_TYPE = JSON_CONTENT_TYPE
# What HTTP tools send when told nothing (curl -d, fetch with a string, aiohttp with bytes):
# read as JSON, as every body was before formats existed.
UNDECLARED_TYPES = ("application/x-www-form-urlencoded", "application/octet-stream", "text/plain")
CLOUDEVENT_TYPE = CLOUDEVENTS_CONTENT_TYPE
CLOUDEVENTS_BATCH_TYPE = CLOUDEVENTS_BATCH_CONTENT_TYPE
CE_SPECVERSION_HEADER = "ce-specversion"

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
_STRUCTURED = (Format.CLOUDEVENT, Format.CLOUDEVENTS_BATCH)

_PUBLISH = msgspec.json.Decoder(PublishRequest)
_BATCH_PUBLISH = msgspec.json.Decoder(BatchPublishRequest)
_ENVELOPE = '{"payload": <the event>} (with key, attributes, delay … beside payload)'
_BATCH_ENVELOPE = '{"events": [{"payload": <an event>}, …]}'
_BARE_HINT = f"an event is sent in an envelope, {_ENVELOPE}: to publish this JSON, wrap it so"
_OTHER_FORMATS = " (send Avro, Protobuf or CloudEvents with their own Content-Type)"
_EVENT_PLACE = re.compile(r"^/events/[0-9]+")


# -- the entry points -----------------------------------------------------------------------
def detect_format(request: web.Request) -> Format | None:
    """The format of a publish request: by Content-Type, except that a ``ce-specversion``
    header makes any body but a structured CloudEvent a binary-mode CloudEvent.

    Returns:
        The format, or ``None`` for a media type Conveyor does not read.
    """
    media = media_type(request.headers.get(hdrs.CONTENT_TYPE)) or JSON_TYPE
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
    reader = Reader(topic, registry)
    if found is Format.JSON:
        return _json_requests(request, body, batch=batch)
    if found is Format.CLOUDEVENTS_BATCH:
        return await reader.cloudevent_batch(body)
    if found is Format.CLOUDEVENT:
        event = await reader.structured(body)
        _match_header(request, event, "/id")
        return [event]
    if found is Format.CLOUDEVENT_BINARY:
        content_type = request.headers.get(hdrs.CONTENT_TYPE)
        event = await reader.binary_mode(request.headers, body, content_type)
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
    error.field = relocated(error.field, found)
    for problem in error.errors:
        problem.field = relocated(problem.field, found)


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


def _media_type_of(request: web.Request) -> str | None:
    return media_type(request.headers.get(hdrs.CONTENT_TYPE))


def _match_header(request: web.Request, event: PublishRequest, field: str) -> None:
    header_key = request.headers.get(IDEMPOTENCY_KEY)
    if header_key is not None and header_key != event.idempotency_key:
        raise InvalidRequest(
            "a CloudEvent's idempotency key is its source and id "
            f"({event.idempotency_key!r}); the Idempotency-Key header differs",
            field=field,
            rule="match_header",
        )
