"""JSON Schema compatibility keyword by keyword: values (``enum``, ``const``), numbers,
strings, arrays, object sizes, and any other keyword (proven only when identical).

Each check answers, for one keyword family, whether every instance the writer's keywords allow
is allowed by the reader's, and returns the findings at ``path`` (the schema holding them).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TypeAlias

from conveyor.frontend.registry._json_drafts import FORMAT_ASSERTION
from conveyor.frontend.registry._json_util import (
    ANNOTATIONS,
    Compare,
    Node,
    as_list,
    contains,
    describe,
    describe_types,
    finite_values,
    text,
)
from conveyor.frontend.registry.breaking import Breaking, join

_HANDLED = frozenset(
    {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
     "multipleOf", "minLength", "maxLength", "pattern", "items", "prefixItems", "minItems",
     "maxItems", "uniqueItems", "properties", "patternProperties", "additionalProperties",
     "required", "dependentRequired", "dependentSchemas", "minProperties", "maxProperties",
     "allOf", "anyOf",
     "oneOf", "$ref", "contains", "minContains", "maxContains"}
)  # fmt: skip
_CONTAINS = ("contains", "minContains", "maxContains")

Same: TypeAlias = Callable[[str, object, object], bool]
"""``same(keyword, reader_value, writer_value)``: structural equality of a keyword's values."""
Bound = tuple[float, bool]  # (value, exclusive)

_LOWER = ("minimum", "exclusiveMinimum")
_UPPER = ("maximum", "exclusiveMaximum")


def _number(value: object) -> float:
    """A numeric keyword's value (the schema was validated against the metaschema)."""
    return float(value) if isinstance(value, int | float) else 0.0


def _lower(node: Node) -> Bound | None:
    found = [(_number(node[k]), k == "exclusiveMinimum") for k in _LOWER if k in node]
    # Tighter is larger; at a tie the exclusive bound is tighter.
    return max(found, key=lambda b: (b[0], b[1])) if found else None


def _upper(node: Node) -> Bound | None:
    found = [(_number(node[k]), k == "exclusiveMaximum") for k in _UPPER if k in node]
    return min(found, key=lambda b: (b[0], not b[1])) if found else None


def _within_lower(reader: Bound | None, writer: Bound | None) -> bool:
    if reader is None:
        return True
    if writer is None:
        return False
    return writer[0] > reader[0] or (writer[0] == reader[0] and (writer[1] or not reader[1]))


def _within_upper(reader: Bound | None, writer: Bound | None) -> bool:
    if reader is None:
        return True
    if writer is None:
        return False
    return writer[0] < reader[0] or (writer[0] == reader[0] and (writer[1] or not reader[1]))


def _bound_text(bound: Bound | None, side: str) -> str:
    if bound is None:
        return f"no {side}imum"
    keyword = f"exclusive{side.capitalize()}imum" if bound[1] else f"{side}imum"
    return f"{keyword} {bound[0]}"


def numbers(reader: Node, writer: Node, path: str, *, integers_only: bool) -> list[Breaking]:
    """``minimum``, ``maximum``, their exclusive forms and ``multipleOf``."""
    found: list[Breaking] = []
    for side, get, within in (("min", _lower, _within_lower), ("max", _upper, _within_upper)):
        r, w = get(reader), get(writer)
        if not within(r, w):
            found.append(
                Breaking(
                    path,
                    "range_narrowed",
                    old=_bound_text(w, side),
                    new=_bound_text(r, side),
                    message=f"the reader's {_bound_text(r, side)} rejects numbers the writer "
                    f"allows ({_bound_text(w, side)})",
                )
            )
    if "multipleOf" in reader and not _divides(
        reader["multipleOf"], writer.get("multipleOf"), integers_only=integers_only
    ):
        found.append(
            Breaking(
                path,
                "multiple_of_changed",
                old=text(writer.get("multipleOf")),
                new=text(reader["multipleOf"]),
                message=f"the writer's numbers need not be multiples of {reader['multipleOf']}",
            )
        )
    return found


def _divides(reader: object, writer: object, *, integers_only: bool) -> bool:
    """Whether every writer number (a multiple of ``writer``) is a multiple of ``reader``."""
    r = Fraction(str(reader))
    if integers_only and (1 / r).denominator == 1:
        return True
    return writer is not None and (Fraction(str(writer)) / r).denominator == 1


def _lengths(
    reader: Node, writer: Node, path: str, *, low: str, high: str, what: str
) -> list[Breaking]:
    """A pair of count bounds (``minLength``/``maxLength``, ``minItems``/``maxItems``…)."""
    found: list[Breaking] = []
    r_low, w_low = _number(reader.get(low, 0)), _number(writer.get(low, 0))
    if r_low > w_low:
        found.append(_narrowed(path, low, writer.get(low, 0), reader[low], what))
    if high in reader and (high not in writer or _number(writer[high]) > _number(reader[high])):
        found.append(_narrowed(path, high, writer.get(high), reader[high], what))
    return found


def _narrowed(path: str, keyword: str, old: object, new: object, what: str) -> Breaking:
    return Breaking(
        path,
        "length_narrowed",
        old=f"{keyword} {old}" if old is not None else f"no {keyword}",
        new=f"{keyword} {new}",
        message=f"the reader's {keyword} {new} rejects {what} the writer allows",
    )


def strings(reader: Node, writer: Node, path: str) -> list[Breaking]:
    """``minLength``, ``maxLength`` and ``pattern`` (patterns must be equal: regex inclusion
    is not decided)."""
    found = _lengths(reader, writer, path, low="minLength", high="maxLength", what="string lengths")
    if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
        found.append(
            Breaking(
                path,
                "pattern_changed",
                old=text(writer.get("pattern")),
                new=text(reader["pattern"]),
                message=f"the reader's pattern {reader['pattern']!r} may reject strings the "
                f"writer allows",
            )
        )
    return found


def counts(reader: Node, writer: Node, path: str) -> list[Breaking]:
    """``minProperties`` and ``maxProperties``."""
    return _lengths(
        reader, writer, path, low="minProperties", high="maxProperties", what="object sizes"
    )


def arrays(reader: Node, writer: Node, path: str, compare: Compare) -> list[Breaking]:
    """``prefixItems``, ``items``, ``minItems``, ``maxItems`` and ``uniqueItems``."""
    found = _lengths(reader, writer, path, low="minItems", high="maxItems", what="array lengths")
    r_prefix, w_prefix = as_list(reader.get("prefixItems")), as_list(writer.get("prefixItems"))
    w_max = writer.get("maxItems")
    for i in range(max(len(r_prefix), len(w_prefix))):
        if isinstance(w_max, int) and i >= w_max:
            break  # the writer never has an item here
        r_item = r_prefix[i] if i < len(r_prefix) else reader.get("items", True)
        w_item = w_prefix[i] if i < len(w_prefix) else writer.get("items", True)
        at = join(path, "prefixItems", str(i)) if i < len(r_prefix) else join(path, "items")
        found += compare(r_item, w_item, at)
    beyond = max(len(r_prefix), len(w_prefix))
    if not (isinstance(w_max, int) and w_max <= beyond):
        found += compare(reader.get("items", True), writer.get("items", True), join(path, "items"))
    unique_anyway = isinstance(w_max, int) and w_max <= 1
    if (
        reader.get("uniqueItems") is True
        and writer.get("uniqueItems") is not True
        and not unique_anyway
    ):
        found.append(
            Breaking(
                path,
                "unique_items_added",
                old="uniqueItems false",
                new="uniqueItems true",
                message="the reader requires unique items; the writer allows duplicates",
            )
        )
    return found


def enumerations(
    r: Node, written: list[object] | None, w_types: frozenset[str] | None, path: str
) -> list[Breaking]:
    """The reader's ``enum``/``const`` against the writer's values (None: not finite)."""
    if "enum" not in r and "const" not in r:
        return []
    allowed = finite_values(r) or []
    if written is None:
        return [
            Breaking(
                path,
                "enum_narrowed",
                old=f"any {describe_types(w_types)}",
                new=text(allowed),
                message=f"the reader only accepts {text(allowed)}; the writer is not "
                f"restricted to those values",
            )
        ]
    bad = [v for v in written if not contains(allowed, v)]
    return [enum_narrowed(path, written, r, bad)] if bad else []


def enum_narrowed(path: str, values: list[object], r: Node, bad: list[object]) -> Breaking:
    """The reader rejects the writer's values ``bad``, out of ``values``."""
    return Breaking(
        path,
        "enum_narrowed",
        old=text(values),
        new=describe(r),
        message=f"the reader rejects the writer's value(s) {text(bad)}",
    )


def others(r: Node, w: Node, path: str, same: Same) -> list[Breaking]:
    """Any other reader keyword must be the writer's own (compared structurally)."""
    changed = [
        k
        for k in r
        if k not in ANNOTATIONS and k not in _HANDLED and not (k in w and same(k, r[k], w[k]))
    ]
    if any(k in r for k in _CONTAINS) and not all(
        (k in r) == (k in w) and (k not in r or same(k, r[k], w[k])) for k in _CONTAINS
    ):
        changed.append("contains")
    return [
        Breaking(
            path,
            "keyword_changed",
            old=text(w[k]) if k in w else None,
            new=text(r[k]),
            message=f"the reader's {_shown(k)} differs from the writer's, and is only proven "
            f"compatible when identical",
        )
        for k in changed
    ]


def _shown(keyword: str) -> str:
    if keyword == FORMAT_ASSERTION:
        return "format (asserted by its draft)"
    return keyword
