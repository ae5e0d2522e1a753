"""Which partition an event goes to."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from conveyor.frontend.partitioning import partition_for


def test_a_key_always_goes_to_the_same_partition_whatever_the_counter() -> None:
    assert {partition_for("order-42", 8, counter) for counter in range(50)} == {
        zlib.crc32(b"order-42") % 8
    }


def test_a_key_has_the_same_partition_in_every_process() -> None:
    # (crc32, not Python's salted hash: these values are fixed for all time)
    assert [partition_for(k, 16, 0) for k in ("a", "b", "order-1")] == [
        zlib.crc32(k.encode()) % 16 for k in ("a", "b", "order-1")
    ]
    assert partition_for("a", 16, 0) == 0xE8B7BE43 % 16


def test_keyless_events_are_spread_round_robin() -> None:
    assert [partition_for(None, 3, c) for c in range(7)] == [0, 1, 2, 0, 1, 2, 0]


@given(st.one_of(st.none(), st.text()), st.integers(1, 256), st.integers(0, 2**40))
def test_the_partition_is_always_in_range(key: str | None, partitions: int, counter: int) -> None:
    assert 0 <= partition_for(key, partitions, counter) < partitions
