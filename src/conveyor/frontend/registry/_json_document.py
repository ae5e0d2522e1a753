"""One JSON Schema document: local ``$ref`` resolution, structural equality, and validators
for its subschemas."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import cast
from urllib.parse import unquote

import jsonschema_rs

from conveyor.frontend.registry._json_drafts import FORMAT_ASSERTION
from conveyor.frontend.registry._json_util import ANNOTATIONS, Node, as_list, as_node, json_eq

# Keywords whose value is a schema, a list of schemas, or a map of names to schemas.
_SCHEMA = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
     "unevaluatedProperties", "unevaluatedItems"}
)  # fmt: skip
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP = frozenset({"properties", "patternProperties", "dependentSchemas"})
_LOCAL_DEFS = re.compile(r"#/(\$defs|definitions)/")


class Unresolvable(Exception):
    """A ``$ref`` that does not resolve within its document."""

    def __init__(self, ref: str) -> None:
        super().__init__(ref)
        self.ref = ref


def walk(node: object) -> Iterator[Node]:
    """Every mapping in a JSON value, depth first."""
    if isinstance(node, Mapping):
        yield cast("Node", node)
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


class Document:
    """A JSON Schema document whose subschemas are compared."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self._anchors = {
            str(n["$anchor"]): n for n in walk(root) if isinstance(n.get("$anchor"), str)
        }
        # A 2020-12 validator would ignore a draft-7 format assertion or a 2019-09
        # $recursiveRef, and accept too much: such a document gets no validators.
        self._validating = not any(
            FORMAT_ASSERTION in n or "$recursiveRef" in n for n in walk(root)
        )
        # Subschemas can be validated on their own when every reference is to root $defs.
        self._self_contained = all(
            (not isinstance(n.get("$ref"), str) or _LOCAL_DEFS.match(str(n["$ref"])))
            and "$dynamicRef" not in n
            and (n is root or "$id" not in n)
            for n in walk(root)
        )
        # Both caches keep their keys' objects alive, so that an id is never reused.
        self._expanded: dict[int, tuple[object, object]] = {}
        self._validators: dict[int, tuple[object, jsonschema_rs.Validator | None]] = {}

    def resolve(self, ref: str) -> object:
        """The subschema a local reference (``#``, ``#/pointer``, ``#anchor``) names.

        Raises:
            Unresolvable: the reference points elsewhere or nowhere.
        """
        if ref.startswith("#") and not ref.startswith("#/") and ref != "#":
            if ref[1:] in self._anchors:
                return self._anchors[ref[1:]]
            raise Unresolvable(ref)
        if not ref.startswith("#"):
            raise Unresolvable(ref)
        node: object = self.root
        for token in filter(None, unquote(ref[1:]).split("/")):
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise Unresolvable(ref)
        return node

    def expand(self, node: object) -> object:
        """``node`` with its ``$ref`` followed; other constraints beside it join an ``allOf``.

        Raises:
            Unresolvable: a reference does not resolve, or references only loop.
        """
        if not isinstance(node, Mapping) or not isinstance(node.get("$ref"), str):
            return node
        cached = self._expanded.get(id(node))
        if cached is not None:
            return cached[1]
        current: object = node
        for _ in range(64):
            if not isinstance(current, Mapping) or not isinstance(current.get("$ref"), str):
                break
            target = self.resolve(str(current["$ref"]))
            rest = {k: v for k, v in current.items() if k != "$ref" and k not in ANNOTATIONS}
            if rest:
                current = {**rest, "allOf": [target, *as_list(rest.get("allOf"))]}
                break
            current = target
        else:
            raise Unresolvable(str(node["$ref"]))
        self._expanded[id(node)] = (node, current)
        return current

    def validator(self, node: object) -> jsonschema_rs.Validator | None:
        """A validator for the subschema ``node``, or None when it cannot stand alone."""
        cached = self._validators.get(id(node))
        if cached is not None:
            return cached[1]
        schema: dict[str, object] | bool | None = None
        if not self._validating:
            schema = None
        elif isinstance(node, bool):
            schema = node
        elif node is self.root:
            schema = dict(self.root)
        elif (
            self._self_contained
            and isinstance(node, Mapping)
            and not node.keys() & {"$id", "$defs", "definitions", "$anchor", "$dynamicAnchor"}
        ):
            defs = {k: self.root[k] for k in ("$defs", "definitions") if k in self.root}
            schema = {**node, **defs}
        validator = None
        if schema is not None:
            try:
                validator = jsonschema_rs.Draft202012Validator(schema)
            except (jsonschema_rs.ValidationError, ValueError, TypeError):
                validator = None
        self._validators[id(node)] = (node, validator)
        return validator


class Sameness:
    """Structural equality of subschemas of two documents, following references."""

    def __init__(self, left: Document, right: Document) -> None:
        self._left = left
        self._right = right
        self._seen: set[tuple[int, int]] = set()

    def schemas(self, a: object, b: object) -> bool:
        """Whether two subschemas are the same, ignoring annotations."""
        try:
            a, b = self._left.expand(a), self._right.expand(b)
        except Unresolvable:
            return json_eq(a, b)
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            return json_eq(a, b)
        key = (id(a), id(b))
        if key in self._seen:
            return True  # a recursive schema meeting itself while being compared
        keys = {k for k in a if k not in ANNOTATIONS}
        if keys != {k for k in b if k not in ANNOTATIONS}:
            return False
        self._seen.add(key)
        try:
            return all(self.keyword(k, a[k], b[k]) for k in keys)
        finally:
            self._seen.discard(key)

    def keyword(self, keyword: str, a: object, b: object) -> bool:
        """Whether two values of ``keyword`` are the same."""
        if keyword in _SCHEMA:
            return self.schemas(a, b)
        if keyword in _SCHEMA_LIST:
            left, right = as_list(a), as_list(b)
            return len(left) == len(right) and all(map(self.schemas, left, right))
        if keyword in _SCHEMA_MAP:
            left_map, right_map = as_node(a), as_node(b)
            return left_map.keys() == right_map.keys() and all(
                self.schemas(left_map[k], right_map[k]) for k in left_map
            )
        return json_eq(a, b)
