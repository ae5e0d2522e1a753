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

from collections.abc import Mapping
from typing import final

from conveyor.delivery.filters._compile import (
    MAX_DEPTH,
    MAX_STRING,
    MAX_VALUES,
    Compiler,
)
from conveyor.errors import FilterError

__all__ = ["MAX_DEPTH", "MAX_STRING", "MAX_VALUES", "Filter", "FilterError", "compile_filter"]


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
        self._test = Compiler().event(pattern, "", 1)
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
