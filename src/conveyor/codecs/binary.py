"""Binary data in: one datum of Avro or Protobuf, as the canonical JSON form.

This is how the publish path reads a publisher's binary data (an Avro or Protobuf body, a
CloudEvent's ``data_base64``) before validating it against the schema it was written with.
The JSON form of Avro is :mod:`conveyor.codecs.avro`'s; Protobuf's is protobuf's JSON mapping
with the ``.proto`` field names (:func:`conveyor.codecs.protobuf.decode`).
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator, Mapping
from typing import cast

import fastavro
import fastavro.types
import msgspec

from conveyor.codecs import protobuf
from conveyor.codecs.avro import canonical
from conveyor.codecs.schema import RegisteredSchema
from conveyor.model import SchemaType

__all__ = ["decode"]


def decode(schema: RegisteredSchema, data: bytes) -> msgspec.Raw:
    """One datum of ``schema`` (Avro or Protobuf binary, no framing) as JSON.

    Raises:
        ValueError: the data is not one datum of the schema with nothing after it, or the
            schema is of another type.
    """
    if schema.type is SchemaType.AVRO:
        value = _avro_json(schema.definition, data)
    elif schema.type is SchemaType.PROTOBUF:
        value = protobuf.decode(cast("protobuf.ProtoSchema", schema.parsed), data)
    else:
        raise ValueError(f"{schema.type.value} schemas have no binary form")
    return msgspec.Raw(msgspec.json.encode(value))


_AVRO_ERRORS = (
    EOFError,
    IndexError,
    KeyError,
    OverflowError,
    RecursionError,
    TypeError,
    UnicodeDecodeError,
    ValueError,
)


def _avro_json(definition: str, data: bytes) -> object:
    """Avro binary in the canonical JSON form.

    Raises:
        ValueError: the data is not one datum of the schema, with nothing after it.
    """
    schema = _avro_reader(definition)
    stream = io.BytesIO(data)
    try:
        value = fastavro.schemaless_reader(stream, schema)
    except _AVRO_ERRORS as e:
        detail = str(e) or type(e).__name__
        raise ValueError(
            f"the data ends early ({detail})" if isinstance(e, EOFError) else detail
        ) from e
    left = len(data) - stream.tell()
    if left:
        raise ValueError(f"{left} byte(s) left over after the datum")
    return canonical(value)


@functools.lru_cache(maxsize=256)
def _avro_reader(definition: str) -> fastavro.types.Schema:
    """The schema to read with: without logical types, whose JSON form is their underlying
    type's. (Cached by text: a registered version never changes.)

    Raises:
        ValueError: the schema has arrays of items that take no bytes, whose count a few
            bytes of data could set to billions.
    """
    named: dict[str, dict[str, object]] = {}
    plain = cast("fastavro.types.Schema", _without_logical_types(json.loads(definition)))
    parsed = fastavro.parse_schema(plain, named)
    if any(
        _zero_width(items, named, frozenset()) for items in _array_items([parsed, *named.values()])
    ):
        raise ValueError("the schema has arrays of items that take no bytes: not decoded")
    return parsed


def _without_logical_types(schema: object) -> object:
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def _array_items(schema: object) -> Iterator[object]:
    """The item schema of every array written inside ``schema`` (not through names)."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _array_items(branch)
    elif isinstance(schema, dict):
        if schema.get("type") == "array":
            yield schema["items"]
        for key in ("type", "items", "values"):
            if not isinstance(schema.get(key), str):
                yield from _array_items(schema.get(key))
        for field in schema.get("fields") or ():
            yield from _array_items(field["type"])


def _zero_width(schema: object, named: Mapping[str, object], seen: frozenset[str]) -> bool:
    """Whether a datum of ``schema`` takes no bytes (null, fixed of size 0, records of such).

    A union, array, map or enum never does: its branch index, count or symbol takes a byte.
    """
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return _zero_width(named[schema], named, seen | {schema})
        return schema == "null"
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind in ("record", "error"):
        return all(_zero_width(f["type"], named, seen) for f in schema.get("fields") or ())
    if kind == "fixed":
        return bool(schema.get("size") == 0)
    return kind not in ("array", "map", "enum") and _zero_width(kind, named, seen)
