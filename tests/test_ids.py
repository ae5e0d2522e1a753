"""Event ids: time-ordered, and strictly increasing within a process."""

from __future__ import annotations

from conveyor._ids import is_event_id, new_id


def test_ids_made_in_one_millisecond_increase_strictly() -> None:
    ids = [new_id(1_700_000_000_000) for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(is_event_id(i) for i in ids)


def test_an_id_never_goes_back_when_the_clock_does() -> None:
    later = new_id(1_800_000_000_000)
    earlier_clock = new_id(1_700_000_000_000)
    assert earlier_clock > later


def test_ids_start_with_their_millisecond() -> None:
    assert new_id(1_900_000_000_000)[:12] == f"{1_900_000_000_000:012x}"
