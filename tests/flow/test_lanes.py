"""Priority lanes: weights honoured over a long run, no starvation, work-conserving."""

from __future__ import annotations

from collections import Counter

import pytest

from conveyor.flow.lanes import WeightedLanes
from conveyor.model import LANE_WEIGHTS, LANES, Priority, lane_of, log_partition

WEIGHTS = [LANE_WEIGHTS[lane] for lane in LANES]  # normal, high, low


def test_busy_lanes_get_their_weights_share_exactly_over_every_full_round() -> None:
    # Given three lanes that always have events
    lanes = WeightedLanes(WEIGHTS)
    total = sum(WEIGHTS)

    # When it picks for 1,000 rounds
    picks = [lanes.pick([1, 1, 1]) for _ in range(total * 1000)]

    # Then every lane got exactly its weight's share, and within every round too
    assert Counter(picks) == {i: w * 1000 for i, w in enumerate(WEIGHTS)}
    for start in range(0, len(picks), total):
        assert Counter(picks[start : start + total]) == dict(enumerate(WEIGHTS))


def test_high_goes_first_and_low_is_never_starved_for_long() -> None:
    lanes = WeightedLanes(WEIGHTS)
    high, low = LANES.index(Priority.HIGH), LANES.index(Priority.LOW)
    picks = [lanes.pick([1, 1, 1]) for _ in range(10_000)]

    # The first pick of a fresh picker is the high lane
    assert picks[0] == high
    # And the longest run without a low pick is shorter than one round
    gaps, last = [], -1
    for i, lane in enumerate(picks):
        if lane == low:
            gaps.append(i - last)
            last = i
    assert max(gaps) <= sum(WEIGHTS)


def test_an_idle_lane_gives_its_share_to_the_busy_ones() -> None:
    lanes = WeightedLanes(WEIGHTS)
    high, normal, low = (LANES.index(p) for p in (Priority.HIGH, Priority.NORMAL, Priority.LOW))
    busy = [0, 0, 0]
    busy[normal] = busy[low] = 1
    picks = Counter(lanes.pick(busy) for _ in range(5000))
    assert picks[high] == 0
    assert picks[normal] == 4000
    assert picks[low] == 1000
    assert lanes.pick([0, 0, 0]) == -1


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WeightedLanes([1, 0, 1])


def test_log_partitions_put_each_lane_after_the_last() -> None:
    # A topic of 4 partitions: normal 0-3, high 4-7, low 8-11
    assert [log_partition(1, p, 4) for p in (Priority.NORMAL, Priority.HIGH, Priority.LOW)] == [
        1,
        5,
        9,
    ]
    assert [lane_of(i, 4) for i in (3, 4, 11)] == [Priority.NORMAL, Priority.HIGH, Priority.LOW]
