"""Avro: the canonical JSON form <-> Avro binary, with a schema's reader and writer.

The canonical JSON form of an Avro datum (see :mod:`conveyor.frontend.registry.avro_json` for
its JSON Schema): a record is an object, a union is its branch's value (no ``{"type": value}``
wrapper), bytes and fixed are strings of code points 0-255 (as in Avro's JSON encoding), and a
logical type is its underlying type (a ``timestamp-millis`` is its long).

:class:`AvroCodec` writes that form as Avro, reads Avro back into it, and rewrites data written
with one schema into another after Avro's schema resolution. The publish path's reading of
Avro binary, with its own guard and messages, is :mod:`conveyor.codecs.binary`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import fastavro

__all__ = ["AvroCodec", "canonical"]

_FastavroSchema: TypeAlias = "str | list[Any] | dict[Any, Any]"


@dataclass(frozen=True, slots=True)
class AvroCodec:
    """An Avro schema ready to read and write the canonical JSON form.

    Attributes:
        schema: the fastavro-parsed schema, logical types removed (the canonical form keeps
            their underlying values: a timestamp is its number, a decimal its bytes).
        names: every named type in it, by full name.
    """

    schema: object
    names: Mapping[str, object]

    @classmethod
    def parse(cls, definition: str) -> AvroCodec:
        """Compile an Avro schema's text.

        Raises:
            ValueError: it is not JSON or not a valid Avro schema.
        """
        names: dict[str, dict[str, Any]] = {}
        plain = cast("_FastavroSchema", _underlying(json.loads(definition)))
        return cls(fastavro.parse_schema(plain, named_schemas=names), names)

    def encode(self, value: object) -> bytes:
        """The canonical JSON form of a value (as Python) to Avro binary (a datum as fastavro
        reads it, with bytes as ``bytes``, is accepted too).

        Raises:
            ValueError: the value does not fit the schema.
        """
        out = io.BytesIO()
        try:
            schema = cast("_FastavroSchema", self.schema)
            fastavro.schemaless_writer(out, schema, self._datum(schema, value))
        except (TypeError, KeyError, AttributeError) as e:
            raise ValueError(f"the value does not fit the Avro schema: {e}") from e
        return out.getvalue()

    def decode(self, data: bytes, reader: AvroCodec | None = None) -> object:
        """Avro binary written with this schema to the canonical JSON form, optionally
        resolved to a ``reader`` schema.

        Raises:
            ValueError: the data does not decode, or does not resolve to the reader.
        """
        return canonical(self._read(data, reader))

    def resolve(self, data: bytes, reader: AvroCodec) -> bytes:
        """Avro binary written with this schema, rewritten with the ``reader`` schema after
        Avro's schema resolution.

        Raises:
            ValueError: the data does not decode, or does not resolve to the reader.
        """
        # The datum as read, not its canonical form: bytes stay bytes, so a union keeps its
        # branch (the canonical form cannot tell bytes from a string).
        return reader.encode(self._read(data, reader))

    def _read(self, data: bytes, reader: AvroCodec | None) -> object:
        try:
            return fastavro.schemaless_reader(
                io.BytesIO(data),
                cast("_FastavroSchema", self.schema),
                None if reader is None else cast("_FastavroSchema", reader.schema),
            )
        except Exception as e:  # fastavro raises many types; all mean "bad data"
            raise ValueError(f"the Avro data does not decode: {type(e).__name__}: {e}") from e

    def _resolve(self, schema: object) -> object:
        return self.names.get(schema, schema) if isinstance(schema, str) else schema

    def _datum(self, schema: object, value: object) -> object:
        """The datum fastavro writes for a canonical value: bytes and fixed from strings,
        union branches named (tuple notation), missing record fields filled by default.
        A value of the wrong shape is left for fastavro to name the problem."""
        if isinstance(schema, list):
            branch = self._branch(schema, value)
            return (_branch_name(branch), self._datum(branch, value))
        node = self._resolve(schema)
        if isinstance(node, str):
            return value.encode("latin-1") if node == "bytes" and isinstance(value, str) else value
        return self._complex(cast("Mapping[str, object]", node), value)

    def _complex(self, spec: Mapping[str, object], value: object) -> object:
        kind = spec["type"]
        if kind in _RECORDS and isinstance(value, Mapping):
            return self._record(spec, value)
        if kind == "array" and isinstance(value, list):
            return [self._datum(spec["items"], v) for v in value]
        if kind == "map" and isinstance(value, Mapping):
            return {k: self._datum(spec["values"], v) for k, v in value.items()}
        if kind in _NAMED_OR_COMPLEX:
            return value.encode("latin-1") if kind == "fixed" and isinstance(value, str) else value
        return self._datum(kind, value)  # a primitive written as {"type": "bytes"}

    def _record(self, record: Mapping[str, object], value: Mapping[str, object]) -> object:
        out: dict[str, object] = {}
        for field in cast("list[Mapping[str, object]]", record["fields"]):
            name = cast("str", field["name"])
            if name in value:
                out[name] = self._datum(field["type"], value[name])
            elif "default" in field:
                out[name] = self._datum(field["type"], field["default"])
        return out

    def _branch(self, union: list[object], value: object) -> object:
        # The first branch the value fits: the canonical form does not name the branch.
        for branch in union:
            if self._fits(branch, value):
                return branch
        raise ValueError(f"{_short(value)} fits no branch of the union {_short(union)}")

    def _fits(self, schema: object, value: object) -> bool:
        node = self._resolve(schema)
        if isinstance(node, list):
            return any(self._fits(b, value) for b in node)
        if isinstance(node, str):
            test = _PRIMITIVE_FITS.get(node)
            return test is not None and test(value)
        spec = cast("Mapping[str, object]", node)
        complex_test = _COMPLEX_FITS.get(cast("str", spec["type"]))
        if complex_test is None:
            return self._fits(spec["type"], value)  # a primitive written as a mapping
        return complex_test(spec, value)


def _fits_record(record: Mapping[str, object], value: Mapping[str, object]) -> bool:
    fields = cast("list[Mapping[str, object]]", record["fields"])
    known = {f["name"] for f in fields}
    return set(value) <= known and all(f["name"] in value or "default" in f for f in fields)


def _is_int(bits: int) -> Callable[[object], bool]:
    def test(value: object) -> bool:
        return type(value) is int and -(2**bits) <= value < 2**bits

    return test


_PRIMITIVE_FITS: dict[str, Callable[[object], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": _is_int(31),
    "long": _is_int(63),
    "float": lambda v: type(v) in (int, float),
    "double": lambda v: type(v) in (int, float),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, str | bytes),
}


def _fits_fixed(spec: Mapping[str, object], value: object) -> bool:
    return isinstance(value, str | bytes) and len(value) == spec["size"]


_COMPLEX_FITS: dict[str, Callable[[Mapping[str, object], object], bool]] = {
    "enum": lambda spec, v: v in cast("list[str]", spec["symbols"]),
    "fixed": _fits_fixed,
    "array": lambda _, v: isinstance(v, list),
    "map": lambda _, v: isinstance(v, Mapping),
    "record": lambda spec, v: isinstance(v, Mapping) and _fits_record(spec, v),
    "error": lambda spec, v: isinstance(v, Mapping) and _fits_record(spec, v),
}
_RECORDS = frozenset({"record", "error"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_NAMED_OR_COMPLEX = frozenset({"record", "error", "enum", "fixed", "array", "map"})


def _underlying(node: object) -> object:
    """An Avro schema (as JSON) without its ``logicalType`` attributes."""
    if isinstance(node, list):
        return [_underlying(b) for b in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "logicalType":
            continue
        if key in ("type", "items", "values"):
            out[key] = _underlying(value)
        elif key == "fields" and isinstance(value, list):
            out[key] = [{**f, "type": _underlying(f.get("type"))} for f in value]
        else:
            out[key] = value
    return out


def _branch_name(branch: object) -> str:
    if isinstance(branch, str):
        return branch
    spec = cast("Mapping[str, object]", branch)
    return str(spec["name"] if spec["type"] in _NAMED else spec["type"])


def canonical(datum: object) -> object:
    """Data fastavro read, in the canonical JSON form (bytes as code points 0-255)."""
    if isinstance(datum, bytes):
        return datum.decode("latin-1")
    if isinstance(datum, dict):
        return {k: canonical(v) for k, v in datum.items()}
    if isinstance(datum, list):
        return [canonical(v) for v in datum]
    return datum


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
