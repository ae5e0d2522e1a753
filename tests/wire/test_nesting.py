"""The nesting measure agrees with the structure of any JSON document, strings and escapes
included, and needs no recursion however deep the document."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from conveyor.wire.nesting import MAX_NESTING, nesting, nests_deeper

# Strings full of what could fool a scanner: brackets, quotes and backslashes.
tricky = st.text(alphabet='[]{}"\\ab,:', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky, inner, max_size=4),
    max_leaves=40,
)


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@given(values)
def test_the_measure_is_the_documents_depth(value: object) -> None:
    assert nesting(msgspec.json.encode(value)) == depth(value)


def test_the_limit_is_inclusive_and_deep_documents_need_no_recursion() -> None:
    at_limit = b'{"a": ' * MAX_NESTING + b'"]]]"' + b"}" * MAX_NESTING
    over = b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1)
    assert not nests_deeper(at_limit)
    assert nests_deeper(over)
    assert nesting(b"[" * 1_000_000 + b"]" * 1_000_000) == 1_000_000
