"""Whether every instance valid under one JSON Schema is valid under another.

``Comparator(reader, writer).compare(r, w, path)`` proves ``w ⊆ r`` for subschemas ``r`` of
the reader's document and ``w`` of the writer's, keyword family by keyword family, and reports
what it cannot prove. Soundness rests on one asymmetry: the reader's constraints are checked
exactly or reported, while the writer's may be widened (``conjoin``, dropped keywords) because
a wider writer that fits the reader proves the narrower one fits too.
"""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.frontend.registry import _json_keywords as keywords
from conveyor.frontend.registry._json_document import Document, Sameness, Unresolvable
from conveyor.frontend.registry._json_objects import objects
from conveyor.frontend.registry._json_util import (
    ALL_TYPES,
    Node,
    admits,
    as_list,
    as_node,
    conjoin,
    contains,
    describe,
    describe_types,
    finite_values,
    overlap,
    type_of_value,
    types_of,
    without,
)
from conveyor.frontend.registry.breaking import Breaking

# Keywords whose meaning depends on the sibling keywords: only an identical schema is proven.
_CONTEXTUAL = ("unevaluatedProperties", "unevaluatedItems")


def _types(schema: object) -> frozenset[str] | None:
    """The types of the instances a schema may accept (from its values when it has some)."""
    if isinstance(schema, bool):
        return None if schema else frozenset()
    node = as_node(schema)
    values = finite_values(node)
    return frozenset(map(type_of_value, values)) if values is not None else types_of(node)


class Comparator:
    """Compares subschemas of a reader's and a writer's JSON Schema documents."""

    def __init__(self, reader: Node, writer: Node) -> None:
        self._r = Document(reader)
        self._w = Document(writer)
        self._same = Sameness(self._r, self._w)
        self._seen: set[tuple[int, int]] = set()
        self._flat: dict[int, tuple[object, object]] = {}
        self._branches: dict[int, tuple[object, list[object]]] = {}
        self._siblings: dict[int, list[object]] = {}
        self._disjoining: set[tuple[int, int]] = set()

    def compare(self, reader: object, writer: object, path: str) -> list[Breaking]:
        """Every reason an instance valid under ``writer`` may be invalid under ``reader``."""
        try:
            r = self._r.expand(reader)
            w = self._w.expand(writer)
        except Unresolvable as e:
            if self._same.schemas(reader, writer):
                return []
            return [
                Breaking(
                    path,
                    "unresolvable_ref",
                    old=None,
                    new=e.ref,
                    message=f"$ref {e.ref!r} does not resolve within the schema",
                )
            ]
        if self._same.schemas(r, w):
            return []
        return self._compare_expanded(r, self._flatten(w), path)

    def _compare_expanded(self, r: object, w: object, path: str) -> list[Breaking]:
        if w is False or r is True:
            return []
        if r is False:
            return [
                Breaking(
                    path,
                    "type_changed",
                    old=describe(w),
                    new="nothing",
                    message="the reader accepts nothing here; the writer does",
                )
            ]
        r_node, w_node = as_node(r), as_node(w)
        key = (id(r_node), id(w_node))
        if key in self._seen:
            return []  # in progress: a recursive schema, resolved coinductively
        self._seen.add(key)
        try:
            return self._compare(r_node, w_node, path)
        finally:
            self._seen.discard(key)

    def _compare(self, r: Node, w: Node, path: str) -> list[Breaking]:
        contextual = [k for k in _CONTEXTUAL if k in r and r[k] is not True]
        if contextual:
            return [
                Breaking(
                    path,
                    "keyword_changed",
                    old=None,
                    new=contextual[0],
                    message=f"with {contextual[0]} only an identical schema is proven compatible",
                )
            ]
        if "anyOf" in w or "oneOf" in w:
            return [b for branch in self._writer_branches(w) for b in self.compare(r, branch, path)]
        if "allOf" in r:
            found = self.compare(without(r, "allOf"), w, path)
            for sub in as_list(r["allOf"]):
                found += self.compare(sub, w, path)
            return found
        if "anyOf" in r or "oneOf" in r:
            return self._reader_branches(r, w, path)
        return self._plain(r, w, path)

    def _flatten(self, writer: object) -> object:
        """The writer with its ``allOf`` merged into it (widened where merging is lossy)."""
        if not isinstance(writer, Mapping) or "allOf" not in writer:
            return writer
        cached = self._flat.get(id(writer))
        if cached is not None:
            return cached[1]
        self._flat[id(writer)] = (writer, without(writer, "allOf"))  # a cycle sees no allOf
        out: object = without(writer, "allOf")
        for sub in as_list(writer["allOf"]):
            try:
                part = self._flatten(self._w.expand(sub))
            except Unresolvable:
                continue  # dropping a writer constraint only widens it
            if part is False:
                out = False
                break
            if isinstance(part, Mapping):
                out = conjoin(as_node(out), part)
        self._flat[id(writer)] = (writer, out)
        return out

    def _writer_branches(self, writer: Node) -> list[object]:
        """The writer as a union of branches, each with the writer's other keywords."""
        cached = self._branches.get(id(writer))
        if cached is not None:
            return cached[1]
        key = "anyOf" if "anyOf" in writer else "oneOf"
        base = without(writer, key)
        parts: list[object] = []
        for sub in as_list(writer[key]):
            try:
                parts.append(self._flatten(self._w.expand(sub)))
            except Unresolvable:
                parts.append(True)
        branches: list[object] = []
        for i, part in enumerate(parts):
            if part is False:
                continue
            branch = conjoin(base, as_node(part))
            branches.append(branch)
            if key == "oneOf":
                # A value valid under this branch is invalid under the writer's other ones.
                self._siblings[id(branch)] = [p for j, p in enumerate(parts) if j != i]
        self._branches[id(writer)] = (writer, branches)
        return branches

    def _reader_branches(self, r: Node, w: Node, path: str) -> list[Breaking]:
        key = "anyOf" if "anyOf" in r else "oneOf"
        found = self.compare(without(r, key), w, path)
        branches = [self._expand_reader(b) for b in as_list(r[key])]
        results = [self.compare(b, w, path) for b in branches]
        fitting = [i for i, result in enumerate(results) if not result]
        if not fitting:
            plausible = [i for i, b in enumerate(branches) if overlap(_types(b), _types(w))]
            if len(plausible) == 1:
                return found + results[plausible[0]]  # the one branch meant: its details
            return [
                *found,
                Breaking(
                    path,
                    "union_narrowed",
                    old=describe(w),
                    new=f"{key} of {len(branches)}",
                    message=f"no branch of the reader's {key} accepts every value of the "
                    f"writer's {describe(w)}",
                ),
            ]
        if key == "oneOf":
            others = [b for i, b in enumerate(branches) if i != fitting[0]]
            if len(fitting) > 1 or not all(self._disjoint(w, b) for b in others):
                found.append(
                    Breaking(
                        path,
                        "one_of_overlap",
                        old=describe(w),
                        new=f"oneOf of {len(branches)}",
                        message="a writer value may match more than one branch of the "
                        "reader's oneOf",
                    )
                )
        return found

    def _expand_reader(self, schema: object) -> object:
        try:
            return self._r.expand(schema)
        except Unresolvable:
            return schema

    def _disjoint(self, writer: object, branch: object) -> bool:
        """Whether no writer value is valid under the reader's ``branch`` (when provable)."""
        if writer is False or not isinstance(branch, Mapping):
            return writer is False or branch is False
        if not overlap(_types(writer), _types(branch)):
            return True
        w, b = as_node(writer), as_node(branch)
        by_values = self._disjoint_values(w, b)
        if by_values is not None:
            return by_values
        if any(self._same.schemas(b, s) for s in self._siblings.get(id(writer), [])):
            return True
        key = (id(w), id(b))
        if key in self._disjoining:
            return False  # a recursive discriminator: not proven
        self._disjoining.add(key)
        try:
            return self._discriminated(w, b)
        finally:
            self._disjoining.discard(key)

    def _disjoint_values(self, w: Node, b: Node) -> bool | None:
        """Disjointness decided by the writer's finite values, when it has them."""
        values = finite_values(w)
        if values is None:
            return None
        validator = self._r.validator(b)
        if validator is not None:
            return not any(validator.is_valid(v) for v in values)
        b_values = finite_values(b)
        return None if b_values is None else not any(contains(b_values, v) for v in values)

    def _discriminated(self, w: Node, b: Node) -> bool:
        """A required writer property whose values the branch rejects (a discriminator)."""
        if types_of(w) != frozenset({"object"}):
            return False
        w_props, b_props = as_node(w.get("properties")), as_node(b.get("properties"))
        return any(
            name in w_props
            and name in b_props
            and self._disjoint(self._flatten(w_props[name]), self._expand_reader(b_props[name]))
            for name in map(str, as_list(w.get("required")))
        )

    def _plain(self, r: Node, w: Node, path: str) -> list[Breaking]:
        values = finite_values(w)
        writer_validator = self._w.validator(w) if values is not None else None
        if values is not None and writer_validator is not None:
            values = [v for v in values if writer_validator.is_valid(v)]
        if values is not None:
            validator = self._r.validator(r)
            if validator is not None:
                bad = [v for v in values if not validator.is_valid(v)]
                return [keywords.enum_narrowed(path, values, r, bad)] if bad else []
        w_types = _types(w)
        writes = ALL_TYPES if w_types is None else w_types
        r_types = types_of(r)
        found: list[Breaking] = []
        rejected = {t for t in writes if not admits(r_types, t)}
        if rejected:
            found.append(
                Breaking(
                    path,
                    "type_changed",
                    old=describe_types(w_types),
                    new=describe_types(r_types),
                    message=f"the reader's type {describe_types(r_types)} rejects the "
                    f"writer's {', '.join(sorted(rejected))}",
                )
            )
        found += keywords.enumerations(r, values, w_types, path)
        found += self._by_type(r, w, path, writes - rejected)
        return found + keywords.others(r, w, path, self._same.keyword)

    def _by_type(self, r: Node, w: Node, path: str, live: frozenset[str]) -> list[Breaking]:
        """The keywords of each type the writer may write and the reader accepts."""
        found: list[Breaking] = []
        if live & {"number", "integer"}:
            found += keywords.numbers(r, w, path, integers_only="number" not in live)
        if "string" in live:
            found += keywords.strings(r, w, path)
        if "array" in live:
            found += keywords.arrays(r, w, path, self.compare)
        if "object" in live:
            found += objects(r, w, path, self.compare) + keywords.counts(r, w, path)
        return found
