"""Small helpers over JSON Schema (draft 2020-12) nodes, shared by the compatibility modules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TypeAlias, cast

from conveyor.frontend.registry.breaking import Breaking

Node: TypeAlias = Mapping[str, object]
Compare: TypeAlias = Callable[[object, object, str], list[Breaking]]
"""``compare(reader, writer, path)``: every writer instance at ``path`` valid under reader?"""

EMPTY: Node = MappingProxyType({})
ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string"})

# Keywords that never reject an instance (format is an annotation in 2020-12 by default, and
# the payload validator does not assert it either).
ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "$defs", "definitions",
        "$vocabulary", "title", "description", "default", "examples", "deprecated",
        "readOnly", "writeOnly", "format", "contentEncoding", "contentMediaType",
        "contentSchema",
    }
)  # fmt: skip


def as_node(value: object) -> Node:
    """A mapping-shaped keyword value (a schema or a map of schemas); empty otherwise."""
    return cast("Node", value) if isinstance(value, Mapping) else EMPTY


def as_list(value: object) -> list[object]:
    """A list-shaped keyword value; empty otherwise."""
    return list(value) if isinstance(value, list) else []


def types_of(node: Node) -> frozenset[str] | None:
    """The node's ``type`` as a set, or None when it does not restrict types."""
    t = node.get("type")
    if isinstance(t, str):
        return frozenset({t})
    if isinstance(t, list):
        return frozenset(str(x) for x in t)
    return None


def admits(types: frozenset[str] | None, t: str) -> bool:
    """Whether a ``type`` set accepts the instances of type ``t`` (integers are numbers)."""
    return types is None or t in types or (t == "integer" and "number" in types)


def type_of_value(value: object) -> str:
    """The JSON Schema type of a JSON value (an integral number is an ``integer``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    """Whether two ``type`` sets accept a common instance."""
    if a is None or b is None:
        return True
    return any(admits(b, t) for t in a) or any(admits(a, t) for t in b)


def json_eq(a: object, b: object) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1``, as JSON Schema's ``enum`` compares."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_eq(a[k], b[k]) for k in a)
    return bool(a == b)


def contains(values: Iterable[object], value: object) -> bool:
    """Whether ``value`` is among ``values`` by JSON equality."""
    return any(json_eq(value, v) for v in values)


def finite_values(node: Node) -> list[object] | None:
    """The values the node restricts instances to (``enum``, ``const``), or None."""
    values: list[object] | None = None
    if "enum" in node:
        values = as_list(node["enum"])
    if "const" in node:
        const = node["const"]
        values = [const] if values is None or contains(values, const) else []
    types = types_of(node)
    if values is None and types is not None and types <= {"null", "boolean"}:
        values = ([None] if "null" in types else []) + ([False, True] if "boolean" in types else [])
    if values is None or types is None:
        return values
    return [v for v in values if admits(types, type_of_value(v))]


def text(value: object, limit: int = 80) -> str:
    """Compact JSON for a message, shortened past ``limit`` characters."""
    out = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def describe(schema: object) -> str:
    """A short description of a schema: its types, its values or its JSON."""
    if isinstance(schema, bool):
        return "any" if schema else "nothing"
    node = as_node(schema)
    values = finite_values(node) if ("enum" in node or "const" in node) else None
    if values is not None:
        return text(values)
    types = types_of(node)
    if types is not None:
        return "|".join(sorted(types)) or "nothing"
    return text(dict(node)) if node else "any"


def describe_types(types: frozenset[str] | None) -> str:
    """A ``type`` set for a message."""
    return "any" if types is None else ("|".join(sorted(types)) or "nothing")


def without(node: Node, *keys: str) -> Node:
    """The node without ``keys``."""
    return {k: v for k, v in node.items() if k not in keys}


def constrains(node: Node) -> bool:
    """Whether the node has any keyword that can reject an instance."""
    return any(k not in ANNOTATIONS for k in node)


_TIGHTER_LOW = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
_TIGHTER_HIGH = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})


def conjoin(a: Node, b: Node) -> Node:
    """A schema accepting at least every instance valid under both ``a`` and ``b``.

    Exact for the common keywords (``type``, ``required``, ``properties``, ``enum``, bounds);
    a constraint it cannot merge is dropped, which only widens the result. Use it on the
    writer's side only, where a wider schema keeps a compatibility verdict sound.
    """
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
            continue
        current = out[key]
        if key == "required":
            out[key] = list(dict.fromkeys([*as_list(current), *as_list(value)]))
        elif key == "type":
            out[key] = _meet_types(types_of(a), types_of(b))
        elif key == "properties":
            merged = dict(as_node(current))
            for name, schema in as_node(value).items():
                merged[name] = {"allOf": [merged[name], schema]} if name in merged else schema
            out[key] = merged
        elif key == "enum":
            out[key] = [v for v in as_list(current) if contains(as_list(value), v)]
        elif key in _TIGHTER_LOW and isinstance(current, int | float):
            out[key] = max(current, value) if isinstance(value, int | float) else current
        elif key in _TIGHTER_HIGH and isinstance(current, int | float):
            out[key] = min(current, value) if isinstance(value, int | float) else current
    return out


def _meet_types(a: frozenset[str] | None, b: frozenset[str] | None) -> list[str]:
    if a is None or b is None:
        return sorted(a or b or ALL_TYPES)
    both = {t for t in a if admits(b, t)} | {t for t in b if admits(a, t)}
    if "number" in both and not ("number" in a and "number" in b):
        both.discard("number")  # number on one side, integer on the other: integer
    return sorted(both)
