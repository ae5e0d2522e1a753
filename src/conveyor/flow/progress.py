"""A subscription's progress in one partition: a cursor plus the finished offsets above it.

Invariant: every offset below ``cursor`` and every offset in ``acked`` is finished (succeeded,
filtered, or owned by a delivery row); ``cursor`` itself is not finished. Acks may arrive in
any order; the cursor moves over the contiguous run (Pulsar's individual acks).
"""

from __future__ import annotations

from conveyor.store.base import CursorState, Ranges


class PartitionProgress:
    """Tracks finished offsets of one subscription in one partition."""

    __slots__ = ("acked", "cursor", "dirty", "start")

    def __init__(self, state: CursorState) -> None:
        self.cursor = state.cursor
        self.start = state.start
        self.acked: set[int] = set()
        for lo, hi in state.acked:
            self.acked.update(range(max(lo, self.cursor), hi))
        self.dirty = False
        self._advance()

    def finish(self, offset: int) -> None:
        """Record that ``offset`` is finished."""
        if offset < self.cursor:
            return
        self.dirty = True
        if offset == self.cursor:
            self.cursor += 1
            self._advance()
        else:
            self.acked.add(offset)

    def is_finished(self, offset: int) -> bool:
        """Whether ``offset`` is known finished."""
        return offset < self.cursor or offset in self.acked

    def _advance(self) -> None:
        acked = self.acked
        cursor = self.cursor
        while cursor in acked:
            acked.remove(cursor)
            cursor += 1
        self.cursor = cursor

    def snapshot(self) -> CursorState:
        """The state to persist (acked offsets folded into ranges); clears ``dirty``."""
        self.dirty = False
        return CursorState(self.cursor, to_ranges(self.acked), self.start)


def to_ranges(offsets: set[int]) -> Ranges:
    """Fold a set of offsets into sorted half-open ranges."""
    ranges: Ranges = []
    for off in sorted(offsets):
        if ranges and ranges[-1][1] == off:
            ranges[-1] = (ranges[-1][0], off + 1)
        else:
            ranges.append((off, off + 1))
    return ranges
