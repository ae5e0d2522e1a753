"""A trial's live figures on this node: pushes to the canary and to every other version.

Counts are kept exactly, per second of the clock, for the last window; latencies are kept as
the most recent ``MAX_LATENCY_SAMPLES`` of the window per side, so memory stays bounded
however busy the lambda is (the percentiles then describe the latest pushes). Recording a
push is O(1): it runs after every push.
"""

from __future__ import annotations

import math
from collections import deque

from conveyor.wire.releases import Figures, SideFigures

__all__ = ["MAX_LATENCY_SAMPLES", "Side", "Trial"]

MAX_LATENCY_SAMPLES = 4096  # per side of a trial


def _percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted samples."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Side:
    """The pushes of one side of a trial, over a sliding window."""

    __slots__ = ("_latencies", "_seconds", "_totals")

    def __init__(self) -> None:
        # [second, pushes, failures, events], oldest first.
        self._seconds: deque[list[int]] = deque()
        self._latencies: deque[tuple[float, float]] = deque(maxlen=MAX_LATENCY_SAMPLES)
        self._totals = [0, 0, 0]  # pushes, failures, events over the whole trial

    def add(self, now: float, ok: bool, latency: float, events: int) -> None:
        """Count one push that ended at ``now``."""
        second = int(now)
        if self._seconds and self._seconds[-1][0] == second:
            slot = self._seconds[-1]
        else:
            slot = [second, 0, 0, 0]
            self._seconds.append(slot)
        slot[1] += 1
        slot[2] += not ok
        slot[3] += events
        totals = self._totals
        totals[0] += 1
        totals[1] += not ok
        totals[2] += events
        self._latencies.append((now, latency))

    def totals(self) -> SideFigures:
        """Counts over the whole trial (no latencies: those are kept for the window only)."""
        pushes, failures, events = self._totals
        if not pushes:
            return SideFigures()
        return SideFigures(
            pushes=pushes, failures=failures, events=events, failure_rate=failures / pushes
        )

    def figures(self, now: float, window: float) -> SideFigures:
        """The figures of the pushes within ``window`` seconds before ``now``; older ones
        are forgotten."""
        start = now - window
        while self._seconds and self._seconds[0][0] + 1 <= start:
            self._seconds.popleft()
        while self._latencies and self._latencies[0][0] < start:
            self._latencies.popleft()
        pushes = sum(s[1] for s in self._seconds)
        if not pushes:
            return SideFigures()
        failures = sum(s[2] for s in self._seconds)
        ordered = sorted(latency for _, latency in self._latencies)
        return SideFigures(
            pushes=pushes,
            failures=failures,
            events=sum(s[3] for s in self._seconds),
            failure_rate=failures / pushes,
            latency_p50=_percentile(ordered, 0.5) if ordered else None,
            latency_p95=_percentile(ordered, 0.95) if ordered else None,
        )


class Trial:
    """A canary's trial as this node sees it: from ``since``, its pushes and the others'.

    Attributes:
        version: the canary.
        since: when this node started watching it.
        status: the last verdict's reason (where the trial stands).
    """

    __slots__ = ("_canary", "_stable", "since", "status", "version")

    def __init__(self, version: str, since: float) -> None:
        self.version = version
        self.since = since
        self.status = "just started"
        self._canary = Side()
        self._stable = Side()

    def record(self, version: str, now: float, ok: bool, latency: float, events: int) -> None:
        """Count a push to an endpoint of ``version``."""
        side = self._canary if version == self.version else self._stable
        side.add(now, ok, latency, events)

    def figures(self, now: float, window: float) -> Figures:
        """Both sides' figures over the window (or since ``since``, when that is shorter),
        and their counts over the whole trial."""
        return Figures(
            seconds=max(0.0, min(window, now - self.since)),
            canary=self._canary.figures(now, window),
            stable=self._stable.figures(now, window),
            canary_trial=self._canary.totals(),
            stable_trial=self._stable.totals(),
        )
