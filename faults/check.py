"""The checker: what the platform acknowledged against what the lambda saw.

Definitions (per run, once the system is quiet):

* **acked** — publishes that got at least one acknowledgement (201, or 200 ``duplicate``);
* **lost** — acked, and never handled (no call carries its idempotency key);
* **duplicates** — events (ids) handled more than once; at-least-once allows them around
  crashes, so they are reported apart from the failures;
* **order violations** — per key, among acked publishes, a call that entered before the
  first call of an event with a lower sequence number (first calls compared; the load makes
  the sequence order the (due time, publish order) the platform owes);
* **early** — calls that entered before the ``deliver_at`` the driver sent (tolerance 0);
* **stored twice** — idempotency keys that acknowledgements or calls name with two event ids;
* **ambiguous** — publishes with a try that got no answer; *stored* when a later ack said
  ``duplicate`` (the unanswered try had stored it) or, never acked, it was handled anyway;
* **refused, stored** — publishes answered with an error on every try, handled anyway;
* **recovery** — per fault, seconds from the restore (restart, SIGCONT, disk freed) to the
  first acknowledgement, and to the first call (of the restarted worker, for a worker).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from faults.driver import Publish
from faults.records import Call, Fault

__all__ = ["Result", "check", "recoveries"]

EXAMPLES = 5  # examples kept per kind of finding


@dataclass
class Result:
    """One run's figures (see the module's docstring for the definitions)."""

    scenario: str
    cycles: int = 0
    seconds: float = 0.0
    published: int = 0
    acked: int = 0
    calls: int = 0
    lost: int = 0
    duplicates: int = 0
    order_violations: int = 0
    early: int = 0
    wrong_due: int = 0
    stored_twice: int = 0
    ambiguous: int = 0
    ambiguous_stored: int = 0
    unresolved: int = 0
    unresolved_stored: int = 0
    refused_stored: int = 0
    phantom_calls: int = 0
    recovery_publish: list[float] = field(default_factory=list)
    recovery_delivery: list[float] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def failures(self) -> dict[str, int]:
        """The counts the platform promises are 0, with their values."""
        return {
            "lost": self.lost,
            "order violations": self.order_violations,
            "early": self.early,
            "stored twice": self.stored_twice,
            "deliver_at changed": self.wrong_due,
            "calls for events never published": self.phantom_calls,
        }

    @property
    def ok(self) -> bool:
        return self.skipped is None and not any(self.failures.values())

    def example(self, kind: str, text: str) -> None:
        found = self.examples.setdefault(kind, [])
        if len(found) < EXAMPLES:
            found.append(text)


def check(result: Result, journal: Sequence[Publish], calls: Sequence[Call]) -> Result:
    """Fill ``result`` with the figures of ``journal`` against ``calls``; return it."""
    by_idem = {p.idem: p for p in journal}
    calls_of: dict[str, list[Call]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c.entered):
        calls_of[call.idem].append(call)
    result.published = len(journal)
    result.acked = sum(p.acked for p in journal)
    result.calls = len(calls)
    _lost_and_stored(result, journal, calls_of)
    _duplicates(result, calls)
    _early(result, by_idem, calls)
    _order(result, journal, calls_of)
    result.phantom_calls = sum(len(c) for idem, c in calls_of.items() if idem not in by_idem)
    return result


def _lost_and_stored(
    result: Result, journal: Iterable[Publish], calls_of: dict[str, list[Call]]
) -> None:
    for p in journal:
        handled = p.idem in calls_of
        if p.acked and not handled:
            result.lost += 1
            due = "" if p.deliver_at_ms is None else f", due {p.deliver_at_ms / 1000:.3f}"
            result.example("lost", f"{p.idem} ({sorted(p.ids)[0]}{due}, acked {p.acked_at:.3f})")
        ids = p.ids | {c.id for c in calls_of.get(p.idem, ())}
        if len(ids) > 1:
            result.stored_twice += 1
            result.example("stored twice", f"{p.idem}: {sorted(ids)}")
        if p.ambiguous:
            result.ambiguous += 1
            result.ambiguous_stored += p.duplicate_ack or (not p.acked and handled)
        if not p.acked:
            result.unresolved += 1
            result.unresolved_stored += handled
            if handled and not p.ambiguous:
                result.refused_stored += 1
                result.example("refused, stored", f"{p.idem}: {p.errors[-1:]}")


def _duplicates(result: Result, calls: Iterable[Call]) -> None:
    per_id: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        per_id[call.id].append(call)
    for event_id, found in per_id.items():
        if len(found) > 1:
            result.duplicates += 1
            times = ", ".join(f"{c.entered:.3f} (pid {c.pid})" for c in found)
            result.example("duplicates", f"{event_id}: {times}")


def _early(result: Result, by_idem: dict[str, Publish], calls: Iterable[Call]) -> None:
    for call in calls:
        p = by_idem.get(call.idem)
        if p is None:
            continue
        if call.deliver_at_ms != p.deliver_at_ms:
            result.wrong_due += 1
            result.example("deliver_at changed", f"{call}: sent {p.deliver_at_ms}")
        if p.deliver_at_ms is not None and call.entered < p.deliver_at_ms / 1000:
            result.early += 1
            ahead = p.deliver_at_ms / 1000 - call.entered
            result.example("early", f"{call.id} ran {ahead * 1000:.1f} ms early")


def _order(result: Result, journal: Iterable[Publish], calls_of: dict[str, list[Call]]) -> None:
    keys: dict[str, list[Publish]] = defaultdict(list)
    for p in journal:
        if p.acked and p.idem in calls_of:
            keys[p.key].append(p)
    for key, publishes in keys.items():
        latest, latest_seq = 0.0, -1
        for p in sorted(publishes, key=lambda p: p.seq):
            first = calls_of[p.idem][0].entered
            if first < latest:
                result.order_violations += 1
                result.example(
                    "order violations",
                    f"{key}: seq {p.seq} ran {latest - first:.3f} s before seq {latest_seq}",
                )
            elif first > latest:
                latest, latest_seq = first, p.seq


def recoveries(
    result: Result, faults: Iterable[Fault], journal: Sequence[Publish], calls: Sequence[Call]
) -> None:
    """Fill the recovery times of ``faults`` (see the module's docstring)."""
    acks = sorted(p.acked_at for p in journal if p.acked_at is not None)
    ran = sorted(calls, key=lambda c: c.entered)
    entered = [c.entered for c in ran]
    for fault in faults:
        if fault.restored is None:
            continue
        if not fault.target.startswith("worker"):
            i = bisect.bisect_left(acks, fault.restored)
            if i < len(acks):
                result.recovery_publish.append(acks[i] - fault.restored)
        after = ran[bisect.bisect_left(entered, fault.restored) :]
        first = next((c for c in after if fault.pid in (None, c.pid)), None)
        if first is not None:
            result.recovery_delivery.append(first.entered - fault.restored)
