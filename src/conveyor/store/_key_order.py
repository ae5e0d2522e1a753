"""Per-key order between the timer store and the log.

The rule: the events of one key in one log partition (a key within a priority lane) enter the
log in (due time, publish order). An event's *due time* is its ``deliver_at``, or its publish
time when it has none or when that lies in the past: an event cannot fall due before it was
published, so a publish that arrives late (a client retrying, a node paused) is ordered by
when it arrived, not by the past time it names. Publish order is event id order (ids increase
with publish time, strictly within a process).

Invariant, kept by every operation that appends (a publish, a timer firing, a dead letter):
before a keyed event due at ``d`` is appended, every timer of the same topic, partition and
key due at or before ``d`` is fired in the same transaction and appended ahead of it, in
(due, id) order. So no event of a key enters the log while an earlier-due event of that key
waits in the timer store, whoever fires timers and whenever: a node paused past the due times,
a restart before the timers are loaded again, a timer no node holds in memory yet, a timer
appended ``timer_lead`` early. The runner delivers a key's events in log order, so the order
of the log is the order of delivery.

The check costs no statement for keyless events, and one indexed ``MIN(due_ms)`` per
transaction while no timer is due by the latest keyed append (see
``SqlStore._fire_earlier_timers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from operator import attrgetter, itemgetter

from conveyor.model import Event
from conveyor.store.records import NewEvent, Stored

# An append queued in a transaction (as in sql/_core.py): (topic id, event, attributes JSON,
# topic name, its ack to fill, the list its stored Event is added to).
Append = tuple[int, NewEvent, object, str, "Stored | None", list[Event]]
# A timer claimed to be appended: (due_ms, id, topic id, event, attributes JSON, topic name).
Claimed = tuple[int, str, int, NewEvent, object, str]
Lane = tuple[int, int, str]  # (topic id, partition, key)

_event = itemgetter(1)
_key = attrgetter("key")
_publish_ms = attrgetter("publish_ms")
_deliver_at = attrgetter("deliver_at_ms")


def due_ms(event: NewEvent) -> int:
    """An event's due time: its ``deliver_at``, or its publish time when that is later."""
    at = event.deliver_at_ms
    return event.publish_ms if at is None or at < event.publish_ms else at


def keyed_bound(appends: Sequence[Append], start: int) -> int | None:
    """An upper bound of the due times of the keyed appends from ``start`` on, or ``None``
    when there are none: the cheap first look (C-level loops: ~50 ns an event)."""
    events: list[NewEvent] = list(map(_event, islice(appends, start, None)))
    keys: list[str | None] = list(map(_key, events))
    if keys.count(None) == len(keys):
        return None
    published: int = max(map(_publish_ms, events))
    scheduled: int = max(filter(None, map(_deliver_at, events)), default=0)
    return max(published, scheduled)


def keyed_dues(appends: Sequence[Append], start: int) -> dict[tuple[int, int], dict[str, int]]:
    """Per (topic id, partition), the keys appended from ``start`` on and the latest due time
    of each."""
    dues: dict[tuple[int, int], dict[str, int]] = {}
    for i in range(start, len(appends)):
        tid, event = appends[i][0], appends[i][1]
        key = event.key
        if key is None:
            continue
        keys = dues.setdefault((tid, event.partition), {})
        due = due_ms(event)
        if due > keys.get(key, -1):
            keys[key] = due
    return dues


def merge(appends: list[Append], claimed: dict[Lane, list[Claimed]]) -> list[Append]:
    """``appends`` (one operation's, each key's in (due, id) order) with every claimed timer
    placed before the first append of its key that is due after it, or else right after the
    key's last append: each key's appends stay in (due, id) order.

    A claimed timer is reported with its neighbour's list, so an operation's appends to a
    partition stay contiguous (a runner takes a contiguous run straight into its buffer).
    """
    pending = {lane: sorted(timers, reverse=True) for lane, timers in claimed.items()}
    last: dict[Lane, int] = {}
    for i, append in enumerate(appends):
        if append[1].key is not None:
            last[(append[0], append[1].partition, append[1].key)] = i
    out: list[Append] = []
    for i, append in enumerate(appends):
        event = append[1]
        if event.key is None or not pending.get(lane := (append[0], event.partition, event.key)):
            out.append(append)
            continue
        queue = pending[lane]
        mark = (due_ms(event), event.id)
        while queue and queue[-1][:2] < mark:
            out.append(_append(queue.pop(), append))
        out.append(append)
        if last[lane] == i:
            out.extend(_append(queue.pop(), append) for _ in range(len(queue)))
    return out


def _append(timer: Claimed, neighbour: Append) -> Append:
    _, _, tid, event, attrs, topic = timer
    return (tid, event, attrs, topic, None, neighbour[5])
