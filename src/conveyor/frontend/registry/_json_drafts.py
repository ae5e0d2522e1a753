"""JSON Schema drafts: which draft a document is written in, and what its constraints mean in
the keywords of draft 2020-12, the only vocabulary the comparator knows.

Accepted: drafts 4, 6 and 7, 2019-09 and 2020-12, named by ``$schema`` (``http`` or
``https``, with or without the final ``#``), as Confluent's registry accepts them. A payload
is validated under its schema's own draft (jsonschema-rs picks it from ``$schema``);
``normalize`` restates what each draft means *as jsonschema-rs enforces it*, so that two
versions written in different drafts still compare keyword by keyword:

* array-form ``items`` (before 2020-12) is ``prefixItems``, and ``additionalItems`` the
  ``items`` after them (elsewhere it constrains nothing, and is compared only as a whole);
* ``dependencies`` (every draft: jsonschema-rs enforces it even in 2019-09 and 2020-12) is
  ``dependentRequired`` for its lists and ``dependentSchemas`` for its schemas;
* up to draft 7, the siblings of ``$ref`` are ignored, ``format`` is asserted (kept under
  ``FORMAT_ASSERTION``, which only an identical assertion satisfies), and an ``$id`` (draft 4:
  ``id``) that is a bare fragment is an ``$anchor``; in draft 4, a boolean
  ``exclusiveMaximum``/``exclusiveMinimum`` turns its bound exclusive;
* the keywords a draft does not know are dropped (draft 7 ignores ``prefixItems``,
  ``dependentRequired``, ``unevaluatedProperties``…; draft 6 also ``if``/``then``/``else``;
  draft 4 also ``const``, ``contains`` and ``propertyNames``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from conveyor.frontend.registry._json_util import Node


class Draft(enum.IntEnum):
    """A JSON Schema draft, in publication order."""

    DRAFT_4 = 4
    DRAFT_6 = 6
    DRAFT_7 = 7
    DRAFT_2019_09 = 2019
    DRAFT_2020_12 = 2020


def _uris(path: str) -> list[str]:
    return [f"{s}://json-schema.org/{path}{end}" for s in ("http", "https") for end in ("", "#")]


URIS: dict[str, Draft] = {
    **dict.fromkeys(_uris("draft-04/schema"), Draft.DRAFT_4),
    **dict.fromkeys(_uris("draft-06/schema"), Draft.DRAFT_6),
    **dict.fromkeys(_uris("draft-07/schema"), Draft.DRAFT_7),
    **dict.fromkeys(_uris("draft/2019-09/schema"), Draft.DRAFT_2019_09),
    **dict.fromkeys(_uris("draft/2020-12/schema"), Draft.DRAFT_2020_12),
}
DRAFT_7_URI = "http://json-schema.org/draft-07/schema#"
DRAFT_2020_12_URI = "https://json-schema.org/draft/2020-12/schema"

FORMAT_ASSERTION = "x-conveyor-format-assertion"
"""Where ``normalize`` keeps a ``format`` that the document's draft asserts (not an annotation:
only an identical assertion of the writer satisfies it)."""

# Keywords whose value is a schema, a list of schemas, or a map of names to schemas, in any
# draft (``items`` is a schema or a list; ``dependencies`` maps to schemas or name lists).
_ONE = frozenset(
    {"additionalItems", "additionalProperties", "not", "if", "then", "else", "contains",
     "propertyNames", "unevaluatedProperties", "unevaluatedItems", "contentSchema"}
)  # fmt: skip
_MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_MAP = frozenset(
    {"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"}
)  # fmt: skip
# The keywords that constrain an instance, in any draft (the siblings a draft-7 $ref hides).
_CONSTRAINTS = frozenset(
    {"type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
     "exclusiveMinimum", "maxLength", "minLength", "pattern", "format", "items",
     "additionalItems", "prefixItems", "maxItems", "minItems", "uniqueItems", "contains",
     "minContains", "maxContains", "maxProperties", "minProperties", "required",
     "properties", "patternProperties", "additionalProperties", "dependencies",
     "dependentRequired", "dependentSchemas", "propertyNames", "if", "then", "else", "allOf",
     "anyOf", "oneOf", "not", "unevaluatedItems", "unevaluatedProperties", "$dynamicRef",
     "$recursiveRef"}
)  # fmt: skip
_UNKNOWN_TO_7 = frozenset(
    {"prefixItems", "dependentRequired", "dependentSchemas", "unevaluatedProperties",
     "unevaluatedItems", "minContains", "maxContains", "$dynamicRef", "$recursiveRef"}
)  # fmt: skip
_UNKNOWN: dict[Draft, frozenset[str]] = {
    Draft.DRAFT_4: _UNKNOWN_TO_7 | {"if", "then", "else", "const", "contains", "propertyNames"},
    Draft.DRAFT_6: _UNKNOWN_TO_7 | {"if", "then", "else"},
    Draft.DRAFT_7: _UNKNOWN_TO_7,
    Draft.DRAFT_2019_09: frozenset({"prefixItems", "$dynamicRef"}),
    Draft.DRAFT_2020_12: frozenset(),
}


def declared_draft(schema: Node) -> Draft | None:
    """The draft ``$schema`` names, or None without one.

    Raises:
        ValueError: ``$schema`` names no draft this registry accepts.
    """
    declared = schema.get("$schema")
    if declared is None:
        return None
    draft = URIS.get(declared) if isinstance(declared, str) else None
    if draft is None:
        raise ValueError(
            f"$schema {declared!r} is not a JSON Schema draft this registry accepts "
            "(draft-04, draft-06, draft-07, 2019-09 or 2020-12 from json-schema.org)"
        )
    return draft


def normalize(schema: Node) -> dict[str, object]:
    """The document restated in draft 2020-12 keywords (see the module docstring).

    Args:
        schema: a parsed document (its ``$schema`` names the draft; none is 2020-12).
    """
    out = _object(schema, declared_draft(schema) or Draft.DRAFT_2020_12)
    out["$schema"] = DRAFT_2020_12_URI
    return out


def _node(node: object, draft: Draft) -> object:
    return _object(node, draft) if isinstance(node, Mapping) else node  # or a boolean schema


def _object(node: Node, draft: Draft) -> dict[str, object]:
    out = {str(key): _children(str(key), value, draft) for key, value in node.items()}
    if draft <= Draft.DRAFT_7 and "$ref" in out:
        out = {k: v for k, v in out.items() if k == "$ref" or k not in _CONSTRAINTS}
    for key in _UNKNOWN[draft]:
        out.pop(key, None)
    if isinstance(out.get("items"), list):
        out["prefixItems"] = out.pop("items")
        if "additionalItems" in out:
            out["items"] = out.pop("additionalItems")
    # An additionalItems left (beside a single items schema, or none) constrains nothing, but
    # stays a keyword compared only when identical, as Confluent's registry compares it.
    if "dependencies" in out:
        _split_dependencies(out)
    if draft <= Draft.DRAFT_7:
        _old_identity_and_format(out, draft)
    return out


def _children(key: str, value: object, draft: Draft) -> object:
    """A keyword's value with the schemas in it normalized (other values as they are)."""
    if key in _ONE or (key == "items" and not isinstance(value, list)):
        return _node(value, draft)
    if (key in _MANY or key == "items") and isinstance(value, list):
        return [_node(v, draft) for v in value]
    if (key in _MAP or key == "dependencies") and isinstance(value, Mapping):
        return {
            str(name): v if isinstance(v, list) else _node(v, draft) for name, v in value.items()
        }
    return value


def _split_dependencies(out: dict[str, object]) -> None:
    """``dependencies`` into ``dependentRequired`` and ``dependentSchemas`` (merged)."""
    dependencies = out.pop("dependencies")
    if not isinstance(dependencies, Mapping):
        return
    required = dict(_mapping(out.get("dependentRequired")))
    schemas = dict(_mapping(out.get("dependentSchemas")))
    for name, dependency in dependencies.items():
        if isinstance(dependency, list):
            earlier = required.get(name)
            required[name] = [*(earlier if isinstance(earlier, list) else []), *dependency]
        elif name in schemas:
            schemas[name] = {"allOf": [schemas[name], dependency]}
        else:
            schemas[name] = dependency
    if required:
        out["dependentRequired"] = required
    if schemas:
        out["dependentSchemas"] = schemas


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _old_identity_and_format(out: dict[str, object], draft: Draft) -> None:
    """Draft 7 and before: fragment ids are anchors, ``format`` asserts; draft 4's ``id`` and
    boolean exclusive bounds."""
    if draft is Draft.DRAFT_4:
        if "id" in out and "$id" not in out:
            out["$id"] = out.pop("id")
        for bound, exclusive in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
            flag = out.pop(exclusive, None)
            if flag is True and bound in out:
                out[exclusive] = out.pop(bound)
    ident = out.get("$id")
    if isinstance(ident, str) and ident.startswith("#"):
        del out["$id"]
        out["$anchor"] = ident[1:]
    if isinstance(out.get("format"), str):
        out[FORMAT_ASSERTION] = out.pop("format")
