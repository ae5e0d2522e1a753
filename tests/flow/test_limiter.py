"""The adaptive concurrency limit, driven against a simulated subscriber.

The subscriber works on ``capacity`` requests at once, each for a service time; the rest
wait in a FIFO queue, so latency grows with what is kept outstanding. The driver keeps
``limiter.limit`` requests outstanding (as the runner keeps its limit full) and reports each
completion to ``on_sample``. Everything is a deterministic discrete-event simulation.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import pytest

from conveyor.flow.limiter import AdaptiveLimiter, LimiterStats

D = 0.1  # the subscriber's service time, seconds


class Point(NamedTuple):
    t: float
    limit: int
    probing: bool


@dataclass
class Subscriber:
    """``capacity(t)`` requests served at once for ``service(t)`` seconds each, FIFO."""

    capacity: Callable[[float], int]
    service: Callable[[float], float]
    busy: int = 0
    waiting: deque[float] = field(default_factory=deque)  # send times
    done: list[tuple[float, int, float]] = field(default_factory=list)  # (at, seq, sent)
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, t: float) -> None:
        self.waiting.append(t)
        self.start_waiting(t)

    def start_waiting(self, t: float) -> None:
        while self.waiting and self.busy < self.capacity(t):
            self.busy += 1
            heapq.heappush(self.done, (t + self.service(t), next(self.seq), self.waiting.popleft()))

    def next_completion(self) -> tuple[float, float]:
        """(finished at, sent at) of the next request to finish."""
        at, _, sent = heapq.heappop(self.done)
        self.busy -= 1
        self.start_waiting(at)
        return at, sent


def simulate(
    limiter: AdaptiveLimiter,
    until: float,
    capacity: Callable[[float], int],
    service: Callable[[float], float] = lambda t: D,
) -> list[Point]:
    """Keep ``limiter.limit`` requests outstanding until ``until``; the limit after each sample."""
    subscriber = Subscriber(capacity, service)
    outstanding = 0
    points: list[Point] = []
    t = 0.0
    while True:
        while outstanding < limiter.limit:
            subscriber.send(t)
            outstanding += 1
        t, sent = subscriber.next_completion()
        if t > until:
            return points
        limiter.on_sample(t - sent, outstanding, t)
        outstanding -= 1
        points.append(Point(t, limiter.limit, limiter.stats().probing))


def constant(c: int) -> Callable[[float], int]:
    return lambda t: c


def steady(points: Sequence[Point], start: float, end: float = float("inf")) -> list[int]:
    """The limits in [start, end), probes left out (a probe halves the limit on purpose)."""
    return [p.limit for p in points if start <= p.t < end and not p.probing]


def assert_within(limits: Sequence[int], capacity: int, tolerance: float = 0.2) -> None:
    low, high = (1 - tolerance) * capacity, (1 + tolerance) * capacity
    mean = sum(limits) / len(limits)
    assert low <= min(limits), (capacity, min(limits))
    assert max(limits) <= high, (capacity, max(limits))
    assert low <= mean <= high, (capacity, mean)


@pytest.mark.parametrize("capacity", [5, 20, 100, 400])
def test_the_limit_settles_within_20_percent_of_the_subscribers_capacity(capacity: int) -> None:
    # Given a limiter from 1 to 2000 against a subscriber of the given capacity
    limiter = AdaptiveLimiter(floor=1, cap=2000)

    # When it runs for 90 s (900 service times, two min_rtt windows and more)
    points = simulate(limiter, 90.0, constant(capacity))

    # Then over the last 30 s, and over the last 200 samples, it stays within ±20 % of C
    assert_within(steady(points, 60.0), capacity)
    assert_within(steady(points[-200:], 0.0), capacity)
    # ... probes took at most 2 % of those samples
    last = [p for p in points if p.t >= 60.0]
    assert sum(p.probing for p in last) <= 0.02 * len(last)
    # ... and it learnt the no-load round trip
    stats = limiter.stats()
    assert stats.min_rtt == pytest.approx(D)
    assert stats.recent_rtt is not None
    assert 0.99 * D <= stats.recent_rtt <= 1.2 * D


def test_slow_start_reaches_a_large_capacity_within_a_few_dozen_round_trips() -> None:
    # Given a fresh limiter at its floor of 1 and a subscriber of 400
    limiter = AdaptiveLimiter(floor=1, cap=2000)

    # When it runs
    points = simulate(limiter, 10.0, constant(400))

    # Then it is within 20 % of 400 after 3 s (30 service times), and stays there
    assert_within(steady(points, 3.0), 400)


def test_the_limit_follows_the_capacity_down_and_up_again() -> None:
    # Given a subscriber of 100 that drops to 40 at t=60 and returns to 100 at t=120
    def capacity(t: float) -> int:
        return 40 if 60.0 <= t < 120.0 else 100

    limiter = AdaptiveLimiter(floor=1, cap=2000)

    # When the limiter runs through both changes
    points = simulate(limiter, 180.0, capacity)

    # Then it settles near 100, follows down to near 40 within 5 s, and back up within 10 s
    assert_within(steady(points, 40.0, 60.0), 100)
    assert_within(steady(points, 65.0, 120.0), 40)
    assert_within(steady(points, 130.0), 100)


def test_the_limit_does_not_ratchet_up_against_a_subscriber_with_jittery_service() -> None:
    # Given a subscriber of 50 whose service times vary by ±10 % (so its slots drift apart
    # and a limit above 50 keeps every request a little queued: no window sees the no-load
    # round trip unless the limiter probes for it)
    rng = random.Random(7)

    def service(t: float) -> float:
        return D * (1 + 0.1 * (2 * rng.random() - 1))

    limiter = AdaptiveLimiter(floor=1, cap=2000, rtt_window=20.0)

    # When it runs for 300 s, fifteen min_rtt windows
    points = simulate(limiter, 300.0, constant(50), service)

    # Then it stays within ±20 % of 50 to the end, having probed
    assert_within(steady(points, 30.0), 50)
    assert any(p.probing for p in points if p.t >= 240.0)


@pytest.mark.parametrize("capacity", [20, 50])
def test_noisy_latency_is_not_mistaken_for_a_queue(capacity: int) -> None:
    # Given a subscriber whose service times vary by ±30 %, so that the least of many
    # windows' mean round trips is well below the no-load mean
    rng = random.Random(7)

    def service(t: float) -> float:
        return D * (1 + 0.3 * (2 * rng.random() - 1))

    limiter = AdaptiveLimiter(floor=1, cap=2000, rtt_window=20.0)

    # When it runs for 120 s
    points = simulate(limiter, 120.0, constant(capacity), service)

    # Then the limit stays around C rather than sinking (a plain minimum held it near a
    # tenth of C); the noise only widens the band a little
    limits = steady(points, 40.0)
    assert min(limits) >= 0.8 * capacity
    assert max(limits) <= 1.3 * capacity
    assert 0.8 * capacity <= sum(limits) / len(limits) <= 1.2 * capacity


def test_a_rise_in_the_baseline_latency_is_learnt_once_the_old_minimum_expires() -> None:
    # Given a subscriber of 50 whose service time doubles at t=60
    def service(t: float) -> float:
        return D if t < 60.0 else 2 * D

    limiter = AdaptiveLimiter(floor=1, cap=2000, rtt_window=20.0)

    # When the limiter runs on
    points = simulate(limiter, 150.0, constant(50), service)

    # Then the slower round trip reads as a queue until the old minimum leaves the window,
    # and the limit is back within ±20 % of 50 once it has (20 s) and regrown
    assert max(steady(points, 65.0, 75.0)) < 40
    assert_within(steady(points, 110.0), 50)
    assert limiter.stats().min_rtt == pytest.approx(2 * D)


def test_the_limit_never_leaves_floor_and_cap() -> None:
    # Given limiters held between 30 and 60
    weak = AdaptiveLimiter(floor=30, cap=60)
    strong = AdaptiveLimiter(floor=30, cap=60)

    # When one runs against a subscriber of 5 and one against a subscriber of 200
    weak_points = simulate(weak, 60.0, constant(5))
    strong_points = simulate(strong, 60.0, constant(200))

    # Then neither leaves [30, 60]; the weak one stays near its floor (the latency at the
    # floor becomes its baseline once the true one expires) and the strong one on its cap
    limits = [p.limit for p in weak_points + strong_points]
    assert min(limits) >= 30
    assert max(limits) <= 60
    assert max(steady(weak_points, 30.0)) <= 36
    assert set(steady(strong_points, 10.0)) == {60}


def test_a_limiter_that_is_not_adaptive_stays_at_its_cap() -> None:
    # Given a limiter that is not adaptive
    limiter = AdaptiveLimiter(floor=1, cap=64, initial=8, adaptive=False)

    # When it sees a saturated subscriber, failures and throttles
    points = simulate(limiter, 30.0, constant(5))
    for t in range(31, 40):
        limiter.on_failure(float(t))
        limiter.on_throttle(float(t))

    # Then its limit is the cap throughout
    assert {p.limit for p in points} == {64}
    assert limiter.limit == 64
    assert limiter.stats().min_rtt is not None  # it still measures


def feed(limiter: AdaptiveLimiter, start: float, rounds: int, in_flight: int) -> float:
    """``rounds`` rounds of four samples, D apart, at a constant round trip D.

    Returns:
        The time of the last round.
    """
    t = start
    for _ in range(rounds):
        t += D
        for _ in range(4):
            limiter.on_sample(D, in_flight, t)
    return t


def test_an_app_limited_limiter_does_not_grow() -> None:
    # Given two limiters at 16 that see no queue at all
    idle = AdaptiveLimiter(floor=1, cap=1000, initial=16)
    busy = AdaptiveLimiter(floor=1, cap=1000, initial=16)

    # When one only ever has 3 events out, and the other has its limit out
    feed(idle, 0.0, 200, in_flight=3)
    t = 0.0
    for _ in range(200):
        t = feed(busy, t, 1, in_flight=busy.limit)

    # Then the app-limited one stays at 16, and the used one grew
    assert idle.limit == 16
    assert busy.limit > 100


def test_failures_shrink_the_limit_by_a_tenth_once_per_round_trip_down_to_the_floor() -> None:
    # Given a limiter at 100 whose round trip is 0.1 s (measured with few events out, so
    # that the limit does not grow)
    limiter = AdaptiveLimiter(floor=50, cap=1000, initial=100)
    feed(limiter, 0.0, 3, in_flight=10)
    assert (limiter.limit, limiter.stats().recent_rtt) == (100, D)

    # When a round of pushes fails together
    for _ in range(20):
        limiter.on_failure(10.0)

    # Then the limit lost a tenth once, not twenty times
    assert limiter.limit == 90

    # When failures go on, one per round trip
    limits = []
    for i in range(1, 10):
        limiter.on_failure(10.0 + i * 0.1001)
        limits.append(limiter.limit)

    # Then each cuts a tenth, until the floor
    assert limits == [81, 72, 64, 57, 51, 50, 50, 50, 50]


def test_a_throttle_halves_the_limit_once_per_round_trip_and_is_not_a_failure() -> None:
    # Given a limiter at 100 whose round trip is 0.1 s
    limiter = AdaptiveLimiter(floor=10, cap=1000, initial=100)
    feed(limiter, 0.0, 3, in_flight=10)

    # When a burst of throttles comes back, then a failure at the same moment
    for _ in range(5):
        limiter.on_throttle(10.0)
    after_throttles = limiter.limit
    limiter.on_failure(10.0)

    # Then the throttles halved once and the failure still cut its tenth
    assert (after_throttles, limiter.limit) == (50, 45)

    # And later throttles halve down to the floor
    limiter.on_throttle(11.0)
    limiter.on_throttle(12.0)
    assert limiter.limit == 11
    limiter.on_throttle(13.0)
    assert limiter.limit == 10


def test_a_failure_before_any_round_trip_is_known_cuts_once_a_second() -> None:
    limiter = AdaptiveLimiter(floor=1, cap=100, initial=100)
    limiter.on_failure(0.0)
    limiter.on_failure(0.5)
    limiter.on_failure(1.0)
    assert limiter.limit == 81


def test_a_fresh_limiter_starts_at_its_floor_and_an_initial_limit_is_clamped() -> None:
    assert AdaptiveLimiter(floor=4, cap=100).limit == 4
    assert AdaptiveLimiter(floor=4, cap=100, initial=50).limit == 50
    assert AdaptiveLimiter(floor=4, cap=100, initial=500).limit == 100
    assert AdaptiveLimiter(floor=4, cap=100, initial=1).limit == 4


def test_configure_clamps_the_limit_and_switches_adaptation() -> None:
    # Given a limiter at 100
    limiter = AdaptiveLimiter(floor=1, cap=1000, initial=100)

    # When its bounds change around it, the limit is clamped into them
    limiter.configure(floor=1, cap=50, adaptive=True)
    assert limiter.limit == 50
    limiter.configure(floor=80, cap=200, adaptive=True)
    assert limiter.limit == 80

    # When adaptation is turned off, the limit is the cap and failures do not move it
    limiter.configure(floor=80, cap=200, adaptive=False)
    limiter.on_failure(1.0)
    assert limiter.limit == 200

    # When it is turned back on, it adapts from there
    limiter.configure(floor=1, cap=200, adaptive=True)
    limiter.on_failure(5.0)
    assert limiter.limit == 180
    assert limiter.stats() == LimiterStats(
        limit=180,
        floor=1,
        cap=200,
        adaptive=True,
        min_rtt=None,
        recent_rtt=None,
        samples=0,
        probing=False,
    )


def test_the_same_calls_give_the_same_limits() -> None:
    first = simulate(AdaptiveLimiter(floor=1, cap=500), 30.0, constant(37))
    second = simulate(AdaptiveLimiter(floor=1, cap=500), 30.0, constant(37))
    assert first == second


@pytest.mark.parametrize(
    ("floor", "cap", "message"), [(0, 10, "floor must be"), (5, 4, "cap must be")]
)
def test_bounds_are_validated(floor: int, cap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdaptiveLimiter(floor=floor, cap=cap)
    limiter = AdaptiveLimiter(floor=1, cap=10)
    with pytest.raises(ValueError, match=message):
        limiter.configure(floor=floor, cap=cap, adaptive=True)


def test_samples_and_the_rtt_window_are_validated() -> None:
    limiter = AdaptiveLimiter(floor=1, cap=10)
    with pytest.raises(ValueError, match="rtt must be"):
        limiter.on_sample(-0.1, 1, 0.0)
    with pytest.raises(ValueError, match="rtt must be"):
        limiter.on_sample(float("nan"), 1, 0.0)
    with pytest.raises(ValueError, match="in_flight"):
        limiter.on_sample(0.1, -1, 0.0)
    with pytest.raises(ValueError, match="rtt_window"):
        AdaptiveLimiter(floor=1, cap=10, rtt_window=0.0)
