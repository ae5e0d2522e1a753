"""Matching: the closures a compiled filter is made of.

Each closure is specialised at compile time (``_compile.py``) to test one part of a pattern;
matching an event is calling them. Never raises, whatever the event holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final, TypeAlias

LeafTest: TypeAlias = Callable[[object], bool]
"""Whether one present leaf value (a string, number, boolean or ``None``) matches."""
ObjectTest: TypeAlias = Callable[[Mapping[str, object] | None], bool]
"""Whether an object matches a pattern's level; ``None`` when there is no object there."""
EventTest: TypeAlias = Callable[[Mapping[str, str] | None, object, str | None], bool]
"""Whether an event's attributes, payload and key match."""

MISSING: Final = object()  # the value of a field the event does not have

# Invariant: a LeafTest is given present leaf values only: never a list, a dict or MISSING.
# The closures below are the hot path: each is specialised to do its work in as few Python
# calls as it can, with loops rather than generator expressions.

_NUMBER: Final = (int, float)


def always(value: object) -> bool:
    return True


def any_leaf(
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


def negate(test: LeafTest) -> LeafTest:
    return lambda v: not test(v)


def compare(op: Callable[[float, float], bool], bound: int | float) -> LeafTest:
    return lambda v: isinstance(v, _NUMBER) and v.__class__ is not bool and op(v, bound)


def between(
    above: Callable[[float, float], bool],
    low: int | float,
    below: Callable[[float, float], bool],
    high: int | float,
) -> LeafTest:
    return lambda v: (
        isinstance(v, _NUMBER) and v.__class__ is not bool and above(v, low) and below(v, high)
    )


def affix_ignore_case(folded: str, *, suffix: bool) -> LeafTest:
    if suffix:
        return lambda v: isinstance(v, str) and v.casefold().endswith(folded)
    return lambda v: isinstance(v, str) and v.casefold().startswith(folded)


def wildcard(segments: Sequence[str]) -> LeafTest:
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


def in_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> LeafTest:
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


def leaf_value(test: LeafTest, missing: bool) -> LeafTest:
    """An array of matchers applied to the value at a place (``MISSING`` when absent)."""

    def match(value: object) -> bool:
        if value is MISSING or isinstance(value, dict):
            return missing
        if isinstance(value, list):
            return _match_list(value, test, missing)
        return test(value)

    return match


def leaf_field(
    name: str, test: LeafTest, missing: bool, strings: frozenset[str] | None
) -> ObjectTest:
    """An array of matchers applied to one field of an object: ``test`` for a present
    value, ``missing`` for an absent one, and ``strings`` when exact strings are all it
    matches (a set lookup then, not a call)."""
    if strings is not None:  # exact strings: the set lookup is made here, not in a call

        def match_strings(obj: Mapping[str, object] | None) -> bool:
            value = MISSING if obj is None else obj.get(name, MISSING)
            if isinstance(value, str):
                return value in strings
            if isinstance(value, list):
                return _match_list(value, test, missing)
            return missing and (value is MISSING or isinstance(value, dict))

        return match_strings

    def match(obj: Mapping[str, object] | None) -> bool:
        value = MISSING if obj is None else obj.get(name, MISSING)
        if value is MISSING or isinstance(value, dict):
            return missing
        if isinstance(value, list):
            return _match_list(value, test, missing)
        return test(value)

    return match


def nested_value(test: ObjectTest) -> LeafTest:
    """An object pattern applied to the value at a place."""

    def match(value: object) -> bool:
        if isinstance(value, dict):
            return test(value)
        if isinstance(value, list):
            return _match_objects(value, test)
        return test(None)

    return match


def nested_field(name: str, test: ObjectTest) -> ObjectTest:
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


def all_object(tests: Sequence[ObjectTest]) -> ObjectTest:
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


def any_object(tests: Sequence[ObjectTest]) -> ObjectTest:
    frozen = tuple(tests)

    def match(obj: Mapping[str, object] | None) -> bool:
        for test in frozen:  # noqa: SIM110 - as above
            if test(obj):
                return True
        return False

    return match


def event(
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
        if key is not None and not key(MISSING if k is None else k):
            return False
        if not alternatives:
            return True
        for alternative in alternatives:  # noqa: SIM110 - as above
            if alternative(a, p, k):
                return True
        return False

    return match
