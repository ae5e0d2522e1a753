"""An Avro schema as the JSON Schema (2020-12) of its canonical JSON form.

Conveyor keeps every payload as plain JSON: an Avro record is a JSON object, a union is the
value of one of its branches (no ``{"type": value}`` wrapper), bytes and fixed are strings of
code points 0-255 (as in Avro's JSON encoding). Validating that form against this JSON Schema
gives the same JSON-pointer errors for all three schema types, and is what makes an event
encodable with its Avro schema (every record field present unless it has a default, no
unknown field, ints in range).
"""

from __future__ import annotations

from collections.abc import Mapping

JsonSchema = dict[str, object]

_INT = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_LONG = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
_PRIMITIVES: dict[str, JsonSchema] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": _INT,
    "long": _LONG,
    "float": {"type": "number"},
    "double": {"type": "number"},
    "bytes": {"type": "string"},
    "string": {"type": "string"},
}


def to_json_schema(schema: object) -> JsonSchema:
    """The JSON Schema of an Avro schema's canonical JSON form.

    Args:
        schema: the Avro schema as parsed JSON (a name, a list for a union, or a mapping).
    """
    defs: dict[str, JsonSchema] = {}
    root = _convert(schema, defs, "")
    out: JsonSchema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}
    if defs:
        out["$defs"] = defs
    return out


def _convert(schema: object, defs: dict[str, JsonSchema], namespace: str) -> JsonSchema:
    if isinstance(schema, str):
        return _reference(schema, defs, namespace)
    if isinstance(schema, list):
        return _union(schema, defs, namespace)
    if not isinstance(schema, Mapping):
        raise ValueError(f"not an Avro schema: {schema!r}")
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        return _named(schema, str(kind), defs, namespace)
    if kind in ("array", "map"):
        inner = _convert(schema.get("items" if kind == "array" else "values"), defs, namespace)
        if kind == "array":
            return {"type": "array", "items": inner}
        return {"type": "object", "additionalProperties": inner}
    return _convert(kind, defs, namespace)  # a primitive written as {"type": "int", ...}


def _union(branches: list[object], defs: dict[str, JsonSchema], namespace: str) -> JsonSchema:
    if not branches:
        return {"not": {}}  # an empty union has no value (and ``anyOf`` must not be empty)
    return {"anyOf": [_convert(branch, defs, namespace) for branch in branches]}


def _reference(name: str, defs: dict[str, JsonSchema], namespace: str) -> JsonSchema:
    if name in _PRIMITIVES:
        return dict(_PRIMITIVES[name])
    full = name if "." in name or not namespace else f"{namespace}.{name}"
    if full not in defs and name in defs:
        full = name
    return {"$ref": f"#/$defs/{full}"}


def _named(
    schema: Mapping[str, object], kind: str, defs: dict[str, JsonSchema], namespace: str
) -> JsonSchema:
    raw_name = str(schema.get("name"))
    space = str(schema.get("namespace") or namespace)
    full = raw_name if "." in raw_name or not space else f"{space}.{raw_name}"
    ref: JsonSchema = {"$ref": f"#/$defs/{full}"}
    if full in defs:
        return ref
    defs[full] = {}  # placeholder first: a record may refer to itself
    inner_space = full.rpartition(".")[0]
    if kind == "enum":
        defs[full] = {"enum": list(schema.get("symbols") or [])}  # type: ignore[call-overload]
    elif kind == "fixed":
        size = int(schema.get("size") or 0)  # type: ignore[call-overload]
        defs[full] = {"type": "string", "minLength": size, "maxLength": size}
    else:
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for field in schema.get("fields") or []:  # type: ignore[attr-defined]
            name = str(field["name"])
            properties[name] = _convert(field["type"], defs, inner_space)
            if "default" not in field:
                required.append(name)
        defs[full] = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
    return ref
