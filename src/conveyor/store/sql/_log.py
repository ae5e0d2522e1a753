"""The log: publishing (with idempotency keys) and reading events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import chain

import msgspec

from conveyor.errors import Conflict, StoreUnavailable
from conveyor.model import Event, Topic
from conveyor.store._claims import (
    CLAIM_ROWS,
    PublishOp,
    ack_of,
    batch_claims,
    claim_row,
    claim_sql,
    offsets_sql,
)
from conveyor.store.records import NewEvent, PublishBatchResult, Stored
from conveyor.store.sql._rows import LOG_COLUMNS, Row, as_int, as_opt_bytes, as_opt_int, event_of
from conveyor.store.sql._timers import TimersSql

_json = msgspec.json.encode


class LogSql(TimersSql):
    """The log: publishing (with idempotency keys) and reading events."""

    async def publish(
        self, topic: Topic, events: Sequence[NewEvent], now_ms: int, dedup_ms: int
    ) -> PublishBatchResult:
        return await self._commit.submit(PublishOp(self._publish, topic, events, now_ms, dedup_ms))

    def _publish(
        self, topic: Topic, events: Sequence[NewEvent], now_ms: int, dedup_ms: int
    ) -> PublishBatchResult:
        tid = self._tid(topic.name)
        start = len(self._appends)
        result = PublishBatchResult([], [], [])
        timer_rows: list[Row] = []
        idem: list[tuple[NewEvent, Stored]] = []
        seen: dict[tuple[int, str], tuple[Stored, bytes | None]] = {}
        for index, ev in enumerate(events):
            if ev.idempotency_key is not None:
                prior = self._prior(tid, ev, seen, now_ms, dedup_ms)
                if prior is not None:
                    first, digest = prior
                    if digest != ev.digest:
                        raise Conflict(
                            f"events[{index}]: idempotency key {ev.idempotency_key!r} was "
                            "used before with a different event"
                        )
                    result.stored.append(
                        Stored(first.id, first.partition, first.offset, first.deliver_at_ms, True)
                    )
                    continue
            attrs = None if ev.attributes is None else _json(ev.attributes)
            stored = ack_of(ev, now_ms)
            if ev.delayed:
                due = ev.deliver_at_ms or now_ms  # = stored.deliver_at_ms
                timer_rows.append(
                    (ev.id, tid, ev.partition, due, ev.key, attrs, ev.payload, ev.publish_ms,
                     ev.schema_id)
                )  # fmt: skip
                result.timers.append((due, ev.id))
            else:
                # Offsets are assigned at the end of the transaction (_write_appends).
                self._appends.append((tid, ev, attrs, topic.name, stored, result.appended))
            if ev.idempotency_key is not None:
                seen[(tid, ev.idempotency_key)] = (stored, ev.digest)
                if not ev.delayed:
                    idem.append((ev, stored))
            result.stored.append(stored)
        # Nothing below raises a ConveyorError: the operation is now certain to be kept.
        self._txn_keys.update(seen)
        # (Only here: it deletes timers and queues their appends with this operation's, which
        # an error of the operation would drop, losing them.)
        self._fire_earlier_timers(start)
        if timer_rows:
            self._xmany("INSERT INTO timers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", timer_rows)
            self._lower_timer_floor(result.timers)
        if idem:
            # Once the offsets are known, the claimed keys learn where their events went.
            self._after_appends.append(partial(self._remember_offsets, tid, idem))
        return result

    def _remember_offsets(self, tid: int, idem: list[tuple[NewEvent, Stored]]) -> None:
        for i in range(0, len(idem), CLAIM_ROWS):
            chunk = idem[i : i + CLAIM_ROWS]
            pairs = [(ev.idempotency_key, stored.offset) for ev, stored in chunk]
            self._x(offsets_sql(len(chunk)), [*chain.from_iterable(pairs), tid])

    def _claim_keys(self, ops: Sequence[Callable[[], object]]) -> None:
        """Claim every idempotency key of the batch, in one sorted pass (see _claims.py)."""
        self._claims = {}
        for dedup_ms, rows in batch_claims(ops, self._topic_ids.get):
            won = self._x(claim_sql(len(rows)), [*chain.from_iterable(rows), dedup_ms])
            for tid, key, event_id in won.fetchall():
                self._claims[(as_int(tid), str(key))] = str(event_id)

    def _give_up_claims(self, op: Callable[[], object]) -> None:
        """Delete the keys a failed publish claimed: it stored nothing, so they are free."""
        if not isinstance(op, PublishOp):
            return
        tid = self._topic_ids.get(op.topic.name)
        for ev in op.events:
            if tid is None or ev.idempotency_key is None:
                continue
            key = (tid, ev.idempotency_key)
            if self._claims.get(key) == ev.id:
                del self._claims[key]
                self._x(
                    "DELETE FROM idempotency WHERE topic_id = ? AND key = ? AND event_id = ?",
                    (tid, ev.idempotency_key, ev.id),
                )

    def _prior(
        self,
        tid: int,
        ev: NewEvent,
        seen: dict[tuple[int, str], tuple[Stored, bytes | None]],
        now_ms: int,
        dedup_ms: int,
    ) -> tuple[Stored, bytes | None] | None:
        """The first publish of ``ev``'s key, or ``None`` when ``ev`` is it."""
        assert ev.idempotency_key is not None
        key = (tid, ev.idempotency_key)
        prior = seen.get(key) or self._txn_keys.get(key)
        if prior is None and self._claims.get(key) != ev.id:
            prior = self._claimed_elsewhere(tid, ev, now_ms, dedup_ms)
        return prior

    def _claimed_elsewhere(
        self, tid: int, ev: NewEvent, now_ms: int, dedup_ms: int
    ) -> tuple[Stored, bytes | None] | None:
        """The first publish of a key this transaction did not claim first, if it is live.

        ``None`` means that ``ev`` now holds the key: its claimant in this batch failed (or it
        came in after the batch's claims, a dead letter), and the key is claimed here, alone.
        """
        assert ev.idempotency_key is not None
        prior = self._idempotent(tid, ev.idempotency_key, now_ms - dedup_ms)
        if prior is not None:
            return prior
        won = self._x(claim_sql(1), [*claim_row(tid, ev, now_ms), dedup_ms]).fetchall()
        if won:
            self._claims[(tid, ev.idempotency_key)] = ev.id
            return None
        # Not claimed, so a live row committed meanwhile: it is the answer.
        prior = self._idempotent(tid, ev.idempotency_key, now_ms - dedup_ms)
        if prior is None:
            raise StoreUnavailable(f"idempotency key {ev.idempotency_key!r} is being changed")
        return prior

    def _idempotent(self, tid: int, key: str, cutoff_ms: int) -> tuple[Stored, bytes | None] | None:
        row = self._x(
            "SELECT event_id, part, off, deliver_at_ms, digest, created_ms FROM idempotency "
            "WHERE topic_id = ? AND key = ?",
            (tid, key),
        ).fetchone()
        if row is None or as_int(row[5]) < cutoff_ms:
            return None
        event_id, part, off, deliver_at_ms, digest = row[:5]
        stored = Stored(str(event_id), as_opt_int(part), as_opt_int(off), as_opt_int(deliver_at_ms))
        return stored, as_opt_bytes(digest)

    async def read_log(self, topic: Topic, partition: int, start: int, limit: int) -> list[Event]:
        tid = self._tid(topic.name)
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT {LOG_COLUMNS} FROM log WHERE topic_id = ? AND part = ? AND off >= ? "
                "ORDER BY off LIMIT ?",
                (tid, partition, start, limit),
            )
        )
        return [event_of(topic.name, r) for r in rows]

    async def read_events(self, topic: Topic, refs: Sequence[tuple[int, int]]) -> list[Event]:
        tid = self._tid(topic.name)
        wanted = list(refs)

        def run() -> list[Row]:
            out: list[Row] = []
            for part, off in wanted:
                row = self._read_one(
                    f"SELECT {LOG_COLUMNS} FROM log WHERE topic_id = ? AND part = ? AND off = ?",
                    (tid, part, off),
                )
                if row is not None:
                    out.append(row)
            return out

        return [event_of(topic.name, r) for r in await self._in_reader(run)]

    async def log_ends(self, topic: Topic) -> list[int]:
        tid = self._tid(topic.name)
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT next_off FROM partitions WHERE topic_id = ? ORDER BY part", (tid,)
            )
        )
        return [as_int(r[0]) for r in rows]

    async def find_event(self, event_id: str) -> tuple[Event, bool] | None:
        def run() -> tuple[int, Row, bool] | None:
            # Timers first: an event only ever moves from the timers to the log (in one
            # transaction), so one that fires between the two reads is found in the log.
            row = self._read_one(
                "SELECT topic_id, part, -1, id, key, attrs, payload, publish_ms, due_ms, "
                "schema_id FROM timers WHERE id = ?",
                (event_id,),
            )
            if row is not None:
                return as_int(row[0]), row[1:], True
            row = self._read_one(
                f"SELECT topic_id, {LOG_COLUMNS} FROM log WHERE id = ?", (event_id,)
            )
            return None if row is None else (as_int(row[0]), row[1:], False)

        found = await self._in_reader(run)
        if found is None:
            return None
        tid, row, scheduled = found
        name = self._topic_names.get(tid)
        if name is None:
            return None
        return event_of(name, row), scheduled
