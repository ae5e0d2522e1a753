"""The timers of delayed events: due ones fire into the log, in each key's order."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.model import Event
from conveyor.store._key_order import Claimed, Lane, keyed_bound, keyed_dues, merge
from conveyor.store.records import OverdueTimers
from conveyor.store.sql._core import SqlCore
from conveyor.store.sql._rows import TIMER_COLUMNS, as_int, timer_event

_NO_TIMERS = 2**63 - 1  # the timer floor of an empty timer store


class TimersSql(SqlCore):
    """The timers of delayed events: due ones fire into the log, in each key's order."""

    async def overdue_timers(self, due_before_ms: int) -> list[OverdueTimers]:
        # timers_by_due bounds the scan to the overdue timers: none while timers fire.
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT topic_id, part, count(*), min(due_ms) FROM timers WHERE due_ms < ? "
                "GROUP BY topic_id, part",
                (due_before_ms,),
            )
        )
        return [
            OverdueTimers(name, as_int(part), as_int(n), as_int(oldest))
            for tid, part, n, oldest in rows
            if (name := self._topic_names.get(as_int(tid))) is not None
        ]

    async def due_timers(
        self, until_ms: int, limit: int, from_ms: int = 0
    ) -> list[tuple[int, str]]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT due_ms, id FROM timers WHERE due_ms >= ? AND due_ms < ? "
                "ORDER BY due_ms LIMIT ?",
                (from_ms, until_ms, limit),
            )
        )
        return [(as_int(r[0]), str(r[1])) for r in rows]

    async def fire_timers(self, ids: Sequence[str]) -> list[Event]:
        wanted = list(ids)
        return await self._commit.submit(lambda: self._fire_timers(wanted))

    def _fire_timers(self, ids: list[str]) -> list[Event]:
        # DELETE … RETURNING claims the timers: when several nodes fire the same timer, the
        # first to delete it appends its event and the others find nothing.
        start = len(self._appends)
        appended: list[Event] = []
        claimed: list[Claimed] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            claimed += self._claimed(f"id IN ({marks})", chunk)
        claimed.sort(key=lambda c: c[:2])  # (due, id): due order, then publish order
        for _, _, tid, event, attrs, name in claimed:
            self._appends.append((tid, event, attrs, name, None, appended))
        self._fire_earlier_timers(start)
        return appended

    def _claimed(self, where: str, params: Sequence[object]) -> list[Claimed]:
        """Delete the timers ``where`` says, as events to append (those of topics unknown
        here are dropped)."""
        rows = self._x(
            f"DELETE FROM timers WHERE {where} RETURNING {TIMER_COLUMNS}",
            params,
        ).fetchall()
        claimed: list[Claimed] = []
        for row in rows:
            due, tid, event, attrs = timer_event(row)
            name = self._topic_names.get(tid)
            if name is not None:
                claimed.append((due, event.id, tid, event, attrs, name))
        return claimed

    def _fire_earlier_timers(self, start: int) -> None:
        """Keep each key's log in (due time, publish order) (see store/_key_order.py): before
        the keyed events queued from ``start`` on (one operation's appends), fire the timers
        of their keys due no later, in the same transaction.

        Keyless appends cost no statement; keyed ones one ``MIN(due_ms)`` per transaction
        while no timer is due by them (``_timer_floor``), else one indexed ``DELETE`` per
        partition (timers_by_key)."""
        latest = keyed_bound(self._appends, start)
        if latest is None:
            return
        if self._timer_floor is None:
            row = self._x("SELECT MIN(due_ms) FROM timers").fetchone()
            self._timer_floor = _NO_TIMERS if row is None or row[0] is None else as_int(row[0])
        if latest < self._timer_floor:
            return
        claimed: dict[Lane, list[Claimed]] = {}
        for (tid, part), keys in keyed_dues(self._appends, start).items():
            names = list(keys)
            for i in range(0, len(names), 500):
                chunk = names[i : i + 500]
                marks = ",".join("?" * len(chunk))
                where = f"topic_id = ? AND part = ? AND due_ms <= ? AND key IN ({marks})"
                for timer in self._claimed(where, [tid, part, max(keys.values()), *chunk]):
                    claimed.setdefault((tid, part, str(timer[3].key)), []).append(timer)
        if claimed:
            self._appends[start:] = merge(self._appends[start:], claimed)

    def _lower_timer_floor(self, timers: list[tuple[int, str]]) -> None:
        """Timers were added in this transaction: ``_timer_floor`` covers them."""
        if self._timer_floor is not None and timers:
            self._timer_floor = min(self._timer_floor, *(due for due, _ in timers))
