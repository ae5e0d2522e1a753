"""Priority lanes: which lane the next event comes from.

Each topic partition has a high, a normal and a low lane (separate log partitions, see
:data:`conveyor.model.LANES`). A runner serves the lanes that have events by smooth weighted
round robin (nginx's algorithm): over any run of picks among the same busy lanes, each lane
gets its weight's share within one pick, high first, and a busy low lane is never starved
(it gets at least one pick in every ``sum(weights)``). An idle lane takes nothing and gives
its share to the others (the picker is work-conserving).
"""

from __future__ import annotations

from collections.abc import Sequence


class WeightedLanes:
    """Smooth weighted round robin over lanes.

    Args:
        weights: each lane's weight, by lane index; all positive.
    """

    __slots__ = ("_current", "_weights")

    def __init__(self, weights: Sequence[int]) -> None:
        if not weights or min(weights) <= 0:
            raise ValueError("lane weights must be positive")
        self._weights = list(weights)
        self._current = [0] * len(weights)

    def pick(self, busy: Sequence[int]) -> int:
        """The lane to take the next event from, among lanes with a positive ``busy`` count.

        Returns:
            A lane index, or -1 when no lane is busy.
        """
        weights = self._weights
        current = self._current
        total = 0
        best = -1
        for lane, count in enumerate(busy):
            if count <= 0:
                continue
            current[lane] += weights[lane]
            total += weights[lane]
            if best < 0 or current[lane] > current[best]:
                best = lane
        if best >= 0:
            current[best] -= total
        return best
