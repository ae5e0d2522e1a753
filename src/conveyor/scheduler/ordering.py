"""Per-key FIFO for ordered subscriptions, without head-of-line blocking across keys.

Each key with work has a lane. Invariants:

* at most one event of a key is in flight (the lane's head);
* a key's events are delivered in log order;
* while a key's head is failing, the lane is *parked*: its followers get delivery rows
  (``blocked``) so the partition's cursor can move on and other keys keep flowing; they are
  released one at a time, in order, once the head is finished (succeeded or dead).

Keyless events have no lane and flow freely.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from conveyor.model import Event


class Admit(enum.Enum):
    """What to do with an event read from the log."""

    GO = "go"  # deliver it now; it heads its lane
    WAIT = "wait"  # its lane is busy; the lane holds it in memory
    PARK = "park"  # its lane is parked; give it a `blocked` row and finish its offset


@dataclass(slots=True)
class _Lane:
    waiting: deque[Event] = field(default_factory=deque)
    parked: deque[int] = field(default_factory=deque)  # offsets with `blocked` rows, in order
    failing: bool = False  # the head is retrying or rows are pending release


@dataclass(slots=True)
class Release:
    """What follows a finished head: an event in memory, or an offset to load from the log."""

    event: Event | None = None
    offset: int | None = None


class KeyLanes:
    """The lanes of one ordered subscription in one partition."""

    __slots__ = ("_lanes",)

    def __init__(self) -> None:
        self._lanes: dict[str, _Lane] = {}

    def __len__(self) -> int:
        return len(self._lanes)

    def admit(self, event: Event) -> Admit:
        """Decide an event read from the log, in log order."""
        key = event.key
        if key is None:
            return Admit.GO
        lane = self._lanes.get(key)
        if lane is None:
            self._lanes[key] = _Lane()
            return Admit.GO
        if lane.failing:
            lane.parked.append(event.offset)
            return Admit.PARK
        lane.waiting.append(event)
        return Admit.WAIT

    def restore(self, key: str, offsets: list[int], head_retrying: bool) -> int | None:
        """Rebuild a parked lane from delivery rows after a restart.

        Args:
            key: the lane's key.
            offsets: offsets of the key's retrying/blocked rows, ascending.
            head_retrying: whether the first of them waits for a retry.

        Returns:
            The offset to load and deliver now, when the head is not retrying.
        """
        lane = self._lanes.setdefault(key, _Lane())
        lane.failing = True
        rest = offsets[1:] if head_retrying else offsets
        lane.parked.extend(rest)
        if head_retrying:
            return None
        return lane.parked.popleft() if lane.parked else None

    def failed(self, key: str | None) -> list[Event]:
        """The head of ``key`` will be retried: park the lane.

        Returns:
            The followers held in memory, now parked: each needs a `blocked` row.
        """
        if key is None:
            return []
        lane = self._lanes.setdefault(key, _Lane())
        lane.failing = True
        moved = list(lane.waiting)
        lane.waiting.clear()
        lane.parked.extend(e.offset for e in moved)
        return moved

    def finished(self, key: str | None) -> Release | None:
        """The head of ``key`` is finished: return what goes next, if anything."""
        if key is None:
            return None
        lane = self._lanes.get(key)
        if lane is None:
            return None
        if lane.parked:
            return Release(offset=lane.parked.popleft())
        if lane.waiting:
            return Release(event=lane.waiting.popleft())
        del self._lanes[key]
        return None

    def holds(self, key: str | None) -> bool:
        """Whether ``key`` has a lane: its head is in flight or failing."""
        return key is not None and key in self._lanes

    def is_parked(self, key: str) -> bool:
        """Whether the key's lane is parked."""
        lane = self._lanes.get(key)
        return lane is not None and lane.failing
