"""Delayed events survive ``kill -9`` of ``conveyor serve``: all delivered, none early.

A real ``conveyor worker`` (``timer_lambdas.py``) records, for every handler call, the event's
id, its sequence number, the ``deliver_at`` it was pushed with and the wall time of entry. The
test publishes 100,000 events with delays of 3 to 13 s, kills the node with SIGKILL once 30 %
of them were handled (pushes are in flight, 70 % of the timers still wait), restarts it on the
same store, and checks every call against the acknowledgements.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import Platform, wait_for
from conveyor import Client
from pg import count_rows, is_postgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOPIC = "delayed"
SUBSCRIPTION = "timers.record"
EVENTS = 100_000  # on both stores: about 17 s each
BATCH = 10_000  # the batch API's limit (api.schemas.MAX_BATCH_EVENTS)
# 10 s of spread is 10,000 events/s falling due, well under the drain rate, and lets the kill
# come 3 s after the first timer fired, so that 2 s of calls lie before the duplicate window.
MIN_DELAY, MAX_DELAY = 3.0, 13.0
KILL_AFTER = 0.3  # share of the events handled when the node is killed
DRAIN_TIMEOUT = 90.0  # seconds after the restart for every event to be handled
SETTLE = 1.0  # seconds to keep reading once all were handled, for late duplicates
EARLY_TOLERANCE = 0.001  # deliver_at is whole milliseconds; time.time() has finer resolution
# A duplicate is an event the killed node pushed but whose success it had not committed: at
# most max_concurrency (512, the subscription's default) pushed and unanswered, plus answers
# whose progress was not committed yet (commits run every 5 ms; the oldest such call measured
# 0.19 s before the kill at this rate, 0.74 s at twice the rate with the drain saturated). So
# its first call entered within DUPLICATE_WINDOW of the kill, and there are at most as many
# duplicates as events fall due in that window.
DUPLICATE_WINDOW = 1.0
MAX_DUPLICATES = int(EVENTS * DUPLICATE_WINDOW / (MAX_DELAY - MIN_DELAY))


class Call(NamedTuple):
    id: str
    seq: int
    deliver_at: float
    entered: float


class Records:
    """The worker's record file, read incrementally (only whole lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: list[Call] = []
        self.seqs: set[int] = set()
        self._offset = 0

    def read(self) -> list[Call]:
        if not self.path.exists():
            return self.calls
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].decode().splitlines():
            event_id, seq, deliver_at, entered = line.split()
            self.calls.append(Call(event_id, int(seq), float(deliver_at), float(entered)))
            self.seqs.add(int(seq))
        return self.calls


def publish(client: Client, n: int) -> dict[str, tuple[int, float]]:
    """Publish events ``0..n-1`` with random delays; their acknowledged (seq, deliver_at)."""
    rng = random.Random(n)
    acked: dict[str, tuple[int, float]] = {}
    for start in range(0, n, BATCH):
        seqs = range(start, min(n, start + BATCH))
        events: list[dict[str, object]] = [
            {"payload": {"seq": s}, "delay": rng.uniform(MIN_DELAY, MAX_DELAY)} for s in seqs
        ]
        results = client.publish_batch(TOPIC, events)
        for seq, result in zip(seqs, results, strict=True):
            assert result.state == "scheduled"
            assert result.deliver_at is not None
            acked[result.id] = (seq, result.deliver_at.timestamp())
    return acked


def wait_for_all(records: Records, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(records.seqs) < n:
        if time.monotonic() > deadline:
            missing = sorted(set(range(n)) - records.seqs)
            pytest.fail(
                f"after {timeout} s only {len(records.seqs)} of {n} events were handled "
                f"({len(records.calls)} calls); {len(missing)} missing, e.g. seq {missing[:10]}"
            )
        time.sleep(0.1)
        records.read()


def test_kill_9_with_delayed_events_pending_delivers_all_of_them_and_none_early(
    platform: Platform, record_property: Callable[[str, object], None]
) -> None:
    store = "postgres" if is_postgres(platform.db) else "sqlite"
    n = EVENTS
    records = Records(platform.record)
    # Given a worker that records every call, and n events acknowledged with 3-13 s delays
    worker = platform.worker("timer_lambdas:app")
    began = time.monotonic()
    with Client(platform.url, timeout=60) as client:
        acked = publish(client, n)
    published = time.monotonic()
    assert len(acked) == n
    # When the node is killed with SIGKILL once 30 % were handled
    wait_for(lambda: len(records.read()) >= n * KILL_AFTER, timeout=30, interval=0.02)
    assert platform.proc is not None
    platform.proc.kill9()
    killed = time.time()
    handled_at_kill = len(records.read())
    # Then most events were not due yet, and the store holds every one of them, either still
    # as a timer or fired into the log (the node may append a timer shortly before it is due)
    not_due = sum(1 for _, deliver_at in acked.values() if deliver_at > killed)
    assert not_due > n // 2
    timers_left = count_rows(platform.db, "timers")
    assert timers_left + count_rows(platform.db, "log") == n
    # And once the node is started again on the same store, a timer that is not due yet
    # still reads scheduled
    latest = max(acked, key=lambda event_id: acked[event_id][1])
    restarted = time.time()
    platform.start()
    up = time.time()
    with Client(platform.url) as client:
        view = client.get_event(latest)
    assert time.time() < acked[latest][1], "the latest timer fell due before it was read"
    assert [(d.subscription, d.state) for d in view.deliveries] == [(SUBSCRIPTION, "scheduled")]
    # And every event is handled
    wait_for_all(records, n, DRAIN_TIMEOUT)
    drained = time.time()
    time.sleep(SETTLE)
    calls = records.read()

    by_id: dict[str, list[Call]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c.entered):
        by_id[call.id].append(call)
    duplicates = {event_id: c for event_id, c in by_id.items() if len(c) > 1}
    oldest = max((killed - c[0].entered for c in duplicates.values()), default=0.0)
    before_window = sum(1 for c in calls if c.entered < killed - DUPLICATE_WINDOW)
    # Lateness is reported, not asserted: of the events due once the node was back up
    late = sorted(c[0].entered - c[0].deliver_at for c in by_id.values() if c[0].deliver_at > up)
    summary = (
        f"{store}: {n} events published in {published - began:.1f} s; kill -9 after "
        f"{handled_at_kill} calls, {not_due} not due, {timers_left} timers left; all handled "
        f"{drained - restarted:.1f} s after the restart; {len(calls)} calls, "
        f"{len(duplicates)} duplicated events (the oldest first call {oldest:.3f} s before "
        f"the kill); {before_window} calls before the duplicate window; lateness of the "
        f"{len(late)} events due after the restart: p50 {late[len(late) // 2] * 1000:.0f} ms, "
        f"p99 {late[len(late) * 99 // 100] * 1000:.0f} ms, max {late[-1] * 1000:.0f} ms"
    )
    print("\n" + summary)
    record_property("summary", summary)
    record_property("duplicates", len(duplicates))

    # Then none was lost, and every call is one of the acknowledged events, as acknowledged
    assert not set(by_id) - set(acked), "calls for events that were never published"
    lost = set(acked) - set(by_id)
    assert not lost, f"{len(lost)} events were never handled: {sorted(lost)[:5]}"
    mismatched = [
        (c, acked[c.id])
        for c in calls
        if acked[c.id][0] != c.seq or abs(acked[c.id][1] - c.deliver_at) >= 0.0005
    ]
    assert not mismatched, f"{len(mismatched)} calls differ from their ack: {mismatched[:5]}"
    # And no call entered its handler before the event's deliver_at
    early = [
        (c, c.deliver_at - c.entered) for c in calls if c.entered < c.deliver_at - EARLY_TOLERANCE
    ]
    assert not early, f"{len(early)} calls were early (call, seconds early): {early[:5]}"
    # And the only duplicates are events pushed by the killed node shortly before the kill,
    # handled once more by the restarted one (and calls well before the kill were seen, so a
    # restart that redelivered them would show here)
    assert before_window >= n // 10
    misplaced = [
        c
        for c in duplicates.values()
        if not (killed - DUPLICATE_WINDOW <= c[0].entered < restarted)
        or any(later.entered < restarted for later in c[1:])
        or len(c) > 2
    ]
    assert not misplaced, f"{len(misplaced)} duplicates not explained by the kill: {misplaced[:5]}"
    assert len(duplicates) <= MAX_DUPLICATES
    worker.stop()
