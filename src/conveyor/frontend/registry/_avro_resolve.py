"""Avro schema resolution (specification 1.11, "Schema Resolution"), as a list of findings.

Schemas here are fastavro-parsed JSON: a type name (primitive or the full name of a named type
defined elsewhere in the schema), a list (a union) or a mapping. ``names`` maps every named
type's full name to its definition.

Paths name what they cross: ``/fields/<reader field name>``, ``/items``, ``/values``, and
``/<branch>`` for a union branch, by its type name (``null``, ``com.acme.Card``, ``array``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from conveyor.frontend.registry.breaking import Breaking, join

Names = Mapping[str, Mapping[str, object]]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})

# The spec's promotions: the writer's type (key) may be read as any of the reader's (value).
_PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def deref(schema: object, names: Names) -> object:
    """The definition of a named-type reference; any other schema unchanged."""
    if isinstance(schema, str) and schema not in PRIMITIVES:
        return names[schema]
    return schema


def kind(schema: object) -> str:
    """``record``, ``enum``, ``fixed``, ``array``, ``map``, a primitive name, or ``union``."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, Mapping):
        t = schema["type"]
        return "record" if t == "error" else str(t)
    return str(schema)


def describe(schema: object) -> str:
    """A short description of a type: ``int``, ``com.acme.Order``, ``array<string>``…"""
    if isinstance(schema, list):
        return "[" + ", ".join(describe(b) for b in schema) + "]"
    if not isinstance(schema, Mapping):
        return str(schema)
    k = kind(schema)
    if k in NAMED:
        return str(schema["name"])
    if k == "array":
        return f"array<{describe(schema['items'])}>"
    if k == "map":
        return f"map<{describe(schema['values'])}>"
    logical = schema.get("logicalType")
    return f"{k}({logical})" if logical else k


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _names_match(reader: Mapping[str, object], writer: Mapping[str, object]) -> bool:
    """The spec's rule: same unqualified name, or a reader alias naming the writer's type."""
    r_name, w_name = str(reader["name"]), str(writer["name"])
    aliases = [str(a) for a in cast("list[object]", reader.get("aliases", []))]
    return _short(r_name) == _short(w_name) or _short(w_name) in {_short(a) for a in aliases}


def _breaking(path: str, rule: str, reader: object, writer: object, message: str) -> Breaking:
    return Breaking(path, rule, old=describe(writer), new=describe(reader), message=message)


class Resolver:
    """Resolves a writer's schema against a reader's, collecting every failure."""

    def __init__(self, reader_names: Names, writer_names: Names) -> None:
        self._r = reader_names
        self._w = writer_names
        # Record pairs being resolved: a recursive type meeting itself again is resolved
        # coinductively (assumed to resolve), which is what makes recursion terminate.
        self._seen: set[tuple[str, str]] = set()

    def resolve(self, reader: object, writer: object, path: str) -> list[Breaking]:
        """Every reason data of type ``writer`` at ``path`` cannot be read as ``reader``."""
        r, w = deref(reader, self._r), deref(writer, self._w)
        if isinstance(w, list):
            return self._writer_union(r, w, path)
        if isinstance(r, list):
            return self._reader_union(r, w, path)
        rk, wk = kind(r), kind(w)
        if rk == wk:
            return self._same_kind(rk, r, w, path)
        if rk in _PROMOTIONS.get(wk, frozenset()):
            return []
        return [
            _breaking(path, "type_changed", r, w, f"{describe(w)} cannot be read as {describe(r)}")
        ]

    def _branch(self, branch: object, names: Names) -> str:
        """A union branch's name in paths: a named type's full name, else its kind."""
        b = deref(branch, names)
        return str(b["name"]) if isinstance(b, Mapping) and kind(b) in NAMED else kind(b)

    def _select(self, branches: list[object], writer: object) -> int | None:
        """The reader branch the spec picks: the first of the same type, else a promotion."""
        resolved = [deref(b, self._r) for b in branches]
        wk = kind(writer)
        for i, b in enumerate(resolved):
            if kind(b) == wk and (
                wk not in NAMED
                or _names_match(
                    cast("Mapping[str, object]", b), cast("Mapping[str, object]", writer)
                )
            ):
                return i
        for i, b in enumerate(resolved):
            if kind(b) in _PROMOTIONS.get(wk, frozenset()):
                return i
        return None

    def _writer_union(self, reader: object, branches: list[object], path: str) -> list[Breaking]:
        """Every branch the writer may write must resolve."""
        found: list[Breaking] = []
        for branch in branches:
            w = deref(branch, self._w)
            at = join(path, self._branch(w, self._w))
            if isinstance(reader, list):
                i = self._select(reader, w)
                target = None if i is None else reader[i]
            else:
                # Same kind (names are checked by resolve, for a specific rule) or promotable.
                wk = kind(w)
                same = kind(reader) == wk or kind(reader) in _PROMOTIONS.get(wk, frozenset())
                target = reader if same else None
            if target is None:
                found.append(
                    _breaking(
                        at,
                        "union_narrowed",
                        reader,
                        w,
                        f"the writer's union branch {describe(w)} matches no type of the "
                        f"reader's {describe(reader)}",
                    )
                )
            else:
                found += self.resolve(target, w, at)
        return found

    def _reader_union(self, branches: list[object], writer: object, path: str) -> list[Breaking]:
        i = self._select(branches, writer)
        if i is None:
            return [
                _breaking(
                    path,
                    "type_changed",
                    branches,
                    writer,
                    f"{describe(writer)} matches no branch of the reader's union "
                    f"{describe(branches)}",
                )
            ]
        return self.resolve(branches[i], writer, join(path, self._branch(branches[i], self._r)))

    def _same_kind(self, k: str, reader: object, writer: object, path: str) -> list[Breaking]:
        if not isinstance(reader, Mapping) or not isinstance(writer, Mapping):
            return []  # two primitives named only: identical
        r = cast("Mapping[str, object]", reader)
        w = cast("Mapping[str, object]", writer)
        if k == "array":
            return self.resolve(r["items"], w["items"], join(path, "items"))
        if k == "map":
            return self.resolve(r["values"], w["values"], join(path, "values"))
        found = _logical(r, w, path)
        if k in NAMED and not _names_match(r, w):
            found.append(
                _breaking(
                    path,
                    "name_changed",
                    r,
                    w,
                    f"{k} {w['name']} is read as {r['name']}, which neither has its "
                    f"unqualified name nor lists it among its aliases",
                )
            )
        if k == "fixed" and r["size"] != w["size"]:
            found.append(
                Breaking(
                    path,
                    "size_changed",
                    old=str(w["size"]),
                    new=str(r["size"]),
                    message=f"fixed {w['name']} of {w['size']} bytes is read as {r['size']} bytes",
                )
            )
        if k == "enum":
            found += _enum(r, w, path)
        if k == "record":
            found += self._record(r, w, path)
        return found

    def _record(
        self, reader: Mapping[str, object], writer: Mapping[str, object], path: str
    ) -> list[Breaking]:
        key = (str(reader["name"]), str(writer["name"]))
        if key in self._seen:
            return []
        self._seen.add(key)
        writer_fields = {
            str(f["name"]): f for f in cast("list[Mapping[str, object]]", writer["fields"])
        }
        found: list[Breaking] = []
        for field in cast("list[Mapping[str, object]]", reader["fields"]):
            name = str(field["name"])
            at = join(path, "fields", name)
            aliases = cast("list[str]", field.get("aliases", []))
            match = next((writer_fields[n] for n in (name, *aliases) if n in writer_fields), None)
            if match is not None:
                found += self.resolve(field["type"], match["type"], at)
            elif "default" not in field:
                found.append(
                    Breaking(
                        at,
                        "field_added_without_default",
                        old=None,
                        new=describe(deref(field["type"], self._r)),
                        message=f"the reader's field {name!r} has no default and the writer "
                        f"does not write it (by name or alias)",
                    )
                )
        self._seen.discard(key)
        return found


def _enum(reader: Mapping[str, object], writer: Mapping[str, object], path: str) -> list[Breaking]:
    r_symbols = cast("list[str]", reader["symbols"])
    w_symbols = cast("list[str]", writer["symbols"])
    missing = [s for s in w_symbols if s not in r_symbols]
    if not missing or "default" in reader:
        return []
    return [
        Breaking(
            path,
            "enum_narrowed",
            old="{" + ", ".join(w_symbols) + "}",
            new="{" + ", ".join(r_symbols) + "}",
            message=f"enum {reader['name']} lacks the writer's symbol(s) {', '.join(missing)} "
            f"and has no default",
        )
    ]


def _logical(
    reader: Mapping[str, object], writer: Mapping[str, object], path: str
) -> list[Breaking]:
    """Conservative beyond the spec: both sides name a logical type and they disagree.

    The spec resolves on the underlying type alone, but a decimal read with another scale (or
    a smaller precision), or a ``date`` read as ``time-millis``, silently changes values.
    """
    r_logical, w_logical = reader.get("logicalType"), writer.get("logicalType")
    if r_logical is None or w_logical is None:
        return []
    same = r_logical == w_logical
    if same and r_logical == "decimal":
        r_precision = cast("int", reader.get("precision", 0))
        w_precision = cast("int", writer.get("precision", 0))
        same = reader.get("scale", 0) == writer.get("scale", 0) and r_precision >= w_precision
    if same:
        return []
    return [
        Breaking(
            path,
            "logical_type_changed",
            old=_logical_text(writer),
            new=_logical_text(reader),
            message=f"logical type {_logical_text(writer)} is read as {_logical_text(reader)}",
        )
    ]


def _logical_text(schema: Mapping[str, object]) -> str:
    text = str(schema["logicalType"])
    if text == "decimal":
        text += f"({schema.get('precision')},{schema.get('scale', 0)})"
    return text
