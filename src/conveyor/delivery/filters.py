"""Subscription filters: which of a topic's events a subscription takes, written as a pattern in
a declarative language modelled on Amazon EventBridge event patterns.

An event that does not match its subscription's filter is marked ``filtered`` and never pushed.
This module is pure: :func:`compile_filter` checks a pattern once and turns it into closures
(about a microsecond per event for a five-field pattern), and :meth:`Filter.matches` runs them.

The pattern
-----------
A pattern is a JSON object with at least one of these keys (all that are given must match):

* ``"attributes"`` — an object of patterns over the event's string attributes;
* ``"payload"`` — a pattern over the JSON payload: an object of field patterns (nested objects
  for nested fields), or an array of matchers tested against the whole payload;
* ``"key"`` — an array of matchers tested against the event's key (a keyless event's key is
  *missing*);
* ``"$or"`` — alternatives, as at any object level (below).

In an object, every field named must match (AND). A field's pattern is either an object (the
event's field is an object whose fields match it) or an array of matchers, any one of which
must match (OR). ``"$or": [pattern, pattern, ...]`` (two or more objects) matches when any of
its patterns, read at the same level, does; it combines with the level's other fields by AND
and may nest::

    {"attributes": {"region": ["eu-west-1", {"prefix": "us-"}]},
     "payload": {"kind": ["order"],
                 "$or": [{"amount": [{"numeric": [">=", 100]}]},
                         {"customer": {"tier": ["gold"]}}]}}

Matchers (each an element of an array):

* ``"a"``, ``12.5``, ``true``, ``null`` — exactly this value and type: ``"5"`` is not ``5``,
  ``true`` is not ``1``; numbers compare by value (``300`` matches ``3e2``).
* ``{"prefix": "us-"}`` — a string starting with ``us-``; ``{"prefix": {"equals-ignore-case":
  "us-"}}`` ignores case.
* ``{"suffix": ".png"}`` — a string ending with ``.png``; takes ``{"equals-ignore-case": ...}``
  like ``prefix``.
* ``{"equals-ignore-case": "alice"}`` — a string equal to ``alice`` in any case (Unicode
  casefold).
* ``{"wildcard": "img/*.png"}`` — a string matching the whole pattern, ``*`` standing for any
  run of characters (``/`` included); ``\\*`` is a literal star and ``\\\\`` a literal backslash
  (in JSON: ``"\\\\*"``, ``"\\\\\\\\"``); ``**`` and any other escape are refused.
* ``{"numeric": [">", 0, "<=", 5]}`` — a JSON number (not a boolean, not a numeric string)
  passing one comparison (``<``, ``<=``, ``=``, ``>``, ``>=``) or a range: one lower bound
  (``>``, ``>=``) and one upper (``<``, ``<=``), in either order.
* ``{"cidr": "10.0.0.0/24"}`` — a string holding an IPv4 or IPv6 address in the network (host
  bits of the network are ignored).
* ``{"exists": true}`` — the field is present, with any value (``null`` included);
  ``{"exists": false}`` — the field is missing.
* ``{"anything-but": operand}`` — a *present* value that the operand does not match, whatever
  its type (``{"anything-but": "x"}`` matches ``5`` and ``null``). The operand is a string or
  number, a non-empty array of them, or ``{"prefix" | "suffix" | "equals-ignore-case" |
  "wildcard": a string or a non-empty array of strings}``.

As in EventBridge:

* **Arrays in the event** match when any element does: ``"tags": ["a"]`` matches
  ``{"tags": ["b", "a"]}``; nested arrays are flattened. An object pattern over an array of
  objects must match one element as a whole (``{"items": {"sku": ["x"], "qty": [2]}}`` needs an
  item with both), as EventBridge's array-consistent matching does. This holds for ``exists``
  too, where EventBridge differs: ``{"items": {"discount": [{"exists": false}]}}`` matches when
  *an* item has no discount (EventBridge: when no item has one).
* **Missing fields** match only ``{"exists": false}``; ``anything-but`` never matches a missing
  field. A field holding an object or an empty array has no value, so it counts as missing for
  an array of matchers (``exists`` works on leaves only). The fields of an absent or non-object
  value are all missing.
* **Types never convert**: a matcher for one type does not match a value of another (a
  ``numeric`` matcher does not match ``"5"``, ``prefix`` does not match ``5``). Attributes and
  keys are strings, so a matcher that can only match a non-string (a number, a boolean,
  ``null``, ``numeric``, ``anything-but`` of a number) is refused there rather than never
  matching; ``attributes`` take no nested objects.

Limits, each checked at compile time: objects nest at most :data:`MAX_DEPTH` deep (the pattern
itself is level 1, and each nested field object or ``$or`` branch one more); at most
:data:`MAX_VALUES` values in all (each element of a matcher array is one, but an
``anything-but`` counts each value it lists); every string, field names included, at most
:data:`MAX_STRING` characters; every number finite.

A :class:`Filter` is immutable: to change a subscription's filter at run time, compile the new
pattern first (so that an invalid one leaves the old filter in force) and swap the objects.

Errors
------
A pattern that breaks a rule raises :class:`FilterError`, an
:class:`~conveyor.errors.InvalidRequest` (HTTP 400) and a :class:`ValueError`, naming the place
with a JSON pointer into the pattern (``field``, e.g. ``/payload/amount/0/numeric/2``; ``""`` is
the pattern itself) and the rule broken (``rule``):

* ``type`` — a value of the wrong JSON type: a field's pattern that is neither an object nor an
  array, a ``prefix`` that is not a string, a nested object in attributes...
* ``empty`` — an empty object, array or ``$or``.
* ``unknown_key`` — a top-level key other than ``attributes``, ``payload``, ``key``, ``$or``.
* ``or_branches`` — a ``$or`` with a single alternative.
* ``matcher`` — a matcher object that does not have exactly one known key.
* ``numeric_operator`` — an unknown comparison, or comparisons that do not form a range.
* ``numeric_range`` — a range no number is in (``[">", 5, "<", 1]``).
* ``finite`` — ``NaN`` or an infinity.
* ``wildcard`` — ``**``, or a backslash escaping something other than ``*`` or a backslash.
* ``cidr`` — not an IPv4 or IPv6 network.
* ``string_only`` — a matcher that can never match a string, on attributes or the key.
* ``depth``, ``values``, ``length`` — a limit above is exceeded.
"""

from __future__ import annotations

import ipaddress
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final, TypeAlias, final

from conveyor.errors import InvalidRequest

MAX_DEPTH: Final = 10
MAX_VALUES: Final = 100
MAX_STRING: Final = 1024

LeafTest: TypeAlias = Callable[[object], bool]
"""Whether one present leaf value (a string, number, boolean or ``None``) matches."""
ObjectTest: TypeAlias = Callable[[Mapping[str, object] | None], bool]
"""Whether an object matches a pattern's level; ``None`` when there is no object there."""
EventTest: TypeAlias = Callable[[Mapping[str, str] | None, object, str | None], bool]
"""Whether an event's attributes, payload and key match."""

_MISSING: Final = object()  # the value of a field the event does not have
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


class FilterError(InvalidRequest, ValueError):
    """A filter pattern is invalid.

    Attributes:
        field: JSON pointer to the offending place in the pattern (``""`` for the whole of it).
        rule: the rule broken (see the module's documentation for the list).
        message: what is wrong, naming the place.
    """

    field: str
    rule: str

    def __init__(self, message: str, *, field: str, rule: str) -> None:
        where = f"at {field}" if field else "at the top level"
        super().__init__(f"invalid filter {where}: {message}", field=field, rule=rule)


@final
class Filter:
    """A compiled filter pattern.

    Args:
        pattern: the pattern, as documented in this module.

    Raises:
        FilterError: the pattern is invalid; ``field`` and ``rule`` say where and why.
    """

    __slots__ = ("_test", "pattern")

    def __init__(self, pattern: Mapping[str, object]) -> None:
        self._test = _Compiler().event(pattern, "", 1)
        self.pattern = pattern

    def matches(
        self, attributes: Mapping[str, str] | None, payload: object, key: str | None = None
    ) -> bool:
        """Whether an event matches; never raises, whatever the event holds.

        Args:
            attributes: the event's attributes (``None`` when it has none).
            payload: the decoded JSON payload.
            key: the event's key, ``None`` when it has none.

        Returns:
            ``True`` when the event is to be delivered, ``False`` when it is filtered out.
        """
        return self._test(attributes, payload, key)

    def __repr__(self) -> str:
        return f"Filter({self.pattern!r})"


def compile_filter(pattern: Mapping[str, object]) -> Filter:
    """Check a pattern and compile it for matching.

    Args:
        pattern: the pattern, as documented in this module.

    Returns:
        The compiled :class:`Filter`.

    Raises:
        FilterError: the pattern is invalid; ``field`` and ``rule`` say where and why.
    """
    return Filter(pattern)


# --- compiling -------------------------------------------------------------------------------


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
            return _always
        strings = self.strings_only()
        if strings is not None:
            return lambda v: isinstance(v, str) and v in strings
        if not (self.strings or self.numbers or self.constants) and len(self.tests) == 1:
            return self.tests[0]
        return _any_leaf(
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
        return _negate(self.build())


class _Compiler:
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
        return _event(attributes, payload, key, alternatives)

    def fields(self, pattern: object, at: str, depth: int, *, flat: bool) -> ObjectTest:
        parts: list[ObjectTest] = []
        for name, spec, here in self._fields(pattern, at, depth):
            if name == "$or":
                branches = self._branches(spec, here)
                tests = [self.fields(b, p, depth + 1, flat=flat) for b, p in branches]
                parts.append(_any_object(tests))
            elif isinstance(spec, Mapping):
                if flat:
                    message = "attributes are strings: a field takes an array of matchers"
                    raise FilterError(message, field=here, rule="type")
                parts.append(_nested_field(name, self.fields(spec, here, depth + 1, flat=False)))
            else:
                parts.append(_leaf_field(name, self._leaf(spec, here, strings=flat)))
        return _all_object(parts)

    def value(self, spec: object, at: str, depth: int) -> LeafTest:
        """A test of the payload: an object pattern or an array of matchers."""
        if isinstance(spec, Mapping):
            return _nested_value(self.fields(spec, at, depth, flat=False))
        return self.leaf(spec, at, strings=False)

    def leaf(self, spec: object, at: str, *, strings: bool) -> LeafTest:
        leaf = self._leaf(spec, at, strings=strings)
        return _leaf_value(leaf.build(), leaf.missing)

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
            return _affix_ignore_case(text.casefold(), suffix=name == "suffix")
        text = self._string(_require_str(operand, at), at)
        if name == "prefix":
            return lambda v: isinstance(v, str) and v.startswith(text)
        if name == "suffix":
            return lambda v: isinstance(v, str) and v.endswith(text)
        if name == "equals-ignore-case":
            folded = text.casefold()
            return lambda v: isinstance(v, str) and v.casefold() == folded
        return _wildcard(_wildcard_segments(text, at))

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
            return _compare(_COMPARISONS[op], bound)
        return _numeric_range(bounds, at)

    def _cidr(self, operand: object, at: str) -> LeafTest:
        text = self._string(_require_str(operand, at), at)
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as e:
            message = f"{text!r} is not an IPv4 or IPv6 network ({e})"
            raise FilterError(message, field=at, rule="cidr") from e
        return _in_network(network)

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
    return _between(_COMPARISONS[low_op], low, _COMPARISONS[high_op], high)


# --- matching --------------------------------------------------------------------------------
# Invariant: a LeafTest is given present leaf values only: never a list, a dict or _MISSING.
# The closures below are the hot path: each is specialised to do its work in as few Python
# calls as it can, with loops rather than generator expressions.

_NUMBER: Final = (int, float)


def _always(value: object) -> bool:
    return True


def _any_leaf(
    strings: frozenset[str],
    numbers: frozenset[int | float],
    constants: frozenset[bool | None],
    tests: tuple[LeafTest, ...],
) -> LeafTest:
    def test(value: object) -> bool:
        if isinstance(value, str):
            if value in strings:
                return True
        elif value is None or isinstance(value, bool):
            if value in constants:  # holds only True, False, None: no 1 == True confusion
                return True
        elif isinstance(value, _NUMBER) and value in numbers:
            return True
        for t in tests:  # noqa: SIM110 - loops, not any()/all() over generators, on the hot path
            if t(value):
                return True
        return False

    return test


def _negate(test: LeafTest) -> LeafTest:
    return lambda v: not test(v)


def _compare(op: Callable[[float, float], bool], bound: int | float) -> LeafTest:
    return lambda v: isinstance(v, _NUMBER) and v.__class__ is not bool and op(v, bound)


def _between(
    above: Callable[[float, float], bool],
    low: int | float,
    below: Callable[[float, float], bool],
    high: int | float,
) -> LeafTest:
    return lambda v: (
        isinstance(v, _NUMBER) and v.__class__ is not bool and above(v, low) and below(v, high)
    )


def _affix_ignore_case(folded: str, *, suffix: bool) -> LeafTest:
    if suffix:
        return lambda v: isinstance(v, str) and v.casefold().endswith(folded)
    return lambda v: isinstance(v, str) and v.casefold().startswith(folded)


def _wildcard(segments: Sequence[str]) -> LeafTest:
    if len(segments) == 1:
        (text,) = segments
        return lambda v: isinstance(v, str) and v == text
    head, *middle, tail = segments
    shortest = len(head) + len(tail)

    def test(value: object) -> bool:
        # Leftmost-first search of each literal run is exact for `*`-only globs, and linear:
        # no backtracking, whatever the pattern and the value.
        if not isinstance(value, str) or len(value) < shortest:
            return False
        if not (value.startswith(head) and value.endswith(tail)):
            return False
        start, end = len(head), len(value) - len(tail)
        for run in middle:
            found = value.find(run, start, end)
            if found < 0:
                return False
            start = found + len(run)
        return True

    return test


def _in_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> LeafTest:
    def test(value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address in network  # False across IP versions

    return test


def _flatten(values: list[object]) -> Iterator[object]:
    """The non-list elements of a list, nested lists flattened (iteratively: no recursion)."""
    stack = [iter(values)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            yield value
        else:
            stack.pop()


def _match_list(values: list[object], test: LeafTest, missing: bool) -> bool:
    """An array of matchers over an array in the event: any leaf value in it may match."""
    seen = False
    for value in _flatten(values):
        if isinstance(value, dict):
            continue
        if test(value):
            return True
        seen = True
    return missing and not seen


def _leaf_value(test: LeafTest, missing: bool) -> LeafTest:
    """An array of matchers applied to the value at a place (``_MISSING`` when absent)."""

    def match(value: object) -> bool:
        if value is _MISSING or isinstance(value, dict):
            return missing
        if isinstance(value, list):
            return _match_list(value, test, missing)
        return test(value)

    return match


def _leaf_field(name: str, leaf: _Leaf) -> ObjectTest:
    """An array of matchers applied to one field of an object."""
    test, missing, strings = leaf.build(), leaf.missing, leaf.strings_only()
    if strings is not None:  # exact strings: the set lookup is made here, not in a call

        def match_strings(obj: Mapping[str, object] | None) -> bool:
            value = _MISSING if obj is None else obj.get(name, _MISSING)
            if isinstance(value, str):
                return value in strings
            if isinstance(value, list):
                return _match_list(value, test, missing)
            return missing and (value is _MISSING or isinstance(value, dict))

        return match_strings

    def match(obj: Mapping[str, object] | None) -> bool:
        value = _MISSING if obj is None else obj.get(name, _MISSING)
        if value is _MISSING or isinstance(value, dict):
            return missing
        if isinstance(value, list):
            return _match_list(value, test, missing)
        return test(value)

    return match


def _nested_value(test: ObjectTest) -> LeafTest:
    """An object pattern applied to the value at a place."""

    def match(value: object) -> bool:
        if isinstance(value, dict):
            return test(value)
        if isinstance(value, list):
            return _match_objects(value, test)
        return test(None)

    return match


def _nested_field(name: str, test: ObjectTest) -> ObjectTest:
    """An object pattern applied to one field of an object."""

    def match(obj: Mapping[str, object] | None) -> bool:
        value = None if obj is None else obj.get(name)
        if isinstance(value, dict):
            return test(value)
        if isinstance(value, list):
            return _match_objects(value, test)
        return test(None)

    return match


def _match_objects(values: list[object], test: ObjectTest) -> bool:
    """An object pattern over an array: one element must match it as a whole."""
    seen = False
    for value in _flatten(values):
        if test(value if isinstance(value, dict) else None):
            return True
        seen = True
    return not seen and test(None)


def _all_object(tests: Sequence[ObjectTest]) -> ObjectTest:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda obj: first(obj) and second(obj)
    frozen = tuple(tests)

    def match(obj: Mapping[str, object] | None) -> bool:
        for test in frozen:  # noqa: SIM110 - as above
            if not test(obj):
                return False
        return True

    return match


def _any_object(tests: Sequence[ObjectTest]) -> ObjectTest:
    frozen = tuple(tests)

    def match(obj: Mapping[str, object] | None) -> bool:
        for test in frozen:  # noqa: SIM110 - as above
            if test(obj):
                return True
        return False

    return match


def _event(
    attributes: ObjectTest | None,
    payload: LeafTest | None,
    key: LeafTest | None,
    alternatives: tuple[EventTest, ...],
) -> EventTest:
    """A whole pattern: each of its parts that is given, and one of its ``$or`` alternatives."""

    def match(a: Mapping[str, str] | None, p: object, k: str | None) -> bool:
        if attributes is not None and not attributes(a):
            return False
        if payload is not None and not payload(p):
            return False
        if key is not None and not key(_MISSING if k is None else k):
            return False
        if not alternatives:
            return True
        for alternative in alternatives:  # noqa: SIM110 - as above
            if alternative(a, p, k):
                return True
        return False

    return match
