"""Avro schemas for the registry: parsing, fingerprints and compatibility.

``check(reader, writer)`` applies the Avro 1.11 specification's schema resolution rules (see
``_avro_resolve``); ``fingerprint`` dedupes registrations that differ only in formatting,
documentation or attribute order.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import cast

import fastavro
import msgspec
from fastavro.schema import SchemaParseException, UnknownType

from conveyor.frontend.registry._avro_resolve import NAMED, PRIMITIVES, Resolver, kind
from conveyor.frontend.registry.breaking import Breaking

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AvroSchema(msgspec.Struct, frozen=True):
    """A parsed Avro schema.

    Attributes:
        schema: the fastavro-parsed schema: a type name, a list (a union) or a mapping, with
            every name fully qualified.
        names: every named type (record, enum, fixed) defined in it, by full name.
    """

    schema: object
    names: Mapping[str, Mapping[str, object]]


def parse(text: str) -> AvroSchema:
    """Parse an Avro schema.

    Raises:
        ValueError: ``text`` is not JSON or not a valid Avro schema; the message says why.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the schema is not JSON: {e}") from e
    _require_fields(raw)  # fastavro would quietly give a record without them no fields
    try:
        parsed = fastavro.parse_schema(raw)
    except KeyError as e:
        raise ValueError(f"invalid Avro schema: a type lacks its required attribute {e}") from e
    except (SchemaParseException, UnknownType, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"invalid Avro schema: {e}") from e
    names: dict[str, Mapping[str, object]] = {}
    _walk(parsed, names)
    return AvroSchema(parsed, names)


def check(reader: AvroSchema, writer: AvroSchema) -> list[Breaking]:
    """Every reason data written with ``writer`` cannot be read with ``reader``.

    Applies the specification's resolution rules: records and enums and fixeds match by
    unqualified name or reader alias; fields by name or reader alias; a reader field missing
    from the writer needs a default; a writer field missing from the reader is skipped;
    int→long→float→double and string↔bytes promote; a writer enum symbol unknown to the
    reader needs the reader's default; every branch of a writer union must resolve and a
    non-union writer must match a branch of a reader union; fixeds must have the same size;
    arrays and maps resolve their items and values. Beyond the spec (conservatively), two
    different logical types on the same underlying type are reported.

    Returns:
        The breaking changes; empty when every datum of ``writer`` can be read.
    """
    return Resolver(reader.names, writer.names).resolve(reader.schema, writer.schema, "/")


def fingerprint(text: str) -> str:
    """The SHA-256 (hex) of the schema's resolution canonical form.

    That form is Avro's Parsing Canonical Form (full names, no docs, fixed attribute order,
    no whitespace) plus what resolution reads and that form drops: field defaults and
    aliases, type aliases, enum defaults, logical types. Two texts with one fingerprint read
    and write the same data the same way.

    Raises:
        ValueError: the schema is invalid (as for ``parse``).
    """
    form = _canonical(parse(text).schema, set())
    encoded = json.dumps(form, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _require_fields(raw: object) -> None:
    if isinstance(raw, list):
        for item in raw:
            _require_fields(item)
    elif isinstance(raw, Mapping):
        if raw.get("type") in ("record", "error") and not isinstance(raw.get("fields"), list):
            raise ValueError(
                f"invalid Avro schema: record {raw.get('name')!r} has no 'fields' list"
            )
        for value in raw.values():
            _require_fields(value)


def _check_name(name: object, what: str) -> str:
    text = str(name)
    if not all(_NAME.fullmatch(part) for part in text.split(".")):
        raise ValueError(f"invalid Avro schema: {what} name {text!r} is not a valid Avro name")
    return text


def _walk(schema: object, names: dict[str, Mapping[str, object]]) -> None:
    """Collect named types, and check what fastavro lets pass (names, fields, unions)."""
    if isinstance(schema, list):
        _walk_union(schema, names)
        return
    if not isinstance(schema, Mapping):
        return
    s = cast("Mapping[str, object]", schema)
    k = kind(s)
    if k in NAMED:
        names[_check_name(s["name"], k)] = s
    if k == "record":
        _walk_record(s, names)
    elif k == "enum":
        for symbol in cast("list[object]", s["symbols"]):
            _check_name(symbol, "enum symbol")
    elif k == "array":
        _walk(s["items"], names)
    elif k == "map":
        _walk(s["values"], names)


def _walk_union(branches: list[object], names: dict[str, Mapping[str, object]]) -> None:
    seen: set[str] = set()
    for branch in branches:
        if isinstance(branch, list):
            raise ValueError("invalid Avro schema: a union may not immediately contain a union")
        k = kind(branch)
        # A named type by its full name (a reference to one is its full name already).
        key = str(branch["name"]) if isinstance(branch, Mapping) and k in NAMED else k
        if key in seen:
            raise ValueError(f"invalid Avro schema: a union has two branches of type {key!r}")
        seen.add(key)
        _walk(branch, names)


def _walk_record(record: Mapping[str, object], names: dict[str, Mapping[str, object]]) -> None:
    seen: set[str] = set()
    for field in cast("list[Mapping[str, object]]", record["fields"]):
        name = _check_name(field["name"], "field")
        if name in seen:
            raise ValueError(
                f"invalid Avro schema: record {record['name']!r} has two fields named {name!r}"
            )
        seen.add(name)
        _walk(field["type"], names)


_FIRST = ("name", "type", "fields", "symbols", "items", "values", "size")
_KEPT = ("aliases", "default", "logicalType", "precision", "scale")


def _canonical(schema: object, seen: set[str]) -> object:
    """Parsing Canonical Form as JSON values, plus the attributes in ``_KEPT``."""
    if isinstance(schema, list):
        return [_canonical(b, seen) for b in schema]
    if not isinstance(schema, Mapping):
        return schema
    s = cast("Mapping[str, object]", schema)
    if kind(s) in NAMED:
        if s["name"] in seen:
            return s["name"]
        seen.add(str(s["name"]))
    out = {key: _canonical_value(key, s[key], seen) for key in (*_FIRST, *_KEPT) if key in s}
    if set(out) == {"type"} and out["type"] in PRIMITIVES:
        return out["type"]
    return out


def _canonical_value(key: str, value: object, seen: set[str]) -> object:
    if key in {"items", "values"}:
        return _canonical(value, seen)
    if key == "fields":
        return [_canonical_field(f, seen) for f in cast("list[Mapping[str, object]]", value)]
    if key == "aliases":
        return sorted(cast("list[str]", value))
    return value


def _canonical_field(field: Mapping[str, object], seen: set[str]) -> dict[str, object]:
    out: dict[str, object] = {"name": field["name"], "type": _canonical(field["type"], seen)}
    if "aliases" in field:
        out["aliases"] = sorted(cast("list[str]", field["aliases"]))
    if "default" in field:
        out["default"] = field["default"]
    return out
