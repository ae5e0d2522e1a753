"""The runner's parts wired as the Runner wires them, without its loop: for tests of one part.

Every part is the real one; the runner's own callbacks (``on_dirty``, ``wake``) are counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor.clock import FakeClock, to_ms
from conveyor.flow.batching import Batcher
from conveyor.flow.gate import Gate
from conveyor.flow.reading import Reader
from conveyor.flow.settling import Settler
from conveyor.metrics import Metrics
from conveyor.model import Event, Subscription, Topic
from conveyor.store.base import Store

TOPIC = Topic(name="orders", partitions=2)  # log partitions: normal 0-1, high 2-3, low 4-5


def highest(low: float, high: float) -> float:
    return high


PUBLISHED_MS = to_ms(FakeClock().now()) - 1000  # a second before the rigs' clocks start


def event(
    partition: int,
    offset: int,
    *,
    key: str | None = None,
    attributes: dict[str, str] | None = None,
    payload: bytes = b"{}",
    publish_ms: int = PUBLISHED_MS,
    deliver_at_ms: int | None = None,
) -> Event:
    """An event of TOPIC."""
    event_id = f"{partition:016x}{offset:016x}"
    return Event(
        event_id, TOPIC.name, partition, offset, key, attributes, payload, publish_ms, deliver_at_ms
    )


@dataclass
class Parts:
    clock: FakeClock
    reader: Reader
    settler: Settler
    gate: Gate
    batcher: Batcher
    ready: deque[tuple[Event, int]]
    dirty: list[None] = field(default_factory=list)
    wakes: list[None] = field(default_factory=list)

    def append(self, partition: int, *events: Event) -> None:
        self.reader.on_append(partition, list(events))


def parts(
    store: Store,
    sub: Subscription,
    *,
    partitions: dict[int, int] | None = None,
    lease_valid: Callable[[], bool] = lambda: True,
) -> Parts:
    """The parts of ``sub``'s runner over ``store``, opened on empty partitions of TOPIC."""
    clock = FakeClock()
    ready: deque[tuple[Event, int]] = deque()
    dirty: list[None] = []
    wakes: list[None] = []
    reader = Reader(TOPIC, store, wake=lambda: wakes.append(None))
    settler = Settler(
        sub,
        reader=reader,
        ready=ready,
        clock=clock,
        jitter=highest,
        metrics=Metrics(),
        on_dirty=lambda: dirty.append(None),
        wake=lambda: wakes.append(None),
    )
    gate = Gate(
        sub,
        TOPIC,
        clock.now(),
        partitions=partitions,
        ready=ready,
        drop=settler.drop,
        sweep=settler.drop_purged,
        lease_valid=lease_valid,
    )
    batcher = Batcher(sub, reader=reader, gate=gate, settler=settler, ready=ready)
    ends = [0] * TOPIC.log_partitions
    reader.open({}, ends, partitions=partitions, ordered=sub.ordered)
    return Parts(clock, reader, settler, gate, batcher, ready, dirty, wakes)
