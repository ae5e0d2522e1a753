"""Retry backoff: exponential bounds, pinned jitter, the lambda's ``after``, exhaustion."""

from __future__ import annotations

import itertools

import pytest

from conveyor.flow.retry import backoff_bound, exhausted, next_delay
from conveyor.model import RetryPolicy

POLICY = RetryPolicy(max_attempts=5, min_backoff=1.0, max_backoff=10.0, multiplier=2.0)


def highest(low: float, high: float) -> float:
    return high


def test_the_backoff_bound_grows_by_the_multiplier_and_caps_at_max_backoff() -> None:
    # Given a policy from 1 s to 10 s, doubling
    # When the bounds of attempts 1 to 7 are taken
    bounds = [backoff_bound(POLICY, n) for n in range(1, 8)]

    # Then they double from min_backoff and stop at max_backoff
    assert bounds == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_the_backoff_bound_of_a_huge_attempt_count_is_the_cap() -> None:
    assert backoff_bound(POLICY, 10**9) == 10.0


def test_the_backoff_bound_refuses_attempt_zero() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_bound(POLICY, 0)


def test_next_delay_with_the_highest_jitter_strictly_grows_until_the_cap() -> None:
    # Given the jitter always draws its upper end
    # When the delays after attempts 1 to 7 are taken
    delays = [next_delay(POLICY, n, jitter=highest) for n in range(1, 8)]

    # Then they strictly grow until they reach max_backoff, then stay there
    capped = delays.index(10.0)
    assert all(a < b for a, b in itertools.pairwise(delays[: capped + 1]))
    assert delays[capped:] == [10.0] * (len(delays) - capped)
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_next_delay_draws_between_min_backoff_and_the_bound() -> None:
    # Given a jitter that records what it is asked for
    asked: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        asked.append((low, high))
        return low

    # When the delays after attempts 1 to 4 are taken
    delays = [next_delay(POLICY, n, jitter=record) for n in range(1, 5)]

    # Then the first is min_backoff without a draw, the others draw in [min, bound]
    assert asked == [(1.0, 2.0), (1.0, 4.0), (1.0, 8.0)]
    assert delays == [1.0, 1.0, 1.0, 1.0]


def test_the_lambdas_after_overrides_the_draw() -> None:
    # Given a jitter that would fail the test if asked
    def never(low: float, high: float) -> float:
        raise AssertionError("after must override the draw")

    # When the lambda asks for 3 s, for less than min_backoff, and for more than max_backoff
    # Then it gets 3 s, what it asked for, and max_backoff
    assert next_delay(POLICY, 4, after=3.0, jitter=never) == 3.0
    assert next_delay(POLICY, 1, after=0.25, jitter=never) == 0.25
    assert next_delay(POLICY, 1, after=3600.0, jitter=never) == 10.0
    assert next_delay(POLICY, 1, after=-5.0, jitter=never) == 0.0


def test_a_policy_is_exhausted_once_max_attempts_were_made() -> None:
    assert [exhausted(POLICY, n) for n in range(1, 7)] == [False] * 4 + [True, True]
    assert exhausted(RetryPolicy(max_attempts=1), 1)


def test_a_policy_refuses_a_max_backoff_below_min_backoff() -> None:
    with pytest.raises(ValueError, match="max_backoff"):
        RetryPolicy(min_backoff=5.0, max_backoff=1.0)
