"""PartitionProgress: a cursor plus the finished offsets above it (Pulsar's individual acks)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conveyor.flow.progress import PartitionProgress, to_ranges
from conveyor.store.base import CursorState


def test_acks_out_of_order_move_the_cursor_only_over_a_contiguous_run() -> None:
    # Given progress at offset 0
    progress = PartitionProgress(CursorState(0))

    # When offsets 2 and 3 finish before 0 and 1
    progress.finish(2)
    progress.finish(3)

    # Then the cursor waits at 0, and 2 and 3 are known finished
    assert progress.cursor == 0
    assert [progress.is_finished(o) for o in range(5)] == [False, False, True, True, False]

    # When 0 finishes, then 1
    progress.finish(0)
    assert progress.cursor == 1
    progress.finish(1)

    # Then the cursor jumps over the whole run and no ack is left above it
    assert progress.cursor == 4
    assert progress.acked == set()


def test_a_snapshot_folds_acks_into_ranges_and_clears_dirty() -> None:
    # Given progress at 10 with acks at 12, 13 and 15
    progress = PartitionProgress(CursorState(10, [], 7))
    dirty_at_first = progress.dirty
    for offset in (12, 15, 13):
        progress.finish(offset)
    dirty_after_acks = progress.dirty

    # When it is snapshot
    state = progress.snapshot()

    # Then the acks are sorted half-open ranges, the start is kept, and nothing is dirty
    assert state == CursorState(10, [(12, 14), (15, 16)], 7)
    assert (dirty_at_first, dirty_after_acks, progress.dirty) == (False, True, False)


def test_finishing_an_offset_below_the_cursor_changes_nothing() -> None:
    # Given progress at 5, freshly snapshot
    progress = PartitionProgress(CursorState(5))

    # When an offset below it finishes again
    progress.finish(3)

    # Then nothing changed and there is nothing to commit
    assert progress.cursor == 5
    assert not progress.dirty
    assert progress.snapshot() == CursorState(5, [], 0)


def test_progress_restored_from_ranges_ignores_those_below_the_cursor() -> None:
    # Given a persisted state with a stale range below the cursor and two above
    state = CursorState(3, [(0, 2), (4, 6), (8, 9)], 1)

    # When it is restored and offset 3 finishes
    progress = PartitionProgress(state)
    assert progress.cursor == 3
    progress.finish(3)

    # Then the cursor runs over 3..5 and only the last range is left
    assert progress.cursor == 6
    assert progress.snapshot() == CursorState(6, [(8, 9)], 1)


def test_progress_restored_with_a_range_at_its_cursor_advances_at_once() -> None:
    # Given a persisted state whose first range starts at the cursor
    # When it is restored
    progress = PartitionProgress(CursorState(3, [(3, 5), (7, 8)]))

    # Then the cursor has moved over the range
    assert progress.cursor == 5
    assert progress.snapshot() == CursorState(5, [(7, 8)], 0)


def test_to_ranges_of_nothing_is_empty() -> None:
    assert to_ranges(set()) == []


@given(
    st.lists(st.integers(min_value=0, max_value=200), unique=True),
    st.integers(min_value=0, max_value=50),
)
def test_a_snapshot_restores_to_the_same_finished_offsets(finished: list[int], start: int) -> None:
    # Given progress from some cursor with any offsets finished in any order
    progress = PartitionProgress(CursorState(start, [], start))
    for offset in finished:
        progress.finish(offset)

    # When it is snapshot and restored
    restored = PartitionProgress(progress.snapshot())

    # Then both know exactly the same offsets finished, and the cursor is the first gap
    expected = {o for o in range(260) if o < start or o in set(finished)}
    assert {o for o in range(260) if restored.is_finished(o)} == expected
    assert restored.cursor == min(set(range(261)) - expected)
