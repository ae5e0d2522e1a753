"""Delivery rows by state: listing, marking, redrive requests."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.store.records import DeliveryRow
from conveyor.store.sql._core import SqlCore
from conveyor.store.sql._rows import ROW_COLUMNS, delivery_row


class DeadLetterSql(SqlCore):
    """Delivery rows by state: listing, marking, redrive requests."""

    async def list_rows(
        self,
        subscription: str,
        state: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        error: str | None = None,
        after: tuple[int, int] | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        where, params = _row_filter(subscription, state, since_ms, until_ms, error)
        if after is not None:
            where += " AND (part, off) > (?, ?)"
            params += [after[0], after[1]]
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT {ROW_COLUMNS} FROM deliveries WHERE {where} ORDER BY part, off LIMIT ?",
                (*params, limit),
            )
        )
        return [delivery_row(r) for r in rows]

    async def mark_rows(
        self,
        subscription: str,
        from_state: str,
        to_state: str,
        *,
        refs: Sequence[tuple[int, int]] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        error: str | None = None,
        now_ms: int,
    ) -> int:
        where, params = _row_filter(subscription, from_state, since_ms, until_ms, error)
        changes, values = "state = ?, updated_ms = ?", [to_state, now_ms]
        if to_state == "redrive":
            changes += ", attempts = 0, next_ms = ?"
            values.append(now_ms)
        update = f"UPDATE deliveries SET {changes} WHERE {where}"
        one = update + " AND part = ? AND off = ?"
        wanted = None if refs is None else sorted(set(refs))

        def run() -> int:
            if wanted is None:
                return self._x(update, (*values, *params)).rowcount
            return sum(self._x(one, (*values, *params, *ref)).rowcount for ref in wanted)

        return await self._commit.submit(run)

    async def redrive_requests(
        self, subscription: str, partitions: Sequence[int] | None, limit: int
    ) -> list[DeliveryRow]:
        where, params = "sub = ? AND state = 'redrive'", list[object]([subscription])
        if partitions is not None:
            if not partitions:
                return []
            where += f" AND part IN ({','.join('?' * len(partitions))})"
            params += list(partitions)
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT {ROW_COLUMNS} FROM deliveries WHERE {where} ORDER BY part, off LIMIT ?",
                (*params, limit),
            )
        )
        return [delivery_row(r) for r in rows]


def _row_filter(
    sub: str, state: str, since_ms: int | None, until_ms: int | None, error: str | None
) -> tuple[str, list[object]]:
    """The WHERE clause (and its parameters) picking a subscription's rows in one state."""
    where, params = "sub = ? AND state = ?", list[object]([sub, state])
    if since_ms is not None:
        where += " AND updated_ms >= ?"
        params.append(since_ms)
    if until_ms is not None:
        where += " AND updated_ms < ?"
        params.append(until_ms)
    if error is not None:
        # A substring, whatever its case: LIKE's wildcards in the text are matched literally.
        escaped = error.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where += " AND lower(last_error) LIKE lower(?) ESCAPE '\\'"
        params.append(f"%{escaped}%")
    return where, params
