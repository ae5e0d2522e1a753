"""Housekeeping: expired idempotency keys, the log and rows past retention."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from conveyor.model import Topic
from conveyor.store.sql._core import SqlCore
from conveyor.store.sql._rows import Row, as_int

SWEEP_ROWS = 1000  # offsets (or rows) at most in one housekeeping transaction
SWEEP_PARTS = 64  # partitions at most in one housekeeping transaction


class HousekeepingSql(SqlCore):
    """Housekeeping: expired idempotency keys, the log and rows past retention."""

    # transaction over ~2,600 partitions held them up for ~0.6 s.)
    async def sweep_keys(self, cutoff_ms: int) -> int:
        return await self._sweep_by_age("idempotency", "1 = 1", (), "created_ms", cutoff_ms)

    async def sweep_topic(self, topic: Topic, now_ms: int) -> int:
        horizon = now_ms - topic.retention_seconds * 1000
        found = await self._in_reader(lambda: self._sweep_spans(topic, horizon))
        removed = 0
        if found is not None:
            tid, spans = found
            for piece in _slices(spans):
                removed += await self._solo(
                    partial(self._delete_spans, tid, topic.name, horizon, piece)
                )
        subs = await self._in_reader(
            lambda: self._read("SELECT name FROM subscriptions WHERE topic = ?", (topic.name,))
        )
        for (sub,) in subs:
            for state in ("succeeded", "dead", "dropped", "filtered"):
                removed += await self._sweep_by_age(
                    "deliveries", "sub = ? AND state = ?", (sub, state), "updated_ms", horizon
                )
        return removed

    async def _sweep_by_age(
        self, table: str, where: str, params: Row, column: str, cutoff: int
    ) -> int:
        """Delete the rows of ``table`` matching ``where`` with ``column`` (indexed) before
        ``cutoff``, oldest first, at most about SWEEP_ROWS per transaction."""
        find = (
            f"SELECT {column} FROM {table} WHERE {where} AND {column} < ? "
            f"ORDER BY {column} LIMIT {SWEEP_ROWS}"
        )
        delete = f"DELETE FROM {table} WHERE {where} AND {column} < ?"
        removed = 0
        while True:
            found = await self._in_reader(lambda: self._read(find, (*params, cutoff)))
            if not found:
                return removed
            last = as_int(found[-1][0])
            upto = cutoff if len(found) < SWEEP_ROWS else min(cutoff, last + 1)
            gone = await self._solo(partial(self._delete_count, delete, (*params, upto)))
            removed += gone
            if upto == cutoff or gone == 0:
                return removed

    def _delete_count(self, sql: str, params: Row) -> int:
        return self._x(sql, params).rowcount

    def _sweep_spans(self, topic: Topic, horizon: int) -> tuple[int, list[_Span]] | None:
        """The topic's id and, per partition, the offsets [first, limit) to sweep: below
        ``limit`` every subscription has finished; ``first`` is past the horizon.

        Reads on the reader connection, ahead of the deletes: cursors only move up, so a
        limit read earlier is still safe; a row that became live since is checked again by
        the delete.
        """
        row = self._read_one("SELECT id FROM topics WHERE name = ?", (topic.name,))
        if row is None:
            return None
        tid = as_int(row[0])
        limits = {
            as_int(p): as_int(h)
            for p, h in self._read(
                "SELECT part, next_off FROM partitions WHERE topic_id = ?", (tid,)
            )
        }
        for bounds in (
            "SELECT c.part, min(c.cursor) FROM cursors c JOIN subscriptions s "
            "ON s.name = c.sub WHERE s.topic = ? GROUP BY c.part",
            "SELECT d.part, min(d.off) FROM deliveries d JOIN subscriptions s "
            "ON s.name = d.sub WHERE s.topic = ? AND d.state IN ('retrying', 'blocked') "
            "GROUP BY d.part",
        ):
            for p, bound in self._read(bounds, (topic.name,)):
                part = as_int(p)
                if part in limits:
                    limits[part] = min(limits[part], as_int(bound))
        spans: list[_Span] = []
        for part, limit in sorted(limits.items()):
            first = self._read_one(
                "SELECT min(off) FROM log WHERE topic_id = ? AND part = ? AND off < ? "
                "AND publish_ms < ?",
                (tid, part, limit, horizon),
            )
            if first is not None and first[0] is not None:
                spans.append((part, as_int(first[0]), limit))
        return tid, spans

    def _delete_spans(self, tid: int, topic: str, horizon: int, spans: list[_Span]) -> int:
        # Invariant kept: an event is removed only when every subscription has finished it
        # and no live delivery row needs it; a dead letter keeps its event as long as its
        # row (it can be inspected and redriven until then), whatever the cursors.
        removed = 0
        for part, first, limit in spans:
            removed += self._x(
                "DELETE FROM log WHERE topic_id = ? AND part = ? AND off >= ? AND off < ? "
                "AND publish_ms < ? AND NOT EXISTS (SELECT 1 FROM deliveries d "
                " JOIN subscriptions s ON s.name = d.sub WHERE s.topic = ? "
                " AND d.part = log.part AND d.off = log.off"
                " AND d.state IN ('dead', 'redrive', 'retrying', 'blocked'))",
                (tid, part, first, limit, horizon, topic),
            ).rowcount
        return removed


_Span = tuple[int, int, int]  # (partition, first offset, limit): the offsets [first, limit)


def _slices(spans: list[_Span]) -> Iterator[list[_Span]]:
    """The spans cut into transactions of at most SWEEP_ROWS offsets and SWEEP_PARTS spans."""
    piece: list[_Span] = []
    size = 0
    for part, start, limit in spans:
        first = start
        while first < limit:
            upto = min(limit, first + SWEEP_ROWS - size)
            piece.append((part, first, upto))
            size += upto - first
            first = upto
            if size >= SWEEP_ROWS or len(piece) >= SWEEP_PARTS:
                yield piece
                piece, size = [], 0
    if piece:
        yield piece
