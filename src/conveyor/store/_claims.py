"""Idempotency keys claimed first in a transaction: the key's uniqueness picks the winner.

A publish with an idempotency key must be stored once however many nodes receive it at once.
A plain read of the key followed by a later write lets two overlapping transactions both
miss the key and both append. Instead, before any operation of a group-committed
transaction runs, the writer inserts every key of the batch with ``INSERT … ON CONFLICT``:

* the row is new (or its dedup window is over): this transaction owns the key, and the
  publish that named it first in the batch appends its event;
* the row exists and is live: another transaction stored the key first (on PostgreSQL the
  insert waits until that transaction ends), and its row is the answer: a duplicate.

Invariants: keys are claimed in one sorted pass before any other lock of the transaction is
taken, so two nodes claiming overlapping keys in any order wait for each other but never
deadlock; an operation that fails gives its claims up (their rows are deleted) so nothing it
claimed outlives it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from conveyor.model import Topic
from conveyor.store.records import NewEvent, PublishBatchResult, Stored

CLAIM_ROWS = 256  # rows per claiming statement (2,048 parameters)
_COLUMNS = 8

ClaimRow = tuple[int, str, str, int | None, None, int | None, bytes | None, int]
"""(topic id, key, event id, partition, offset, deliver_at, digest, created_ms)."""


@dataclass(slots=True)
class PublishOp:
    """A publish queued for group commit, whose keys the writer claims before it runs."""

    run: Callable[[Topic, Sequence[NewEvent], int, int], PublishBatchResult]
    topic: Topic
    events: Sequence[NewEvent]
    now_ms: int
    dedup_ms: int

    def __call__(self) -> PublishBatchResult:
        return self.run(self.topic, self.events, self.now_ms, self.dedup_ms)


def ack_of(ev: NewEvent, now_ms: int) -> Stored:
    """What storing ``ev`` answers, before its offset is known (a delayed event has none)."""
    if ev.delayed:
        return Stored(ev.id, None, None, ev.deliver_at_ms or now_ms)
    return Stored(ev.id, ev.partition, None, ev.deliver_at_ms)


def claim_row(tid: int, ev: NewEvent, now_ms: int) -> ClaimRow:
    """The idempotency row of ``ev``, as claimed (the offset is filled once appended)."""
    assert ev.idempotency_key is not None
    ack = ack_of(ev, now_ms)
    return (tid, ev.idempotency_key, ev.id, ack.partition, None, ack.deliver_at_ms, ev.digest,
            now_ms)  # fmt: skip


def batch_claims(
    ops: Sequence[Callable[[], object]], tid_of: Callable[[str], int | None]
) -> list[tuple[int, list[ClaimRow]]]:
    """The keys a batch names, each with its first event, as statements to run in order.

    Each statement is ``(dedup_ms, rows)``: keys sorted across the whole batch, cut into runs
    of one dedup window (one per node in practice) of at most :data:`CLAIM_ROWS`.
    """
    first: dict[tuple[int, str], tuple[int, ClaimRow]] = {}
    for op in ops:
        if not isinstance(op, PublishOp):
            continue
        tid = tid_of(op.topic.name)
        if tid is None:
            continue  # the operation fails on its own (no such topic)
        for ev in op.events:
            if ev.idempotency_key is not None and (tid, ev.idempotency_key) not in first:
                first[(tid, ev.idempotency_key)] = op.dedup_ms, claim_row(tid, ev, op.now_ms)
    runs: list[tuple[int, list[ClaimRow]]] = []
    for _, (dedup_ms, claim) in sorted(first.items()):
        if not runs or runs[-1][0] != dedup_ms or len(runs[-1][1]) == CLAIM_ROWS:
            runs.append((dedup_ms, []))
        runs[-1][1].append(claim)
    return runs


@cache
def claim_sql(rows: int) -> str:
    """Insert ``rows`` keys; a live key is left alone, an expired one is taken over.

    Parameters: the rows' values, then the dedup window in ms (a key is expired when it was
    stored longer than that before the claim's ``created_ms``). Returns the keys claimed.
    """
    one = "(" + ", ".join(["?"] * _COLUMNS) + ")"
    return (
        "INSERT INTO idempotency (topic_id, key, event_id, part, off, deliver_at_ms, digest, "
        "created_ms) VALUES " + ", ".join([one] * rows) + " ON CONFLICT (topic_id, key) DO "
        "UPDATE SET event_id = excluded.event_id, part = excluded.part, off = excluded.off, "
        "deliver_at_ms = excluded.deliver_at_ms, digest = excluded.digest, "
        "created_ms = excluded.created_ms "
        "WHERE idempotency.created_ms < excluded.created_ms - ? "
        "RETURNING topic_id, key, event_id"
    )


@cache
def offsets_sql(rows: int) -> str:
    """Set the offsets of ``rows`` claimed keys of one topic, once their events are appended.

    Parameters: (key, offset) per row, then the topic id.
    """
    values = ", ".join(["(?, ?)"] * rows)
    return (
        f"UPDATE idempotency SET off = v.column2 FROM (VALUES {values}) AS v "
        "WHERE idempotency.topic_id = ? AND idempotency.key = v.column1"
    )
