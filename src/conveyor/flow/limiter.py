"""An adaptive concurrency limit for one subscription: Vegas on latency, AIMD on failures.

The limit is the number of events a subscription may have in flight. It follows the
subscriber's latency the way TCP Vegas and Netflix's ``concurrency-limits`` Vegas limiter do:
with ``rtt`` the measured round trip and ``min_rtt`` the round trip with nothing queued, the
subscriber holds about ``queue = in_flight * (1 - min_rtt / rtt)`` events that wait rather
than being worked on. Little's law makes this exact for a subscriber that serves ``C``
events at a time: with ``L >= C`` in flight, ``rtt = min_rtt * L / C`` and
``queue = L - C``. (``in_flight`` is the window's mean, at most the limit; it equals the
limit whenever the runner keeps the limit full.) The limiter keeps that queue small but not
empty, so that the subscriber is never idle and never far behind. Once per window:

* ``queue < alpha`` and the limit in use (peak in-flight at least half the limit) → grow:
  double while in slow start (from construction until the first window that shows a queue,
  a decrease, a failure or a throttle), else add ``STEP`` of the limit, at least 1. A limit
  that the runner does not fill (app-limited) never grows: its samples say nothing about
  what more would do;
* ``queue > FAR * beta`` (far behind: the subscriber lost capacity, or slow start
  overshot) → jump to the estimated capacity ``in_flight - queue`` plus mid-band, at most
  halving;
* ``queue > beta`` → shrink by the same step as growth;
* otherwise hold.

``alpha = max(MIN_ALPHA, ALPHA * limit)`` and ``beta = max(MIN_BETA, BETA * limit)``:
against a subscriber of capacity ``C`` the limit settles in ``[C / (1 - ALPHA),
C / (1 - BETA)]``, about ``[1.05 C, 1.14 C]``, and at ``C + 1`` for small ``C`` (6 for 5),
where one queued event is the least that keeps the subscriber busy. The band does not push
several limiters that share a subscriber towards equal shares: each one holds its own
fraction of the queue.

Windows. Samples are judged a window at a time, about once per round trip: a window holds
the samples of pushes *sent* after the limit last changed (``now - rtt`` at or after the
change), and closes once it has ``MIN_WINDOW_SAMPLES`` samples spanning at least their mean
round trip. A window's round trip is the *mean* of its samples: Little's law needs the mean,
and a median would read a half-queued subscriber as either idle or doubled.

No-load round trip. ``min_rtt`` is the least window mean of the last ``rtt_window`` seconds
(30 s by default), each window offering its mean plus ``NOISE_Z`` standard errors: a plain
minimum of many noisy means sits below the true no-load round trip and reads as a queue
that is not there (with ±30 % service-time jitter it held a subscriber of 20 at 5). Because
the minimum is over a time window, it can rise when the subscriber's baseline latency rises;
until the old minimum leaves the window the higher latency reads as a queue and the limit
shrinks, so a doubling of the baseline costs up to ``rtt_window`` seconds at a low limit.

Probes. A limit in its band keeps the subscriber slightly queued, so its windows never show
the no-load round trip; left alone, ``min_rtt`` would creep up to the loaded round trip as
old minima expire and the limit would ratchet upwards every ``rtt_window``. So, as BBR does,
once half of ``rtt_window`` has passed since the minimum was measured (and since the last
probe), the limiter *probes*: for one window ``limit`` reads half the steady limit, the
queue drains, and that window measures the no-load round trip afresh. Probes cost about one
round trip at half the limit every ``rtt_window / 2`` seconds. A subscriber that cannot take
even the floor cannot be drained: the latency at the floor becomes its baseline once the
true one expires, and the limit stays a step or two above the floor.

Failures (timeouts, 5xx, broken connections) cut the limit to ``FAILURE_FACTOR`` of itself;
throttles (429/503 with ``Retry-After``) to ``THROTTLE_FACTOR``. Each kind cuts at most once
per recent round trip, so that the failures of one round of pushes are one signal.

Invariants:

* ``floor <= limit <= cap`` at all times, and ``limit == cap`` whenever ``adaptive`` is off.
* Pure and deterministic: no I/O, no clock, no randomness; time arrives only as ``now``
  arguments (seconds, any origin), so the same calls always give the same limits.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

ALPHA = 0.05  # grow while fewer than ALPHA * limit events are queued at the subscriber
BETA = 0.12  # shrink once more than BETA * limit events are queued
MIN_ALPHA = 0.5  # below 10 events alpha would ask for a fraction of an event: grow at zero
MIN_BETA = 1.0  # ... and beta would forbid the one queued event that keeps C busy
FAR = 2.0  # a queue above FAR * beta jumps to the estimated capacity instead of stepping
STEP = 0.05  # an additive step is this fraction of the limit, at least one event
FAILURE_FACTOR = 0.9  # a failure keeps this fraction of the limit
THROTTLE_FACTOR = 0.5  # a throttle keeps this fraction of the limit
MIN_WINDOW_SAMPLES = 3  # samples a window needs before it is judged
DEFAULT_RTT_WINDOW = 30.0  # seconds that a window's mean round trip counts towards min_rtt
QUIET_WITHOUT_RTT = 1.0  # seconds between two cuts while no round trip is known yet
NOISE_Z = 2.0  # a window offers its mean plus this many standard errors as min_rtt
SENT_SLACK = 1e-6  # seconds: a push sent this close to a change counts as sent after it


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """A snapshot of an :class:`AdaptiveLimiter`.

    Attributes:
        limit: the limit in force now (half the steady limit during a probe).
        floor: the least the limit may fall to.
        cap: the most the limit may rise to.
        adaptive: whether the limit moves; when off it is ``cap``.
        min_rtt: the no-load round trip estimate in seconds, or ``None`` before the first
            window closes.
        recent_rtt: the mean round trip of the last closed window, or ``None``.
        samples: successful pushes reported since construction.
        probing: whether a probe for the no-load round trip is under way.
    """

    limit: int
    floor: int
    cap: int
    adaptive: bool
    min_rtt: float | None
    recent_rtt: float | None
    samples: int
    probing: bool


@dataclass(slots=True)
class _Window:
    """Samples of pushes sent since the limit last changed."""

    opened: float = 0.0
    count: int = 0
    rtt_sum: float = 0.0
    rtt_squares: float = 0.0
    in_flight_sum: int = 0
    peak_in_flight: int = 0

    def add(self, rtt: float, in_flight: int, now: float) -> None:
        if self.count == 0:
            self.opened = now
        self.count += 1
        self.rtt_sum += rtt
        self.rtt_squares += rtt * rtt
        self.in_flight_sum += in_flight
        self.peak_in_flight = max(self.peak_in_flight, in_flight)

    @property
    def mean_rtt(self) -> float:
        return self.rtt_sum / self.count

    @property
    def error(self) -> float:
        """The standard error of ``mean_rtt``."""
        n = self.count
        variance = max(0.0, self.rtt_squares / n - self.mean_rtt**2) * n / max(1, n - 1)
        return math.sqrt(variance / n)

    @property
    def mean_in_flight(self) -> float:
        return self.in_flight_sum / self.count

    def ready(self, now: float) -> bool:
        """Whether the window holds enough samples, over at least one round trip."""
        return self.count >= MIN_WINDOW_SAMPLES and now - self.opened >= self.mean_rtt


class _MinFilter:
    """The minimum of the values pushed in the last ``horizon`` seconds.

    Invariant: times increase and values strictly increase from the front of ``_entries`` to
    its back; the front is the minimum, and an entry is dropped as soon as a later one is no
    larger, since it can never be the minimum again.
    """

    __slots__ = ("_entries", "horizon")

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self._entries: deque[tuple[float, float]] = deque()

    def push(self, now: float, value: float) -> float:
        """Add ``value`` measured at ``now``; returns the minimum."""
        while self._entries and self._entries[-1][1] >= value:
            self._entries.pop()
        self._entries.append((now, value))
        while self._entries[0][0] < now - self.horizon:
            self._entries.popleft()
        return self._entries[0][1]

    @property
    def value(self) -> float | None:
        return self._entries[0][1] if self._entries else None

    @property
    def since(self) -> float:
        """When the current minimum was measured (``-inf`` when there is none)."""
        return self._entries[0][0] if self._entries else -math.inf


class AdaptiveLimiter:
    """The concurrency limit of one subscription, moved by latency, failures and throttling.

    Args:
        floor: the least the limit may fall to (``>= 1``).
        cap: the most the limit may rise to (``>= floor``).
        initial: the limit to start at, clamped to ``[floor, cap]`` (say, one remembered from
            an earlier run). ``None`` starts at ``floor`` in slow start: the first windows
            then measure the no-load round trip before the subscriber can be overloaded,
            and the limit doubles each round trip until a queue shows, reaching any cap in
            about ``log2(cap / floor)`` windows.
        adaptive: when off, the limit is ``cap`` and stays there.
        rtt_window: seconds over which the no-load round trip is the minimum (see the
            module docstring).

    Raises:
        ValueError: ``floor < 1``, ``cap < floor``, or ``rtt_window`` not positive.
    """

    def __init__(
        self,
        *,
        floor: int,
        cap: int,
        initial: int | None = None,
        adaptive: bool = True,
        rtt_window: float = DEFAULT_RTT_WINDOW,
    ) -> None:
        _check_bounds(floor, cap)
        if not math.isfinite(rtt_window) or rtt_window <= 0:
            raise ValueError(f"rtt_window must be a positive number of seconds: {rtt_window!r}")
        self._floor = floor
        self._cap = cap
        self._adaptive = adaptive
        start = floor if initial is None else initial
        self._limit = _clamp(start, floor, cap) if adaptive else cap
        self._slow_start = adaptive and initial is None
        self._base = _MinFilter(rtt_window)
        self._window = _Window()
        self._recent: float | None = None
        self._samples = 0
        self._now = -math.inf  # the latest time seen, for configure(), which has no `now`
        self._changed_at = -math.inf  # samples of pushes sent before this are not judged
        self._probing = False
        self._probed_at = -math.inf
        self._failure_quiet_until = -math.inf
        self._throttle_quiet_until = -math.inf

    @property
    def limit(self) -> int:
        """The events that may be in flight now: ``floor <= limit <= cap``."""
        if self._probing:
            return max(self._floor, self._limit // 2)
        return self._limit

    def configure(self, *, floor: int, cap: int, adaptive: bool) -> None:
        """Change the bounds at run time, clamping the limit into them.

        Turning ``adaptive`` off sets the limit to ``cap``; turning it on adapts from the
        current limit.

        Raises:
            ValueError: ``floor < 1`` or ``cap < floor``.
        """
        _check_bounds(floor, cap)
        self._floor, self._cap, self._adaptive = floor, cap, adaptive
        if adaptive:
            self._set(_clamp(self._limit, floor, cap), self._now)
        else:
            self._slow_start = self._probing = False
            self._set(cap, self._now)

    def on_sample(self, rtt: float, in_flight: int, now: float) -> None:
        """Record a push that succeeded (results came back).

        Args:
            rtt: seconds from sending the push to its results.
            in_flight: events in flight when the results came, this push's included.
            now: the current time in seconds.

        Raises:
            ValueError: ``rtt`` is negative or not finite, or ``in_flight`` is negative.
        """
        if not math.isfinite(rtt) or rtt < 0:
            raise ValueError(f"rtt must be a finite number of seconds >= 0: {rtt!r}")
        if in_flight < 0:
            raise ValueError(f"in_flight must be >= 0: {in_flight!r}")
        self._now = max(self._now, now)
        self._samples += 1
        if now - rtt < self._changed_at - SENT_SLACK:
            return  # sent under an earlier limit: says nothing about the current one
        self._window.add(rtt, in_flight, now)
        if self._window.ready(now):
            self._close_window(now)

    def on_failure(self, now: float) -> None:
        """Record a push that failed (timeout, 5xx, broken connection): shrink by 10 %.

        Failures within one round trip of the last cut are one signal and do not cut again.
        """
        self._now = max(self._now, now)
        if self._adaptive and now >= self._failure_quiet_until:
            self._failure_quiet_until = self._cut(FAILURE_FACTOR, now)

    def on_throttle(self, now: float) -> None:
        """Record a push that the subscriber throttled (429/503 Retry-After): halve.

        Not a failure: it does not hold back a failure cut, nor one of these. Throttles within
        one round trip of the last halving do not halve again.
        """
        self._now = max(self._now, now)
        if self._adaptive and now >= self._throttle_quiet_until:
            self._throttle_quiet_until = self._cut(THROTTLE_FACTOR, now)

    def _cut(self, factor: float, now: float) -> float:
        """Multiply the limit by ``factor`` and leave slow start; returns until when the
        same signal is one with this cut (one round trip)."""
        quiet_until = now + self._quiet_interval()
        self._slow_start = False
        self._set(math.floor(self._limit * factor), now)
        return quiet_until

    def stats(self) -> LimiterStats:
        """A snapshot of the limit and what it was computed from."""
        return LimiterStats(
            limit=self.limit,
            floor=self._floor,
            cap=self._cap,
            adaptive=self._adaptive,
            min_rtt=self._base.value,
            recent_rtt=self._recent,
            samples=self._samples,
            probing=self._probing,
        )

    def _close_window(self, now: float) -> None:
        window, self._window = self._window, _Window()
        self._recent = window.mean_rtt
        base = self._base.push(now, window.mean_rtt + NOISE_Z * window.error)
        if self._probing:  # the probe measured min_rtt; back to the steady limit
            self._probing = False
            self._changed(now)
            return
        if not self._adaptive:
            return
        self._set(self._next_limit(window, base), now)
        if self._probe_due(now):
            self._probing = True
            self._probed_at = now
            self._changed(now)

    def _next_limit(self, window: _Window, base: float) -> int:
        """The Vegas rule of the module docstring, for one closed window.

        Ends slow start once the window shows a queue.
        """
        limit = self._limit
        mean = window.mean_rtt
        in_flight = min(float(limit), window.mean_in_flight)
        queue = in_flight * (1.0 - base / mean) if mean > 0 else 0.0
        alpha = max(MIN_ALPHA, ALPHA * limit)
        beta = max(MIN_BETA, BETA * limit)
        if queue >= alpha:
            self._slow_start = False
        if queue > FAR * beta:
            capacity = in_flight - queue
            return min(limit - 1, max(limit // 2, math.ceil(capacity / _HOLD)))
        if queue > beta:
            return limit - _step(limit)
        if queue < alpha and 2 * window.peak_in_flight >= limit:
            return 2 * limit if self._slow_start else limit + _step(limit)
        return limit

    def _probe_due(self, now: float) -> bool:
        if max(self._floor, self._limit // 2) == self._limit:
            return False  # the limit cannot drain any lower
        last = max(self._base.since, self._probed_at)
        return now - last >= self._base.horizon / 2

    def _quiet_interval(self) -> float:
        if self._recent is not None:
            return self._recent
        return QUIET_WITHOUT_RTT

    def _set(self, limit: int, now: float) -> None:
        limit = _clamp(limit, self._floor, self._cap)
        if limit != self._limit:
            self._limit = limit
            self._changed(now)

    def _changed(self, now: float) -> None:
        self._changed_at = now
        self._window = _Window()


_HOLD = 1.0 - (ALPHA + BETA) / 2  # capacity / _HOLD puts the queue mid-band


def _step(limit: int) -> int:
    return max(1, round(STEP * limit))


def _clamp(value: int, floor: int, cap: int) -> int:
    return min(cap, max(floor, value))


def _check_bounds(floor: int, cap: int) -> None:
    if floor < 1:
        raise ValueError(f"floor must be >= 1: {floor!r}")
    if cap < floor:
        raise ValueError(f"cap must be >= floor: cap={cap!r}, floor={floor!r}")
