"""Turn a pushed payload into the type a handler declares.

The decoder is chosen once, when the handler is registered:

- a ``msgspec.Struct`` subclass: a cached ``msgspec.json.Decoder`` of that type;
- a pydantic ``BaseModel`` subclass: ``Model.model_validate_json`` (pydantic is optional: it is
  never imported here, only recognised when the handler's module already imported it);
- a generated Protobuf message class: parsed from the binary encoding directly, or from JSON
  (fields it does not know are ignored);
- ``bytes``: the data as delivered, undecoded (JSON text, or the Avro or Protobuf binary);
- ``dict``, ``list``, ``Any``, ``object`` or no annotation: plain JSON;
- anything else msgspec can convert to (``int``, ``list[int]``, a ``TypedDict``, a dataclass …):
  ``msgspec.json.decode(raw, type=T)``.

A push carries JSON, binary data (Avro or Protobuf, in the subscription's chosen encoding) or
a CloudEvent wrapping either (see :mod:`conveyor.wire.push`). Binary data is decoded
with its registry schema into its canonical JSON form (:mod:`conveyor.codecs`), then like
JSON: a handler sees the same value whatever the encoding its subscription chose.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeAlias, get_args, get_origin

import msgspec

from conveyor.codecs.envelope import read_cloud_event
from conveyor.codecs.media import (
    AVRO_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
)
from conveyor.wire.push import PushEvent

JsonDecoder: TypeAlias = Callable[[bytes], object]
"""JSON bytes to the declared type."""
CanonicalDecoder: TypeAlias = Callable[[bytes], object]
"""One schema's binary data to its canonical JSON value (raises ``ValueError``)."""
SchemaLookup: TypeAlias = Callable[[int], Awaitable[CanonicalDecoder]]
"""The canonical decoder of a registry schema, by id."""

_EMPTY = inspect.Parameter.empty
# Annotations that mean "whatever JSON it is".
_UNTYPED: tuple[object, ...] = (dict, list, Any, object)
_BINARY = frozenset({AVRO_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE})


class PayloadError(Exception):
    """A payload does not decode into its handler's declared type.

    Attributes:
        type_name: the declared type.
        detail: what is wrong, naming the field (``$.amount``) when one is to blame.
    """

    def __init__(self, type_name: str, detail: str) -> None:
        super().__init__(f"payload does not decode as {type_name}: {detail}")
        self.type_name = type_name
        self.detail = detail


class PayloadDecoder:
    """Decodes delivered payloads into one handler's declared type.

    Calling it decodes JSON bytes. :func:`decode_push` decodes any pushed event.

    Attributes:
        json: the JSON decoder (what a call runs).
        type_name: the declared type, for messages.
        raw: the handler takes ``bytes``: the data as delivered.
        message_class: the declared generated Protobuf message class, if it is one.
    """

    __slots__ = ("json", "message_class", "raw", "type_name")

    def __init__(
        self,
        json: JsonDecoder,
        type_name: str,
        *,
        raw: bool = False,
        message_class: type | None = None,
    ) -> None:
        self.json = json
        self.type_name = type_name
        self.raw = raw
        self.message_class = message_class

    def __call__(self, raw: bytes) -> object:
        """Decode JSON bytes (raises :class:`PayloadError`)."""
        return self.json(raw)

    @property
    def needs_schema(self) -> bool:
        """Whether binary data must be decoded with its registry schema first."""
        return not self.raw and self.message_class is None

    def from_binary(self, data: bytes, canonical: CanonicalDecoder | None) -> object:
        """Decode binary data (Avro or Protobuf).

        Args:
            data: the binary encoding.
            canonical: the decoder of its schema (required when :attr:`needs_schema`).

        Raises:
            PayloadError: the data does not decode, or not into the declared type.
        """
        if self.raw:
            return data
        if self.message_class is not None:
            try:
                return self.message_class.FromString(data)  # type: ignore[attr-defined]
            except Exception as e:  # protobuf's DecodeError, or a missing required field
                raise PayloadError(self.type_name, f"{type(e).__name__}: {e}") from e
        if canonical is None:
            raise PayloadError(self.type_name, "binary data needs its schema to decode")
        try:
            value = canonical(data)
        except ValueError as e:
            raise PayloadError(self.type_name, str(e)) from e
        return self.json(msgspec.json.encode(value))


class Delivered(msgspec.Struct, frozen=True):
    """A pushed event's payload, decoded.

    Attributes:
        payload: the payload as the handler's declared type.
        content_type: the data's content type (inside the envelope, for a CloudEvent).
        cloudevent: the CloudEvent's attributes (every member but the data), if it came as
            one.
    """

    payload: object
    content_type: str
    cloudevent: dict[str, str] | None = None


async def decode_push(
    decoder: PayloadDecoder, event: PushEvent, schemas: SchemaLookup | None
) -> Delivered:
    """Decode a pushed event of any content type into the handler's declared type.

    Args:
        decoder: the handler's decoder.
        event: the event as pushed.
        schemas: where binary data's schemas are found (``None``: binary data can be
            decoded only into ``bytes`` or a Protobuf message class).

    Raises:
        PayloadError: the data does not decode (final: a retry would fail the same way).
        Exception: whatever ``schemas`` raises when a schema cannot be fetched.
    """
    content_type = event.content_type
    if content_type is None:
        return Delivered(decoder(event.payload), JSON_CONTENT_TYPE)
    if content_type == CLOUDEVENTS_CONTENT_TYPE:
        return await _decode_cloud_event(decoder, event, schemas)
    if content_type in _BINARY:
        data = _base64(decoder, event.data or "")
        payload = await _binary(decoder, data, event.schema_id, schemas)
        return Delivered(payload, content_type)
    raise PayloadError(decoder.type_name, f"unknown content type {content_type!r}")


async def _decode_cloud_event(
    decoder: PayloadDecoder, event: PushEvent, schemas: SchemaLookup | None
) -> Delivered:
    try:
        attributes, data, data_base64 = read_cloud_event(event.payload)
    except msgspec.DecodeError as e:
        raise PayloadError(decoder.type_name, f"not a CloudEvent: {e}") from e
    content_type = attributes.get("datacontenttype", JSON_CONTENT_TYPE)
    if data_base64 is None:
        payload = decoder(data if data is not None else msgspec.Raw(b"null"))
        return Delivered(payload, content_type, attributes)
    binary = _base64(decoder, msgspec.json.decode(data_base64, type=str))
    if content_type not in _BINARY and not decoder.raw:
        raise PayloadError(decoder.type_name, f"cannot decode {content_type!r} data")
    payload = await _binary(decoder, binary, event.schema_id, schemas)
    return Delivered(payload, content_type, attributes)


async def _binary(
    decoder: PayloadDecoder, data: bytes, schema_id: int | None, schemas: SchemaLookup | None
) -> object:
    if not decoder.needs_schema:
        return decoder.from_binary(data, None)
    if schema_id is None:
        raise PayloadError(decoder.type_name, "binary data came without its schema id")
    if schemas is None:
        raise PayloadError(
            decoder.type_name, f"no schema source to decode binary data (schema {schema_id})"
        )
    return decoder.from_binary(data, await schemas(schema_id))


def _base64(decoder: PayloadDecoder, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise PayloadError(decoder.type_name, f"the data is not base64: {e}") from e


def payload_decoder(annotation: object) -> PayloadDecoder:
    """Build the decoder for a handler's payload annotation.

    Args:
        annotation: the payload parameter's resolved annotation, or ``inspect.Parameter.empty``.

    Returns:
        A function from JSON bytes to the payload; it raises :class:`PayloadError` when the
        bytes do not decode into the declared type.

    Raises:
        TypeError: msgspec cannot decode into the annotation.
    """
    base = _strip_annotated(annotation)
    name = _name(annotation)
    if annotation is _EMPTY or base in _UNTYPED:
        return PayloadDecoder(_plain(name), name)
    if base is bytes:
        return PayloadDecoder(bytes, name, raw=True)
    if isinstance(base, type) and _is_pydantic_model(base):
        return PayloadDecoder(_pydantic(base), name)
    if isinstance(base, type) and _is_protobuf_message(base):
        return PayloadDecoder(_protobuf_json(base), name, message_class=base)
    try:
        decoder: msgspec.json.Decoder[object] = msgspec.json.Decoder(annotation)
    except TypeError as e:
        raise TypeError(f"a payload cannot be decoded as {name}: {e}") from e
    return PayloadDecoder(_typed(decoder, name), name)


def _plain(type_name: str) -> JsonDecoder:
    decode = msgspec.json.decode

    def run(raw: bytes) -> object:
        try:
            return decode(raw)
        except msgspec.DecodeError as e:
            raise PayloadError(type_name, str(e)) from e

    return run


def _typed(decoder: msgspec.json.Decoder[object], type_name: str) -> JsonDecoder:
    decode = decoder.decode

    def run(raw: bytes) -> object:
        try:
            return decode(raw)
        except msgspec.DecodeError as e:  # ValidationError is a DecodeError
            raise PayloadError(type_name, str(e)) from e

    return run


def _pydantic(model: type) -> JsonDecoder:
    pydantic = sys.modules["pydantic"]
    validate: Callable[[bytes], object] = model.model_validate_json  # type: ignore[attr-defined]
    validation_error: type[Exception] = pydantic.ValidationError
    type_name = model.__qualname__

    def run(raw: bytes) -> object:
        try:
            # pydantic reads str, bytes or bytearray only; a pushed payload is msgspec.Raw.
            return validate(bytes(raw))
        except validation_error as e:
            raise PayloadError(type_name, _pydantic_detail(e)) from e

    return run


def _protobuf_json(message_class: type) -> JsonDecoder:
    from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

    type_name = message_class.__qualname__

    def run(raw: bytes) -> object:
        try:
            return json_format.Parse(bytes(raw), message_class(), ignore_unknown_fields=True)
        except json_format.ParseError as e:
            raise PayloadError(type_name, str(e)) from e

    return run


def _pydantic_detail(error: Exception) -> str:
    # Shaped like msgspec's messages ("... - at `$.items[0].sku`") so both read the same.
    errors: list[dict[str, Any]] = error.errors(include_url=False)  # type: ignore[attr-defined]
    parts = []
    for item in errors:
        loc: tuple[str | int, ...] = item.get("loc") or ()
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        parts.append(f"{item.get('msg')} - at `{path}`")
    return "; ".join(parts) or str(error)


def _is_pydantic_model(cls: type) -> bool:
    # A model class exists only if its module imported pydantic, so looking in sys.modules
    # recognises every model without making pydantic a run-time dependency.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _is_protobuf_message(cls: type) -> bool:
    # As for pydantic: a generated class exists only if its module imported protobuf.
    message = sys.modules.get("google.protobuf.message")
    return message is not None and issubclass(cls, message.Message)


def _strip_annotated(annotation: object) -> object:
    if get_origin(annotation) is Annotated:
        return get_args(annotation)[0]
    return annotation


def _name(annotation: object) -> str:
    if annotation is _EMPTY:
        return "JSON"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
