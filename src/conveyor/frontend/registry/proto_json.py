"""The JSON Schema of a Protobuf message's canonical JSON form (protobuf's JSON mapping with
the ``.proto`` field names), against which every payload of a Protobuf subject is validated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf.descriptor import (  # type: ignore[import-untyped, unused-ignore]
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
)

from conveyor.frontend.registry.proto_compat import real_oneofs

if TYPE_CHECKING:
    from conveyor.codecs.protobuf import ProtoSchema


_INT32: dict[str, object] = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32: dict[str, object] = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
_INT64: dict[str, object] = {
    "anyOf": [
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        {"type": "string", "pattern": "^-?[0-9]+$"},
    ]
}
_UINT64: dict[str, object] = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
        {"type": "string", "pattern": "^[0-9]+$"},
    ]
}
_FLOAT: dict[str, object] = {
    "anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]
}
_BYTES: dict[str, object] = {
    "type": "string",
    "contentEncoding": "base64",
    "pattern": "^[A-Za-z0-9+/_-]*={0,2}$",
}

_F = FieldDescriptor
_SCALARS: dict[int, dict[str, object]] = {
    _F.TYPE_INT32: _INT32,
    _F.TYPE_SINT32: _INT32,
    _F.TYPE_SFIXED32: _INT32,
    _F.TYPE_UINT32: _UINT32,
    _F.TYPE_FIXED32: _UINT32,
    _F.TYPE_INT64: _INT64,
    _F.TYPE_SINT64: _INT64,
    _F.TYPE_SFIXED64: _INT64,
    _F.TYPE_UINT64: _UINT64,
    _F.TYPE_FIXED64: _UINT64,
    _F.TYPE_FLOAT: _FLOAT,
    _F.TYPE_DOUBLE: _FLOAT,
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BYTES: _BYTES,
}

_WRAPPERS = {
    "DoubleValue": _F.TYPE_DOUBLE,
    "FloatValue": _F.TYPE_FLOAT,
    "Int64Value": _F.TYPE_INT64,
    "UInt64Value": _F.TYPE_UINT64,
    "Int32Value": _F.TYPE_INT32,
    "UInt32Value": _F.TYPE_UINT32,
    "BoolValue": _F.TYPE_BOOL,
    "StringValue": _F.TYPE_STRING,
    "BytesValue": _F.TYPE_BYTES,
}
_WELL_KNOWN: dict[str, dict[str, object]] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})$",
    },
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Value": {},
    "google.protobuf.Empty": {"type": "object", "maxProperties": 0},
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
    },
    **{f"google.protobuf.{name}": _SCALARS[kind] for name, kind in _WRAPPERS.items()},
}
_MAP_KEYS: dict[int, dict[str, object]] = {
    _F.TYPE_BOOL: {"enum": ["true", "false"]},
    **{
        kind: {"pattern": "^-?[0-9]+$"}
        for kind in (
            _F.TYPE_INT32,
            _F.TYPE_SINT32,
            _F.TYPE_SFIXED32,
            _F.TYPE_INT64,
            _F.TYPE_SINT64,
            _F.TYPE_SFIXED64,
        )
    },
    **{
        kind: {"pattern": "^[0-9]+$"}
        for kind in (_F.TYPE_UINT32, _F.TYPE_FIXED32, _F.TYPE_UINT64, _F.TYPE_FIXED64)
    },
}


def to_json_schema(schema: ProtoSchema) -> dict[str, object]:
    """A Draft 2020-12 JSON Schema of the message's canonical JSON form.

    Each message is one ``$defs`` entry named by its full name (so recursive messages work);
    fields use their ``.proto`` names; unknown properties are refused, as by ``encode``;
    members of one ``oneof`` exclude each other; proto2 ``required`` fields are required.
    Integer kinds carry their range; 64-bit integers are integers or decimal strings; floats
    also take ``"NaN"``/``"Infinity"``/``"-Infinity"``; bytes are base64; enums are value
    names (open, proto3 enums also take the number, as unknown values decode to numbers);
    repeated fields are arrays, maps objects, and well-known types their JSON form
    (Timestamp a date-time string, Duration ``"1.5s"``, wrappers their scalar).
    """
    defs: dict[str, object] = {}
    root = _message_schema(schema.descriptor, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": schema.message_name,
        **root,
        "$defs": defs,
    }


def _message_schema(message: Descriptor, defs: dict[str, object]) -> dict[str, object]:
    """A ``$ref`` to the message's definition, adding it (and what it uses) to ``defs``."""
    name: str = message.full_name
    if name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[name])
    if name not in defs:
        defs[name] = {}  # placeholder first: a message may contain itself
        defs[name] = _object_schema(message, defs)
    return {"$ref": f"#/$defs/{name}"}


def _object_schema(message: Descriptor, defs: dict[str, object]) -> dict[str, object]:
    properties = {f.name: _field_schema(f, defs) for f in message.fields}
    result: dict[str, object] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [f.name for f in message.fields if f.is_required]
    if required:
        result["required"] = required
    exclusive = _oneof_exclusions(message)
    if exclusive:
        result["dependentSchemas"] = exclusive
    return result


def _oneof_exclusions(message: Descriptor) -> dict[str, object]:
    """For each member of a real oneof: the others must be absent.

    A oneof of one member excludes nothing, and gets no entry: ``anyOf`` must not be empty.
    """
    exclusive: dict[str, object] = {}
    for oneof in real_oneofs(message):
        names = [f.name for f in oneof.fields]
        if len(names) < 2:
            continue
        for name in names:
            others = [{"required": [other]} for other in names if other != name]
            exclusive[name] = {"not": {"anyOf": others}}
    return exclusive


def _field_schema(field: FieldDescriptor, defs: dict[str, object]) -> dict[str, object]:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_number[1], entry.fields_by_number[2]
        mapping: dict[str, object] = {
            "type": "object",
            "additionalProperties": _single_schema(value, defs),
        }
        if key.type in _MAP_KEYS:
            mapping["propertyNames"] = _MAP_KEYS[key.type]
        return mapping
    single = _single_schema(field, defs)
    if field.is_repeated:
        return {"type": "array", "items": single}
    return single


def _single_schema(field: FieldDescriptor, defs: dict[str, object]) -> dict[str, object]:
    message, enum = field.message_type, field.enum_type
    if message is not None:
        return _message_schema(message, defs)
    if enum is not None:
        return _enum_schema(enum)
    return dict(_SCALARS[field.type])


def _enum_schema(enum: EnumDescriptor) -> dict[str, object]:
    if enum.full_name == "google.protobuf.NullValue":
        return {"type": "null"}
    names: dict[str, object] = {"type": "string", "enum": [v.name for v in enum.values]}
    if enum.is_closed:
        return names
    return {"anyOf": [names, _INT32]}
