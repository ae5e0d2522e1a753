"""Garbage-collector settings for the long-running processes (``conveyor serve`` and
``conveyor worker``).

Measured (docs/performance.md): with CPython's default thresholds (700, 10, 10), the young
generation is collected every 700 net allocations of container objects; at tens of thousands
of events per second that is hundreds of collections a second, each also walking whatever
survived, and it cost ~15 of the ~40 µs of CPU an event took in ``conveyor serve``. The hot
path allocates many short-lived objects and very few cycles (per-event structs are
``gc=False``), so collecting the young generation far less often loses little memory, and the
heap built at start (imports, the app) is moved out of the collector's sight by
``gc.freeze()``: it is never garbage, so walking it again and again is pure cost.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)
MIDDLE_THRESHOLD = 50
OLD_THRESHOLD = 1_000


def tune_for_throughput() -> None:
    """Freeze what start-up allocated and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
