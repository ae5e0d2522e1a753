"""The subscriptions' progress: cursors and delivery rows, under lease epochs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import msgspec

from conveyor.errors import LeaseLost
from conveyor.model import Event, Subscription, Topic
from conveyor.store.records import CursorState, DeliveryRow, Progress
from conveyor.store.sql._log import LogSql
from conveyor.store.sql._rows import ROW_COLUMNS, Row, as_int, cursor_state, delivery_row

_msgpack = msgspec.msgpack.encode

_ROW_UPSERT = (
    "INSERT INTO deliveries (sub, part, off, key, state, attempts, next_ms, last_error, history, "
    "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sub, part, off) DO UPDATE SET "
    "key = excluded.key, state = excluded.state, attempts = excluded.attempts, "
    "next_ms = excluded.next_ms, last_error = excluded.last_error, history = excluded.history, "
    "updated_ms = excluded.updated_ms"
)


class ProgressSql(LogSql):
    """The subscriptions' progress: cursors and delivery rows, under lease epochs."""

    async def load_progress(
        self, sub: Subscription
    ) -> tuple[dict[int, CursorState], list[DeliveryRow]]:
        def run() -> tuple[list[Row], list[Row]]:
            cursors = self._read(
                "SELECT part, cursor, acked, start FROM cursors WHERE sub = ?", (sub.name,)
            )
            rows = self._read(
                f"SELECT {ROW_COLUMNS} FROM deliveries WHERE sub = ? "
                "AND state IN ('retrying', 'blocked') ORDER BY part, off",
                (sub.name,),
            )
            return cursors, rows

        cursors, rows = await self._in_reader(run)
        states = {
            as_int(part): cursor_state(cur, acked, start) for part, cur, acked, start in cursors
        }
        return states, [delivery_row(r) for r in rows]

    async def commit_progress(self, progress: Sequence[Progress], now_ms: int) -> list[Event]:
        batch = list(progress)
        return await self._commit.submit(lambda: self._commit_progress(batch))

    def _commit_progress(self, batch: list[Progress]) -> list[Event]:
        for p in batch:
            self._check_epochs(p)  # before any write: a refused progress writes nothing
        appended: list[Event] = []
        for p in batch:
            if p.cursors:
                self._xmany(
                    "UPDATE cursors SET cursor = ?, acked = ? WHERE sub = ? AND part = ?",
                    [
                        (c.cursor, _msgpack(c.acked) if c.acked else None, p.subscription, part)
                        for part, c in p.cursors.items()
                    ],
                )
            if p.deleted:
                self._xmany(
                    "DELETE FROM deliveries WHERE sub = ? AND part = ? AND off = ?",
                    [(p.subscription, part, off) for part, off in p.deleted],
                )
            if p.rows:
                self._xmany(
                    _ROW_UPSERT,
                    [
                        (p.subscription, r.partition, r.offset, r.key, r.state, r.attempts,
                         r.next_ms, r.last_error, _msgpack(r.history), r.updated_ms)
                        for r in p.rows
                    ],
                )  # fmt: skip
            for topic, ev in p.dead_letters:
                # The events get their offsets at the end of the transaction; the list
                # returned is filled then, before COMMIT.
                published = self._publish(topic, [ev], ev.publish_ms, 0)
                self._after_appends.append(partial(appended.extend, published.appended))
        return appended

    def _check_epochs(self, p: Progress) -> None:
        if not p.epochs:
            return
        tid = self._tid(p.topic)
        touched = sorted(p.partitions())
        if not touched:
            return
        # Only the rows of this progress's own partitions are share-locked (until COMMIT), so
        # a takeover waits for this commit, and nodes checking their own partitions never
        # wait on each other.
        marks = ",".join("?" * len(touched))
        current = {
            as_int(part): as_int(epoch)
            for part, epoch in self._x(
                f"SELECT part, epoch FROM leases WHERE topic_id = ? AND part IN ({marks}) "
                "ORDER BY part" + self.lock_for_share,
                (tid, *touched),
            ).fetchall()
        }
        for part in touched:
            if p.epochs.get(part) != current.get(part):
                raise LeaseLost(
                    f"partition {part} of {p.topic!r} is now held under epoch "
                    f"{current.get(part)}, not {p.epochs.get(part)}: progress of "
                    f"{p.subscription!r} refused",
                    subscription=p.subscription,
                )

    async def delivery_rows(
        self, topic: Topic, partition: int, offset: int
    ) -> dict[str, DeliveryRow]:
        columns = ", ".join("d." + c.strip() for c in ROW_COLUMNS.split(","))
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT d.sub, {columns} FROM deliveries d JOIN subscriptions s "
                "ON s.name = d.sub WHERE s.topic = ? AND d.part = ? AND d.off = ?",
                (topic.name, partition, offset),
            )
        )
        return {str(r[0]): delivery_row(r[1:]) for r in rows}

    async def cursors_of(self, topic: Topic, partition: int) -> dict[str, CursorState]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT c.sub, c.cursor, c.acked, c.start FROM cursors c "
                "JOIN subscriptions s ON s.name = c.sub WHERE s.topic = ? AND c.part = ?",
                (topic.name, partition),
            )
        )
        return {str(sub): cursor_state(cur, acked, start) for sub, cur, acked, start in rows}

    async def count_rows(self, subscription: str) -> dict[str, int]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT state, count(*) FROM deliveries WHERE sub = ? GROUP BY state",
                (subscription,),
            )
        )
        return {str(state): as_int(n) for state, n in rows}
