"""Compiling: a pattern checked, field by field, into the closures of ``_match.py``.

Every error names the JSON pointer of the offending place and the rule it breaks (see the
package's documentation for the rules).
"""

from __future__ import annotations

import ipaddress
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final

from conveyor.delivery.filters._match import (
    EventTest,
    LeafTest,
    ObjectTest,
    affix_ignore_case,
    all_object,
    always,
    any_leaf,
    any_object,
    between,
    compare,
    event,
    in_network,
    leaf_field,
    leaf_value,
    negate,
    nested_field,
    nested_value,
    wildcard,
)
from conveyor.errors import FilterError

MAX_DEPTH: Final = 10
MAX_VALUES: Final = 100
MAX_STRING: Final = 1024

_TOP_LEVEL = ("attributes", "payload", "key", "$or")
_STRING_MATCHERS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
_MATCHERS = ("anything-but", "cidr", "exists", "numeric", *_STRING_MATCHERS)
_COMPARISONS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
}


class _Leaf:
    """What one array of matchers accepts, gathered while compiling it."""

    def __init__(self) -> None:
        self.strings: set[str] = set()
        self.numbers: set[int | float] = set()
        self.constants: set[bool | None] = set()
        self.tests: list[LeafTest] = []
        self.present = False  # {"exists": true}
        self.missing = False  # {"exists": false}

    def strings_only(self) -> frozenset[str] | None:
        """The exact strings, when they are all the array accepts (the commonest case)."""
        if self.present or self.numbers or self.constants or self.tests:
            return None
        return frozenset(self.strings)

    def build(self) -> LeafTest:
        if self.present:
            return always
        strings = self.strings_only()
        if strings is not None:
            return lambda v: isinstance(v, str) and v in strings
        if not (self.strings or self.numbers or self.constants) and len(self.tests) == 1:
            return self.tests[0]
        return any_leaf(
            frozenset(self.strings),
            frozenset(self.numbers),
            frozenset(self.constants),
            tuple(self.tests),
        )

    def build_excluded(self) -> LeafTest:
        """The test of ``anything-but`` this array's values."""
        strings = self.strings_only()
        if strings is not None:
            return lambda v: not (isinstance(v, str) and v in strings)
        return negate(self.build())


class Compiler:
    """One pattern's compilation: the checks, the count of values, the closures."""

    def __init__(self) -> None:
        self.values = 0

    def event(self, pattern: object, at: str, depth: int) -> EventTest:
        attributes: ObjectTest | None = None
        payload = key = None
        alternatives: tuple[EventTest, ...] = ()
        for name, spec, here in self._fields(pattern, at, depth):
            if name == "$or":
                branches = self._branches(spec, here)
                alternatives = tuple(self.event(b, p, depth + 1) for b, p in branches)
            elif name == "attributes":
                if not isinstance(spec, Mapping):
                    message = "attributes take an object of fields"
                    raise FilterError(message, field=here, rule="type")
                attributes = self.fields(spec, here, depth + 1, flat=True)
            elif name == "payload":
                payload = self.value(spec, here, depth + 1)
            elif name == "key":
                if isinstance(spec, Mapping):
                    message = "the key is a string: it takes an array of matchers"
                    raise FilterError(message, field=here, rule="type")
                key = self.leaf(spec, here, strings=True)
            else:
                expected = ", ".join(_TOP_LEVEL)
                message = f"unknown key {name!r}: a filter has {expected}"
                raise FilterError(message, field=here, rule="unknown_key")
        return event(attributes, payload, key, alternatives)

    def fields(self, pattern: object, at: str, depth: int, *, flat: bool) -> ObjectTest:
        parts: list[ObjectTest] = []
        for name, spec, here in self._fields(pattern, at, depth):
            if name == "$or":
                branches = self._branches(spec, here)
                tests = [self.fields(b, p, depth + 1, flat=flat) for b, p in branches]
                parts.append(any_object(tests))
            elif isinstance(spec, Mapping):
                if flat:
                    message = "attributes are strings: a field takes an array of matchers"
                    raise FilterError(message, field=here, rule="type")
                parts.append(nested_field(name, self.fields(spec, here, depth + 1, flat=False)))
            else:
                leaf = self._leaf(spec, here, strings=flat)
                parts.append(leaf_field(name, leaf.build(), leaf.missing, leaf.strings_only()))
        return all_object(parts)

    def value(self, spec: object, at: str, depth: int) -> LeafTest:
        """A test of the payload: an object pattern or an array of matchers."""
        if isinstance(spec, Mapping):
            return nested_value(self.fields(spec, at, depth, flat=False))
        return self.leaf(spec, at, strings=False)

    def leaf(self, spec: object, at: str, *, strings: bool) -> LeafTest:
        leaf = self._leaf(spec, at, strings=strings)
        return leaf_value(leaf.build(), leaf.missing)

    def _leaf(self, spec: object, at: str, *, strings: bool) -> _Leaf:
        if not isinstance(spec, list | tuple):
            raise FilterError(_field_type_message(at), field=at, rule="type")
        if not spec:
            raise FilterError("an empty array matches nothing", field=at, rule="empty")
        leaf = _Leaf()
        for i, matcher in enumerate(spec):
            self._matcher(matcher, f"{at}/{i}", leaf, strings=strings)
        return leaf

    def _fields(self, pattern: object, at: str, depth: int) -> Iterator[tuple[str, object, str]]:
        """The (name, spec, pointer) of each of an object pattern's fields, checked."""
        if not isinstance(pattern, Mapping):
            raise FilterError("a pattern is an object of fields", field=at, rule="type")
        if depth > MAX_DEPTH:
            message = f"patterns nest at most {MAX_DEPTH} objects deep"
            raise FilterError(message, field=at, rule="depth")
        if not pattern:
            message = "an empty pattern names no field (to take every event, set no filter)"
            raise FilterError(message, field=at, rule="empty")
        for name, spec in pattern.items():
            here = f"{at}/{_escape(str(name))}"
            if not isinstance(name, str):
                raise FilterError("field names are strings", field=here, rule="type")
            self._string(name, here)
            yield name, spec, here

    def _branches(self, spec: object, at: str) -> list[tuple[object, str]]:
        if not isinstance(spec, list | tuple):
            raise FilterError("$or takes an array of patterns", field=at, rule="type")
        if not spec:
            raise FilterError("$or has no alternative", field=at, rule="empty")
        if len(spec) < 2:
            message = "$or takes two or more patterns (one alone needs no $or)"
            raise FilterError(message, field=at, rule="or_branches")
        return [(branch, f"{at}/{i}") for i, branch in enumerate(spec)]

    def _matcher(self, matcher: object, at: str, leaf: _Leaf, *, strings: bool) -> None:
        if not isinstance(matcher, Mapping):
            self._count(at)
            self._exact(matcher, at, leaf, strings=strings)
            return
        if len(matcher) != 1:
            message = 'a matcher object has exactly one key, as in {"prefix": "a"}'
            raise FilterError(message, field=at, rule="matcher")
        ((name, operand),) = matcher.items()
        here = f"{at}/{_escape(str(name))}"
        if name == "anything-but":
            leaf.tests.append(self._anything_but(operand, here, strings=strings))
            return
        self._count(at)
        if name == "exists":
            if not isinstance(operand, bool):
                raise FilterError("exists takes true or false", field=here, rule="type")
            leaf.present |= operand
            leaf.missing |= not operand
        elif name == "numeric":
            if strings:
                raise FilterError(_STRING_ONLY, field=here, rule="string_only")
            leaf.tests.append(self._numeric(operand, here))
        elif name == "cidr":
            leaf.tests.append(self._cidr(operand, here))
        elif name in _STRING_MATCHERS:
            leaf.tests.append(self._string_matcher(str(name), operand, here))
        else:
            message = f"unknown matcher {name!r}: matchers are {', '.join(_MATCHERS)}"
            raise FilterError(message, field=here, rule="matcher")

    def _exact(self, value: object, at: str, leaf: _Leaf, *, strings: bool) -> None:
        if isinstance(value, str):
            leaf.strings.add(self._string(value, at))
            return
        if not (value is None or isinstance(value, bool | int | float)):
            message = "a value is a string, number, boolean, null or matcher object"
            raise FilterError(message, field=at, rule="type")
        if strings:
            raise FilterError(_STRING_ONLY, field=at, rule="string_only")
        if value is None or isinstance(value, bool):
            leaf.constants.add(value)
        else:
            leaf.numbers.add(self._number(value, at))

    def _anything_but(self, operand: object, at: str, *, strings: bool) -> LeafTest:
        if isinstance(operand, Mapping):
            return self._anything_but_matcher(operand, at)
        leaf = _Leaf()
        for value, here in self._operands(operand, at):
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                message = "anything-but lists strings or numbers"
                raise FilterError(message, field=here, rule="type")
            self._exact(value, here, leaf, strings=strings)
        return leaf.build_excluded()

    def _anything_but_matcher(self, operand: Mapping[object, object], at: str) -> LeafTest:
        if len(operand) != 1 or next(iter(operand)) not in _STRING_MATCHERS:
            known = ", ".join(_STRING_MATCHERS)
            message = f"anything-but takes a value, an array of values, or one of {known}"
            raise FilterError(message, field=at, rule="matcher")
        ((name, inner),) = operand.items()
        here = f"{at}/{name}"
        leaf = _Leaf()
        leaf.tests = [self._string_matcher(str(name), o, p) for o, p in self._operands(inner, here)]
        return leaf.build_excluded()

    def _operands(self, operand: object, at: str) -> list[tuple[object, str]]:
        """The one operand, or each of an array of them, with its pointer; each is a value."""
        if not isinstance(operand, list | tuple):
            self._count(at)
            return [(operand, at)]
        if not operand:
            raise FilterError("an empty array lists nothing", field=at, rule="empty")
        pointers = [f"{at}/{i}" for i in range(len(operand))]
        for here in pointers:
            self._count(here)
        return list(zip(operand, pointers, strict=True))

    def _string_matcher(self, name: str, operand: object, at: str) -> LeafTest:
        if name in ("prefix", "suffix") and isinstance(operand, Mapping):
            if len(operand) != 1 or "equals-ignore-case" not in operand:
                message = f'{name} takes a string or {{"equals-ignore-case": string}}'
                raise FilterError(message, field=at, rule="matcher")
            here = f"{at}/equals-ignore-case"
            text = self._string(_require_str(operand["equals-ignore-case"], here), here)
            return affix_ignore_case(text.casefold(), suffix=name == "suffix")
        text = self._string(_require_str(operand, at), at)
        if name == "prefix":
            return lambda v: isinstance(v, str) and v.startswith(text)
        if name == "suffix":
            return lambda v: isinstance(v, str) and v.endswith(text)
        if name == "equals-ignore-case":
            folded = text.casefold()
            return lambda v: isinstance(v, str) and v.casefold() == folded
        return wildcard(_wildcard_segments(text, at))

    def _numeric(self, operand: object, at: str) -> LeafTest:
        if not isinstance(operand, list | tuple):
            raise FilterError("numeric takes an array", field=at, rule="type")
        if len(operand) not in (2, 4):
            message = 'numeric takes [op, number] or a range [">", low, "<", high]'
            raise FilterError(message, field=at, rule="numeric_operator")
        bounds: list[tuple[str, int | float]] = []
        for i in range(0, len(operand), 2):
            op = operand[i]
            if not isinstance(op, str) or op not in _COMPARISONS:
                message = f"{op!r} is not one of {', '.join(_COMPARISONS)}"
                raise FilterError(message, field=f"{at}/{i}", rule="numeric_operator")
            bound = operand[i + 1]
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise FilterError("a bound is a number", field=f"{at}/{i + 1}", rule="type")
            bounds.append((op, self._number(bound, f"{at}/{i + 1}")))
        if len(bounds) == 1:
            ((op, bound),) = bounds
            return compare(_COMPARISONS[op], bound)
        return _numeric_range(bounds, at)

    def _cidr(self, operand: object, at: str) -> LeafTest:
        text = self._string(_require_str(operand, at), at)
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as e:
            message = f"{text!r} is not an IPv4 or IPv6 network ({e})"
            raise FilterError(message, field=at, rule="cidr") from e
        return in_network(network)

    def _count(self, at: str) -> bool:
        self.values += 1
        if self.values > MAX_VALUES:
            message = f"a filter holds at most {MAX_VALUES} values"
            raise FilterError(message, field=at, rule="values")
        return True

    def _string(self, text: str, at: str) -> str:
        if len(text) > MAX_STRING:
            message = f"strings are at most {MAX_STRING} characters (this one has {len(text)})"
            raise FilterError(message, field=at, rule="length")
        return text

    def _number(self, number: int | float, at: str) -> int | float:
        if isinstance(number, float) and not math.isfinite(number):
            raise FilterError(f"{number} is not a finite number", field=at, rule="finite")
        return number


_STRING_ONLY = "attributes and keys are strings: this can never match one"


def _field_type_message(at: str) -> str:
    name = at.rsplit("/", 1)[-1]
    hint = ""
    if name in _MATCHERS:
        hint = f' (matchers go inside an array: [{{"{name}": ...}}])'
    return f"a field's pattern is an object of fields or an array of matchers{hint}"


def _require_str(value: object, at: str) -> str:
    if not isinstance(value, str):
        raise FilterError("this takes a string", field=at, rule="type")
    return value


def _escape(name: str) -> str:
    """A field name as a JSON pointer token (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def _wildcard_segments(text: str, at: str) -> list[str]:
    """The literal runs between a wildcard's unescaped stars."""
    segments: list[str] = []
    run: list[str] = []
    chars = iter(text)
    after_star = False
    for char in chars:
        if char == "*":
            if after_star:
                raise FilterError("** is not allowed", field=at, rule="wildcard")
            segments.append("".join(run))
            run = []
        elif char == "\\":
            escaped = next(chars, "")
            if escaped not in ("*", "\\"):
                message = "a backslash escapes only * or \\"
                raise FilterError(message, field=at, rule="wildcard")
            run.append(escaped)
        else:
            run.append(char)
        after_star = char == "*"
    segments.append("".join(run))
    return segments


def _numeric_range(bounds: Sequence[tuple[str, int | float]], at: str) -> LeafTest:
    lower = [(op, b) for op, b in bounds if op in (">", ">=")]
    upper = [(op, b) for op, b in bounds if op in ("<", "<=")]
    if len(lower) != 1 or len(upper) != 1:
        ops = [op for op, _ in bounds]
        culprit = ops.index("=") if "=" in ops else 1  # `=` stands alone; else the second
        message = "two comparisons make a range: one of >, >= and one of <, <="
        raise FilterError(message, field=f"{at}/{2 * culprit}", rule="numeric_operator")
    ((low_op, low),), ((high_op, high),) = lower, upper
    if low > high or (low == high and (low_op, high_op) != (">=", "<=")):
        message = f"no number is {low_op} {low} and {high_op} {high}"
        raise FilterError(message, field=at, rule="numeric_range")
    return between(_COMPARISONS[low_op], low, _COMPARISONS[high_op], high)
