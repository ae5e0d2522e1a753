"""The token bucket: rate over a long run, burst, run-time changes, next_at, refunds."""

from __future__ import annotations

import math

import pytest

from conveyor.flow.ratelimit import TokenBucket

EPOCH = 1_700_000_000.0  # wall-clock times, where a float's resolution is ~0.24 µs


def drain_greedily(bucket: TokenBucket, start: float, end: float) -> tuple[int, int]:
    """Take everything at every next_at from start until end; returns (granted, takes)."""
    granted = takes = 0
    t = start
    while t <= end:
        got = bucket.take(1_000_000, t)
        assert got >= 1, f"next_at promised a token at {t!r}"
        granted += got
        takes += 1
        t = bucket.next_at(t)
    return granted, takes


@pytest.mark.parametrize(("rate", "burst", "start"), [(50.0, 10, 0.0), (7.5, 3, EPOCH)])
def test_a_greedy_taker_gets_the_burst_plus_the_rate_times_the_span(
    rate: float, burst: int, start: float
) -> None:
    # Given a full bucket
    bucket = TokenBucket(rate, burst, start)

    # When a caller takes whatever there is at every next_at for 100 s (and half a token,
    # so that float rounding of the last token's time cannot decide the count)
    granted, takes = drain_greedily(bucket, start, start + 100.0 + 0.5 / rate)

    # Then it got the burst plus exactly 100 s of tokens: 10 + 5000, or 3 + 750
    assert granted == burst + rate * 100
    assert takes == 1 + rate * 100  # the burst at once, then one token at a time


def test_a_caller_polling_every_10_ms_gets_the_same_count() -> None:
    # Given a full bucket of 10 at 50/s
    bucket = TokenBucket(50.0, 10, EPOCH)

    # When a caller asks for 3 tokens every 10 ms for 100 s (300/s, more than the rate)
    granted = sum(bucket.take(3, EPOCH + i / 100) for i in range(10_001))

    # Then the bucket held it to 10 + 50 * 100
    assert granted == 5010


@pytest.mark.parametrize("rate", [10.0, 3.0, 7.0, 100.0])
def test_a_caller_polling_once_per_token_period_gets_a_token_every_time(rate: float) -> None:
    # Given an emptied bucket of 1
    bucket = TokenBucket(rate, 1, 0.0)
    assert bucket.take(1, 0.0) == 1

    # When a caller asks at k / rate, when token k is due (times that floats round)
    got = [bucket.take(1, k / rate) for k in range(1, 2001)]

    # Then float drift never leaves it a hair short of a token
    assert got == [1] * 2000


def test_the_bucket_starts_full_and_grants_at_most_what_it_holds() -> None:
    bucket = TokenBucket(1.0, 5, 0.0)
    assert bucket.take(3, 0.0) == 3
    assert bucket.take(3, 0.0) == 2
    assert bucket.take(3, 0.0) == 0


def test_a_long_quiet_spell_refills_only_up_to_the_burst() -> None:
    # Given an empty bucket of 5 at 100/s
    bucket = TokenBucket(100.0, 5, 0.0)
    assert bucket.take(5, 0.0) == 5

    # When nobody takes for an hour
    # Then only the burst is there, not 360,000 tokens
    assert bucket.take(1_000, 3600.0) == 5
    assert bucket.take(1_000, 3600.0) == 0


def test_only_whole_tokens_are_granted() -> None:
    bucket = TokenBucket(4.0, 2, 0.0)
    bucket.take(2, 0.0)

    assert bucket.take(5, 0.2) == 0  # 0.8 tokens
    assert bucket.take(5, 0.25) == 1  # 1.0
    assert bucket.take(5, 0.6) == 1  # 1.4 since the last take
    assert bucket.tokens(0.6) == pytest.approx(0.4)


def test_next_at_is_now_when_a_token_is_there_and_otherwise_when_one_will_be() -> None:
    # Given a bucket at 4/s, emptied at t=10
    bucket = TokenBucket(4.0, 2, 10.0)
    assert bucket.next_at(10.0) == 10.0
    bucket.take(2, 10.0)

    # Then the next token is a quarter of a second away, and a take then gets it
    assert bucket.next_at(10.0) == pytest.approx(10.25)
    assert bucket.next_at(10.1) == pytest.approx(10.25)
    assert bucket.take(1, 10.2) == 0
    assert bucket.take(5, bucket.next_at(10.2)) == 1


def test_next_at_on_wall_clock_times_always_yields_a_token() -> None:
    # Given a fast bucket on epoch times, where next_at's sum must be rounded (a burst of 2,
    # so that a fraction of a token earned by rounding up is kept, not spilled)
    bucket = TokenBucket(1000.0 / 3, 2, EPOCH)
    assert bucket.take(1, EPOCH) == 1
    t = EPOCH

    # When a caller takes one token at every next_at, 10,000 times
    for _ in range(10_000):
        assert bucket.take(1, t) == 1
        t = bucket.next_at(t)

    # Then it never came back empty-handed, and the 10,000 tokens took 30 s: rounding did not
    # drift the rate (one float step at this magnitude is 0.24 µs)
    assert t - EPOCH == pytest.approx(30.0, abs=1e-6)


def test_configure_takes_effect_at_once_and_keeps_the_tokens() -> None:
    # Given a bucket at 10/s of 100 that has 40 tokens left
    bucket = TokenBucket(10.0, 100, 0.0)
    assert bucket.take(60, 0.0) == 60

    # When it is changed to 1/s at t=1 (having earned 10 at the old rate)
    bucket.configure(1.0, 100, 1.0)

    # Then the 50 tokens are kept, and the next 10 s earn only 10 more
    assert bucket.take(1_000, 1.0) == 50
    assert bucket.take(1_000, 11.0) == 10
    assert bucket.rate == 1.0


def test_configure_to_a_smaller_burst_clamps_the_tokens() -> None:
    bucket = TokenBucket(10.0, 100, 0.0)

    bucket.configure(10.0, 5, 0.0)

    assert bucket.burst == 5
    assert bucket.take(1_000, 0.0) == 5
    assert bucket.take(1_000, 60.0) == 5


def test_configure_to_a_larger_burst_adds_the_difference_at_once() -> None:
    # Given a bucket of 2 at 1/s, emptied
    bucket = TokenBucket(1.0, 2, 0.0)
    assert bucket.take(10, 0.0) == 2

    # When it grows to 10 with no time passing
    bucket.configure(1.0, 10, 0.0)

    # Then the 8 tokens of new headroom are there at once, and no more
    assert bucket.take(100, 0.0) == 8
    assert bucket.take(100, 3.0) == 3
    # And a bucket that was full stays full (at its new size)
    full = TokenBucket(1.0, 2, 0.0)
    full.configure(1.0, 10, 0.0)
    assert full.take(100, 0.0) == 10


def test_configure_to_a_faster_rate_raises_the_long_run_count() -> None:
    # Given 50 s at 10/s, then 50 s at 30/s, from a full bucket of 1 (each half ends half a
    # token after a token, away from float rounding)
    bucket = TokenBucket(10.0, 1, 0.0)
    first, _ = drain_greedily(bucket, 0.0, 50.05)
    bucket.configure(30.0, 1, 50.05)  # half a token earned at 10/s is kept
    second, _ = drain_greedily(bucket, bucket.next_at(50.05), 100.05)

    # Then each half got its rate: 1 + 500, and 0.5 + 1500 -> 1500
    assert (first, second) == (501, 1500)


def test_a_refund_gives_tokens_back_up_to_the_burst() -> None:
    # Given a bucket of 10 emptied at t=0
    bucket = TokenBucket(1.0, 10, 0.0)
    assert bucket.take(10, 0.0) == 10

    # When 4 unused tokens are refunded, they can be taken again at once
    bucket.refund(4, 0.0)
    assert bucket.take(10, 0.0) == 4

    # And a refund never fills the bucket past its size
    bucket.refund(4, 8.0)  # 8 earned + 4 refunded
    assert bucket.take(100, 8.0) == 10


def test_time_running_backwards_neither_earns_nor_loses_tokens() -> None:
    bucket = TokenBucket(1.0, 10, 100.0)
    bucket.take(10, 100.0)

    assert bucket.take(10, 90.0) == 0
    assert bucket.next_at(90.0) == pytest.approx(101.0)
    assert bucket.take(10, 102.0) == 2


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (math.inf, 1), (1.0, 0)])
def test_a_bucket_refuses_a_rate_that_is_not_positive_or_an_empty_burst(
    rate: float, burst: int
) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst, 0.0)
    bucket = TokenBucket(1.0, 1, 0.0)
    with pytest.raises(ValueError, match="must be"):
        bucket.configure(rate, burst, 0.0)


def test_take_and_refund_refuse_negative_counts() -> None:
    bucket = TokenBucket(1.0, 1, 0.0)
    with pytest.raises(ValueError, match="want"):
        bucket.take(-1, 0.0)
    with pytest.raises(ValueError, match="n must"):
        bucket.refund(-1, 0.0)
