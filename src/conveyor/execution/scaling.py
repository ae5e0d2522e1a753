"""The autoscaling policy: how many worker processes a lambda needs, from its backlog.

Pure: no I/O. The supervisor (:mod:`conveyor.execution.supervisor`) feeds it one
:class:`Sample` per interval and applies the :class:`Decision`; time comes from the injected
:class:`~conveyor.clock.Clock`, so every rule below is tested on a ``FakeClock``.

The formula, at each sample, over the samples of the last ``rate_window`` seconds (Δ is the
change from the window's first sample to the newest, Δt its length)::

    queued   = backlog - running                     events waiting for a handler
    arrival  = max(0, (Δbacklog + Δcompleted) / Δt)  events/s coming in
    μ        = events/s one process handles:
                 Δcompleted / process-seconds        when work was queued at every sample of
                                                     the window (the processes were the
                                                     bottleneck, so this is capacity);
                 max(μ, that same ratio)             otherwise (what they did is a lower
                                                     bound on what they can do);
                 prior_throughput                    before any measurement
    raw      = ceil((queued / target_drain + arrival) / μ - tolerance)
    raw      = max(raw, current + 1)                 when the oldest pending event is older
                                                     than max_age, work is queued and every
                                                     process is serving (one more at a time)
    raw      = clamp(raw, min_replicas, max_replicas)
    current  = clamp(current, min_replicas, max_replicas)      (out of bounds: back at once)

    desired  = raw                                   when raw ≥ current (scale up at once)
             = max(stable, current - step_down)      when every raw of the last
                                                     ``stabilization`` seconds was below
                                                     current, stable being the largest
             = current                               otherwise

Process-seconds are the processes serving, integrated over the window (trapezoids between
samples), so processes that start or leave in it count for the time they served.

So a process count drains the queue within ``target_drain`` seconds while keeping up with
what arrives; a burst is answered at the next sample, and the count falls only once the
desire has stayed lower for the whole stabilization window (the HPA's downscale
stabilization), one ``step_down`` per sample. ``tolerance`` keeps a load of 2.05 processes
on 2 rather than 3.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass

from conveyor.clock import Clock


@dataclass(frozen=True)
class ScalingSettings:
    """The bounds and tuning of a :class:`ScalingPolicy`.

    Attributes:
        min_replicas: the fewest processes.
        max_replicas: the most processes.
        target_drain: seconds in which the queued backlog should be handled.
        max_age: seconds the oldest pending event may wait before one more process is added.
        stabilization: seconds the desire must stay below the current count before it falls.
        step_down: processes removed at most per sample.
        rate_window: seconds of samples the arrival rate and throughput are measured over.
        prior_throughput: events/s assumed per process before anything is measured.
        tolerance: the fraction of a process ignored before rounding up.

    Raises:
        ValueError: a value is out of range.
    """

    min_replicas: int = 1
    max_replicas: int = 1
    target_drain: float = 10.0
    max_age: float = 30.0
    stabilization: float = 30.0
    step_down: int = 1
    rate_window: float = 10.0
    prior_throughput: float = 50.0
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError(f"min_replicas must be >= 0, got {self.min_replicas}")
        if self.max_replicas < max(1, self.min_replicas):
            raise ValueError(
                f"max_replicas must be >= 1 and >= min_replicas ({self.min_replicas}), "
                f"got {self.max_replicas}"
            )
        for name in ("target_drain", "max_age", "rate_window", "prior_throughput"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.stabilization < 0:
            raise ValueError(f"stabilization must be >= 0, got {self.stabilization}")
        if self.step_down < 1:
            raise ValueError(f"step_down must be >= 1, got {self.step_down}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")


@dataclass(frozen=True)
class Sample:
    """What the supervisor saw at one instant.

    Attributes:
        backlog: unfinished events of the lambda's (unpaused) subscriptions, in flight,
            retrying and delayed events past due included (the subscriptions' ``backlog``).
        running: handler calls running in the lambda's processes.
        oldest_age: seconds the oldest unfinished event has waited, if any.
        completed: handler calls finished by the lambda's processes since the supervisor
            began counting (never decreases).
        replicas: processes serving (ready, not draining).
    """

    backlog: int
    running: int
    oldest_age: float | None
    completed: int
    replicas: int


@dataclass(frozen=True)
class Decision:
    """The outcome of one sample.

    Attributes:
        desired: the process count to run now.
        raw: the desire before stabilization (already within the bounds).
        queued: events waiting for a handler.
        arrival_rate: events/s arriving, as measured.
        throughput: events/s per process used (measured, or the prior).
        measured: whether ``throughput`` comes from a measurement.
        reason: why, in words, for logs.
    """

    desired: int
    raw: int
    queued: int
    arrival_rate: float
    throughput: float
    measured: bool
    reason: str


@dataclass(frozen=True)
class _Timed:
    at: float
    sample: Sample


class ScalingPolicy:
    """Turns samples over time into a desired process count (see the module's formula).

    Args:
        settings: the bounds and tuning.
        clock: the time each sample is taken at.
    """

    def __init__(self, settings: ScalingSettings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        # Invariant: _samples[0] is the newest sample at or before the rate window's start
        # (or the oldest one kept), so the window measured spans about rate_window seconds.
        self._samples: deque[_Timed] = deque()
        # Raw desires of the last `stabilization` seconds, plus the newest one before them.
        self._desires: deque[tuple[float, int]] = deque()
        self._throughput: float | None = None

    @property
    def throughput(self) -> float:
        """Events/s per process: the latest estimate, or the prior."""
        return self.settings.prior_throughput if self._throughput is None else self._throughput

    def observe(self, sample: Sample, current: int) -> Decision:
        """Record ``sample`` and decide the process count.

        Args:
            sample: what was seen now.
            current: the process count running or starting now (not draining).

        Returns:
            The decision; ``desired`` is what to run.
        """
        now = self._clock.now()
        self._remember(now, sample)
        arrival = self._measure()
        queued = max(0, sample.backlog - sample.running)
        raw, why = self._raw(sample, queued, arrival, current)
        self._desires.append((now, raw))
        while len(self._desires) > 1 and self._desires[1][0] <= now - self.settings.stabilization:
            self._desires.popleft()
        desired, why = self._stabilize(raw, current, now, why)
        return Decision(
            desired=desired,
            raw=raw,
            queued=queued,
            arrival_rate=arrival,
            throughput=self.throughput,
            measured=self._throughput is not None,
            reason=why,
        )

    def _remember(self, now: float, sample: Sample) -> None:
        self._samples.append(_Timed(now, sample))
        start = now - self.settings.rate_window
        while len(self._samples) > 2 and self._samples[1].at <= start:
            self._samples.popleft()

    def _measure(self) -> float:
        """Update the throughput estimate from the window; return the arrival rate."""
        first, last = self._samples[0], self._samples[-1]
        elapsed = last.at - first.at
        if elapsed <= 0:
            return 0.0
        done = last.sample.completed - first.sample.completed
        arrival = max(0.0, (last.sample.backlog - first.sample.backlog + done) / elapsed)
        process_seconds = 0.0
        for a, b in itertools.pairwise(self._samples):
            process_seconds += (a.sample.replicas + b.sample.replicas) / 2 * (b.at - a.at)
        if process_seconds > 0 and done > 0:
            observed = done / process_seconds
            # Invariant: only a window in which work waited throughout measures capacity;
            # any other can only raise the estimate.
            saturated = all(t.sample.backlog > t.sample.running for t in self._samples)
            if saturated or observed > self.throughput:
                self._throughput = observed
        return arrival

    def _raw(self, sample: Sample, queued: int, arrival: float, current: int) -> tuple[int, str]:
        s = self.settings
        load = queued / s.target_drain + arrival
        need = load / self.throughput
        raw = max(0, math.ceil(need - s.tolerance))
        why = (
            f"queued {queued}, arriving {arrival:.1f}/s, "
            f"{self.throughput:.1f}/s per process{' (prior)' if self._throughput is None else ''}"
        )
        old = sample.oldest_age is not None and sample.oldest_age > s.max_age
        if old and queued > 0 and sample.replicas >= current and raw <= current:
            raw = current + 1
            why += f"; oldest pending {sample.oldest_age:.1f}s > {s.max_age:g}s"
        return min(max(raw, s.min_replicas), s.max_replicas), why

    def _stabilize(self, raw: int, current: int, now: float, why: str) -> tuple[int, str]:
        s = self.settings
        # A count outside the bounds is brought inside at once; the rest starts from there.
        current = min(max(current, s.min_replicas), s.max_replicas)
        if raw >= current:
            return raw, why
        # The deque spans the window: the desires in it, and the one in force at its start.
        covered = self._desires[0][0] <= now - s.stabilization
        stable = max(d for _, d in self._desires)
        if not covered or stable >= current:
            return current, why + f"; holding {current} (stabilizing)"
        return max(stable, current - s.step_down), why
