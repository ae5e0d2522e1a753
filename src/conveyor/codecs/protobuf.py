"""Protobuf: binary data <-> the canonical JSON form, with a compiled message.

The canonical JSON form is protobuf's JSON mapping with the ``.proto`` field names
(``preserving_proto_field_name``): int64 as strings, bytes as base64, enums by name, Timestamp
as RFC 3339; fields at their default value are left out. Schemas are compiled by
:func:`parse` (:mod:`conveyor.codecs.protobuf_parse`), re-exported here with
:class:`ProtoSchema`.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]
from google.protobuf.descriptor import (  # type: ignore[import-untyped, unused-ignore]
    Descriptor,
    FieldDescriptor,
)
from google.protobuf.message import (  # type: ignore[import-untyped, unused-ignore]
    DecodeError,
    EncodeError,
)

from conveyor.codecs.protobuf_parse import ProtoSchema, parse

__all__ = ["FLOAT32_MAX", "ProtoSchema", "decode", "encode", "parse"]

_F = FieldDescriptor


def decode(schema: ProtoSchema, data: bytes) -> dict[str, object]:
    """Binary Protobuf to the canonical JSON form.

    Fields the schema does not know are skipped, as every Protobuf reader does.

    Raises:
        ValueError: ``data`` is not a valid encoding of the message, or lacks a proto2
            required field.
    """
    try:
        decoded = schema.message_class.FromString(data)
    except DecodeError as e:
        raise ValueError(f"not a valid {schema.message_name} message: {e}") from e
    if not decoded.IsInitialized():
        try:  # the error names every missing field, nested ones by their path
            decoded.SerializeToString()
        except EncodeError as e:
            raise ValueError(f"not a valid {schema.message_name} message: {e}") from e
    result: dict[str, object] = json_format.MessageToDict(decoded, preserving_proto_field_name=True)
    _clamp_floats(schema.descriptor, result)
    return result


FLOAT32_MAX = 3.4028234663852886e38


def _clamp_floats(descriptor: Descriptor, value: dict[str, object]) -> None:
    """Bring float fields written as the shortest float32 repr back into float32's range.

    protobuf's JSON form writes ±FLT_MAX as ±3.4028235e+38, which as a double lies just past
    FLT_MAX, so its own parser refuses it: without this, ±FLT_MAX would not round-trip.
    """
    for field in descriptor.fields:
        item = value.get(field.name)
        if item is not None:
            value[field.name] = _clamp_field(field, item)


def _clamp_field(field: FieldDescriptor, item: object) -> object:
    nested = field.message_type
    if nested is not None and nested.GetOptions().map_entry and isinstance(item, dict):
        inner = nested.fields_by_name["value"]
        return {key: _clamp_value(inner, entry) for key, entry in item.items()}
    if isinstance(item, list):
        return [_clamp_value(field, entry) for entry in item]
    return _clamp_value(field, item)


def _clamp_value(field: FieldDescriptor, item: object) -> object:
    if field.message_type is not None:
        if isinstance(item, dict):
            _clamp_floats(field.message_type, item)
        return item
    return _clamped(item) if field.type == _F.TYPE_FLOAT else item


def _clamped(number: object) -> object:
    if isinstance(number, float) and FLOAT32_MAX < abs(number) < float("inf"):
        return FLOAT32_MAX if number > 0 else -FLOAT32_MAX
    return number


def encode(schema: ProtoSchema, value: Mapping[str, object]) -> bytes:
    """The canonical JSON form (or any form protobuf's JSON parser accepts) to binary.

    Output is deterministic: map entries are sorted by key.

    Raises:
        TypeError: ``value`` is not a mapping.
        ValueError: an unknown field or a value of the wrong type (the message names the
            field), or a missing proto2 required field.
    """
    if not isinstance(value, Mapping):
        raise TypeError(f"a {schema.message_name} value must be a mapping, not {type(value)}")
    message = schema.message_class()
    try:
        json_format.ParseDict(dict(value), message)
    except (json_format.Error, ValueError, TypeError) as e:
        raise ValueError(f"invalid {schema.message_name}: {e}") from e
    try:
        data: bytes = message.SerializeToString(deterministic=True)
    except EncodeError as e:
        raise ValueError(f"invalid {schema.message_name}: {e}") from e
    return data
