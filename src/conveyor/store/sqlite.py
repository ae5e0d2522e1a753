"""The embedded store: SQLite in WAL mode with ``synchronous=FULL`` and group commit.

Threads: one writer thread owns the writing connection and runs every transaction (so
offsets are assigned by a single writer and are gap-free); one reader thread owns a second
connection for queries, which WAL lets run beside the writer. The event loop never touches
SQLite directly.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import msgspec

from conveyor.errors import Conflict, NotFound, StoreUnavailable
from conveyor.model import Attempt, Event, Subscription, Topic
from conveyor.store._sqlite_schema import MIGRATIONS
from conveyor.store.base import (
    CursorState,
    DeliveryRow,
    Endpoint,
    GroupCommit,
    NewEvent,
    Progress,
    PublishBatchResult,
    Ranges,
    Store,
    Stored,
)

T = TypeVar("T")

_topic_codec = msgspec.json.Decoder(Topic)
_sub_codec = msgspec.json.Decoder(Subscription)
_attrs_decoder = msgspec.json.Decoder(dict[str, str])
_history_decoder = msgspec.msgpack.Decoder(list[Attempt])
_ranges_decoder = msgspec.msgpack.Decoder(list[tuple[int, int]])
_json = msgspec.json.encode
_msgpack = msgspec.msgpack.encode

_LOG_COLUMNS = "part, off, id, key, attrs, payload, publish_ms, deliver_at_ms"
_ROW_COLUMNS = "part, off, key, state, attempts, next_ms, last_error, history, updated_ms"


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` URL or a plain path."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    return url


def _attrs(blob: bytes | None) -> dict[str, str] | None:
    return None if blob is None else _attrs_decoder.decode(blob)


def _row(r: tuple[object, ...]) -> DeliveryRow:
    part, off, key, state, attempts, next_ms, last_error, history, updated_ms = r
    return DeliveryRow(
        partition=int(part),  # type: ignore[call-overload]
        offset=int(off),  # type: ignore[call-overload]
        key=key,  # type: ignore[arg-type]
        state=str(state),
        attempts=int(attempts),  # type: ignore[call-overload]
        next_ms=next_ms,  # type: ignore[arg-type]
        last_error=last_error,  # type: ignore[arg-type]
        history=_history_decoder.decode(history) if history else [],  # type: ignore[arg-type]
        updated_ms=int(updated_ms),  # type: ignore[call-overload]
    )


class SqliteStore(Store):
    """The Store on one SQLite file.

    Args:
        path: the database file (created when missing), or a ``sqlite:///`` URL.
        max_batch: operations at most in one group-committed transaction.
    """

    name = "sqlite"

    def __init__(self, path: str | Path, *, max_batch: int = 512) -> None:
        self.path = sqlite_path(str(path))
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-reader")
        self._w: sqlite3.Connection | None = None
        self._r: sqlite3.Connection | None = None
        self._commit = GroupCommit(self._execute_batch, max_batch=max_batch)
        # Writer-thread state. Invariant: _next holds, for every partition touched, the next
        # offset to assign; it runs ahead of the committed `partitions` table only inside an
        # open transaction, and is restored from the journal when that transaction fails.
        self._next: dict[tuple[int, int], int] = {}
        self._journal: dict[tuple[int, int], int] = {}
        self._topic_ids: dict[str, int] = {}
        self._topic_names: dict[int, str] = {}
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------
    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        await self._in_writer(self._open_writer)
        await self._in_reader(self._open_reader)
        self._commit.start()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._commit.aclose()
        loop = asyncio.get_running_loop()
        if self._w is not None:
            await loop.run_in_executor(self._writer, self._w.close)
        if self._r is not None:
            await loop.run_in_executor(self._reader, self._r.close)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is durable against power loss, not only against a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-65536")
        return conn

    def _open_writer(self) -> None:
        conn = self._connect()
        conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        row = conn.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (k, v) VALUES ('schema_version', ?)", (str(number),)
            )
            conn.execute("COMMIT")
        for tid, name in conn.execute("SELECT id, name FROM topics"):
            self._topic_ids[name] = tid
            self._topic_names[tid] = name
        self._w = conn

    def _open_reader(self) -> None:
        conn = self._connect()
        conn.execute("PRAGMA query_only=1")
        self._r = conn

    async def _in_writer(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    async def _in_reader(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, fn)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"read failed: {e}") from e

    @property
    def _wc(self) -> sqlite3.Connection:
        if self._w is None:
            raise StoreUnavailable("the store is not open")
        return self._w

    @property
    def _rc(self) -> sqlite3.Connection:
        if self._r is None:
            raise StoreUnavailable("the store is not open")
        return self._r

    # -- group commit (writer thread) -------------------------------------------------------
    async def _execute_batch(self, ops: list[Callable[[], object]]) -> list[object]:
        return await self._in_writer(lambda: self._run_batch(ops))

    def _run_batch(self, ops: list[Callable[[], object]]) -> list[object]:
        conn = self._wc
        txn_journal: dict[tuple[int, int], int] = {}
        results: list[object] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                self._journal = {}
                conn.execute("SAVEPOINT op")
                try:
                    results.append(op())
                except Exception as e:  # noqa: BLE001 - the op's error goes to its caller
                    conn.execute("ROLLBACK TO op")
                    self._next.update(self._journal)
                    results.append(e)
                else:
                    for k, v in self._journal.items():
                        txn_journal.setdefault(k, v)
                conn.execute("RELEASE op")
            self._flush_heads(txn_journal)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._next.update(txn_journal)
            self._reload_topic_ids()
            raise
        return results

    def _reload_topic_ids(self) -> None:
        self._topic_ids.clear()
        self._topic_names.clear()
        for tid, name in self._wc.execute("SELECT id, name FROM topics"):
            self._topic_ids[name] = tid
            self._topic_names[tid] = name

    def _head(self, tid: int, part: int) -> int:
        key = (tid, part)
        head = self._next.get(key)
        if head is None:
            row = self._wc.execute(
                "SELECT next_off FROM partitions WHERE topic_id = ? AND part = ?", key
            ).fetchone()
            head = int(row[0]) if row else 0
            self._next[key] = head
        return head

    def _alloc(self, tid: int, part: int) -> int:
        off = self._head(tid, part)
        self._journal.setdefault((tid, part), off)
        self._next[(tid, part)] = off + 1
        return off

    def _flush_heads(self, touched: dict[tuple[int, int], int]) -> None:
        if touched:
            self._wc.executemany(
                "UPDATE partitions SET next_off = ? WHERE topic_id = ? AND part = ?",
                [(self._next[k], k[0], k[1]) for k in touched],
            )

    def _tid(self, topic: str) -> int:
        tid = self._topic_ids.get(topic)
        if tid is None:
            raise NotFound("topic", topic)
        return tid

    # -- catalog ----------------------------------------------------------------------------
    async def put_topic(self, topic: Topic) -> bool:
        return await self._commit.submit(lambda: self._put_topic(topic))

    def _put_topic(self, topic: Topic) -> bool:
        conn = self._wc
        row = conn.execute("SELECT id, spec FROM topics WHERE name = ?", (topic.name,)).fetchone()
        if row is not None:
            old = _topic_codec.decode(row[1])
            if old.partitions != topic.partitions:
                raise Conflict(
                    f"topic {topic.name!r} has {old.partitions} partitions; the number of "
                    "partitions cannot change (it would move keys between partitions)"
                )
            conn.execute("UPDATE topics SET spec = ? WHERE id = ?", (_json(topic), row[0]))
            return False
        cur = conn.execute(
            "INSERT INTO topics (name, spec) VALUES (?, ?)", (topic.name, _json(topic))
        )
        tid = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO partitions (topic_id, part, next_off) VALUES (?, ?, 0)",
            [(tid, p) for p in range(topic.partitions)],
        )
        self._topic_ids[topic.name] = tid
        self._topic_names[tid] = topic.name
        return True

    async def list_topics(self) -> list[Topic]:
        rows = await self._in_reader(
            lambda: self._rc.execute("SELECT spec FROM topics ORDER BY name").fetchall()
        )
        return [_topic_codec.decode(r[0]) for r in rows]

    async def put_subscription(self, sub: Subscription) -> bool:
        return await self._commit.submit(lambda: self._put_subscription(sub))

    def _put_subscription(self, sub: Subscription) -> bool:
        conn = self._wc
        tid = self._tid(sub.topic)
        row = conn.execute("SELECT topic FROM subscriptions WHERE name = ?", (sub.name,)).fetchone()
        if row is not None and row[0] != sub.topic:
            raise Conflict(
                f"subscription {sub.name!r} reads topic {row[0]!r}; it cannot move to "
                f"{sub.topic!r} (delete it first)"
            )
        conn.execute(
            "INSERT OR REPLACE INTO subscriptions (name, topic, spec) VALUES (?, ?, ?)",
            (sub.name, sub.topic, _json(sub)),
        )
        if row is not None:
            return False
        (partitions,) = conn.execute(
            "SELECT count(*) FROM partitions WHERE topic_id = ?", (tid,)
        ).fetchone()
        conn.executemany(
            "INSERT OR REPLACE INTO cursors (sub, part, cursor, acked, start) "
            "VALUES (?, ?, ?, NULL, ?)",
            [(sub.name, p, self._head(tid, p), self._head(tid, p)) for p in range(partitions)],
        )
        return True

    async def delete_subscription(self, name: str) -> bool:
        def run() -> bool:
            conn = self._wc
            cur = conn.execute("DELETE FROM subscriptions WHERE name = ?", (name,))
            conn.execute("DELETE FROM cursors WHERE sub = ?", (name,))
            conn.execute("DELETE FROM deliveries WHERE sub = ?", (name,))
            return cur.rowcount > 0

        return await self._commit.submit(run)

    async def list_subscriptions(self) -> list[Subscription]:
        rows = await self._in_reader(
            lambda: self._rc.execute("SELECT spec FROM subscriptions ORDER BY name").fetchall()
        )
        return [_sub_codec.decode(r[0]) for r in rows]

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        def run() -> None:
            self._wc.execute(
                "INSERT OR REPLACE INTO endpoints (lambda, id, url, expires_ms, concurrency) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    endpoint.lambda_name,
                    endpoint.id,
                    endpoint.url,
                    endpoint.expires_ms,
                    endpoint.concurrency,
                ),
            )

        await self._commit.submit(run)

    async def delete_endpoint(self, lambda_name: str, endpoint_id: str) -> bool:
        def run() -> bool:
            cur = self._wc.execute(
                "DELETE FROM endpoints WHERE lambda = ? AND id = ?", (lambda_name, endpoint_id)
            )
            return cur.rowcount > 0

        return await self._commit.submit(run)

    async def list_endpoints(self) -> list[Endpoint]:
        rows = await self._in_reader(
            lambda: self._rc.execute(
                "SELECT lambda, id, url, expires_ms, concurrency FROM endpoints"
            ).fetchall()
        )
        return [Endpoint(*r) for r in rows]

    # -- log --------------------------------------------------------------------------------
    async def publish(
        self, topic: Topic, events: Sequence[NewEvent], now_ms: int, dedup_ms: int
    ) -> PublishBatchResult:
        return await self._commit.submit(lambda: self._publish(topic, events, now_ms, dedup_ms))

    def _publish(
        self, topic: Topic, events: Sequence[NewEvent], now_ms: int, dedup_ms: int
    ) -> PublishBatchResult:
        tid = self._tid(topic.name)
        result = PublishBatchResult([], [], [])
        log_rows: list[tuple[object, ...]] = []
        timer_rows: list[tuple[object, ...]] = []
        idem_rows: list[tuple[object, ...]] = []
        seen: dict[str, tuple[Stored, bytes | None]] = {}
        for index, ev in enumerate(events):
            if ev.idempotency_key is not None:
                prior = seen.get(ev.idempotency_key) or self._idempotent(
                    tid, ev.idempotency_key, now_ms - dedup_ms
                )
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
            if ev.delayed:
                due = ev.deliver_at_ms or now_ms
                timer_rows.append(
                    (ev.id, tid, ev.partition, due, ev.key, attrs, ev.payload, ev.publish_ms)
                )
                result.timers.append((due, ev.id))
                stored = Stored(ev.id, None, None, due)
            else:
                off = self._alloc(tid, ev.partition)
                log_rows.append(
                    (
                        tid,
                        ev.partition,
                        off,
                        ev.id,
                        ev.key,
                        attrs,
                        ev.payload,
                        ev.publish_ms,
                        ev.deliver_at_ms,
                    )
                )
                result.appended.append(
                    Event(
                        ev.id,
                        topic.name,
                        ev.partition,
                        off,
                        ev.key,
                        ev.attributes,
                        ev.payload,
                        ev.publish_ms,
                        ev.deliver_at_ms,
                    )
                )
                stored = Stored(ev.id, ev.partition, off, ev.deliver_at_ms)
            if ev.idempotency_key is not None:
                seen[ev.idempotency_key] = (stored, ev.digest)
                idem_rows.append(
                    (
                        tid,
                        ev.idempotency_key,
                        ev.id,
                        stored.partition,
                        stored.offset,
                        stored.deliver_at_ms,
                        ev.digest,
                        now_ms,
                    )
                )
            result.stored.append(stored)
        self._insert_log(log_rows)
        if timer_rows:
            self._wc.executemany("INSERT INTO timers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", timer_rows)
        if idem_rows:
            self._wc.executemany(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?, ?)", idem_rows
            )
        return result

    def _insert_log(self, rows: list[tuple[object, ...]]) -> None:
        if rows:
            self._wc.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _idempotent(self, tid: int, key: str, cutoff_ms: int) -> tuple[Stored, bytes | None] | None:
        row = self._wc.execute(
            "SELECT event_id, part, off, deliver_at_ms, digest, created_ms FROM idempotency "
            "WHERE topic_id = ? AND key = ?",
            (tid, key),
        ).fetchone()
        if row is None or row[5] < cutoff_ms:
            return None
        return Stored(row[0], row[1], row[2], row[3]), row[4]

    async def read_log(self, topic: Topic, partition: int, start: int, limit: int) -> list[Event]:
        tid = self._tid(topic.name)
        rows = await self._in_reader(
            lambda: self._rc.execute(
                f"SELECT {_LOG_COLUMNS} FROM log WHERE topic_id = ? AND part = ? AND off >= ? "
                "ORDER BY off LIMIT ?",
                (tid, partition, start, limit),
            ).fetchall()
        )
        return [self._event(topic.name, r) for r in rows]

    @staticmethod
    def _event(topic: str, r: tuple[object, ...]) -> Event:
        part, off, eid, key, attrs, payload, publish_ms, deliver_at_ms = r
        return Event(
            eid,  # type: ignore[arg-type]
            topic,
            part,  # type: ignore[arg-type]
            off,  # type: ignore[arg-type]
            key,  # type: ignore[arg-type]
            _attrs(attrs),  # type: ignore[arg-type]
            payload,  # type: ignore[arg-type]
            publish_ms,  # type: ignore[arg-type]
            deliver_at_ms,  # type: ignore[arg-type]
        )

    async def read_events(self, topic: Topic, refs: Sequence[tuple[int, int]]) -> list[Event]:
        tid = self._tid(topic.name)
        wanted = list(refs)

        def run() -> list[tuple[object, ...]]:
            out: list[tuple[object, ...]] = []
            for part, off in wanted:
                row = self._rc.execute(
                    f"SELECT {_LOG_COLUMNS} FROM log WHERE topic_id = ? AND part = ? AND off = ?",
                    (tid, part, off),
                ).fetchone()
                if row is not None:
                    out.append(row)
            return out

        return [self._event(topic.name, r) for r in await self._in_reader(run)]

    async def log_ends(self, topic: Topic) -> list[int]:
        tid = self._tid(topic.name)
        rows = await self._in_reader(
            lambda: self._rc.execute(
                "SELECT next_off FROM partitions WHERE topic_id = ? ORDER BY part", (tid,)
            ).fetchall()
        )
        return [int(r[0]) for r in rows]

    async def find_event(self, event_id: str) -> tuple[Event, bool] | None:
        def run() -> tuple[int, tuple[object, ...], bool] | None:
            row = self._rc.execute(
                f"SELECT topic_id, {_LOG_COLUMNS} FROM log WHERE id = ?", (event_id,)
            ).fetchone()
            if row is not None:
                return row[0], row[1:], False
            row = self._rc.execute(
                "SELECT topic_id, part, -1, id, key, attrs, payload, publish_ms, due_ms "
                "FROM timers WHERE id = ?",
                (event_id,),
            ).fetchone()
            return None if row is None else (row[0], row[1:], True)

        found = await self._in_reader(run)
        if found is None:
            return None
        tid, row, scheduled = found
        name = self._topic_names.get(tid)
        if name is None:
            return None
        return self._event(name, row), scheduled

    # -- timers -----------------------------------------------------------------------------
    async def due_timers(self, until_ms: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._in_reader(
            lambda: self._rc.execute(
                "SELECT due_ms, id FROM timers WHERE due_ms < ? ORDER BY due_ms LIMIT ?",
                (until_ms, limit),
            ).fetchall()
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    async def fire_timers(self, ids: Sequence[str]) -> list[Event]:
        wanted = list(ids)
        return await self._commit.submit(lambda: self._fire_timers(wanted))

    def _fire_timers(self, ids: list[str]) -> list[Event]:
        conn = self._wc
        appended: list[Event] = []
        rows: list[tuple[object, ...]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found = conn.execute(
                "SELECT id, topic_id, part, due_ms, key, attrs, payload, publish_ms "
                f"FROM timers WHERE id IN ({marks}) ORDER BY due_ms, id",
                chunk,
            ).fetchall()
            for eid, tid, part, due, key, attrs, payload, publish_ms in found:
                name = self._topic_names.get(tid)
                if name is None:
                    continue
                off = self._alloc(tid, part)
                rows.append((tid, part, off, eid, key, attrs, payload, publish_ms, due))
                appended.append(
                    Event(eid, name, part, off, key, _attrs(attrs), payload, publish_ms, due)
                )
            conn.execute(f"DELETE FROM timers WHERE id IN ({marks})", chunk)
        self._insert_log(rows)
        return appended

    # -- progress ---------------------------------------------------------------------------
    async def load_progress(
        self, sub: Subscription
    ) -> tuple[dict[int, CursorState], list[DeliveryRow]]:
        def run() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
            cursors = self._rc.execute(
                "SELECT part, cursor, acked, start FROM cursors WHERE sub = ?", (sub.name,)
            ).fetchall()
            rows = self._rc.execute(
                f"SELECT {_ROW_COLUMNS} FROM deliveries WHERE sub = ? "
                "AND state IN ('retrying', 'blocked') ORDER BY part, off",
                (sub.name,),
            ).fetchall()
            return cursors, rows

        cursors, rows = await self._in_reader(run)
        states = {
            int(part): CursorState(  # type: ignore[call-overload]
                int(cur),  # type: ignore[call-overload]
                list(_ranges_decoder.decode(acked)) if acked else [],  # type: ignore[arg-type]
                int(start),  # type: ignore[call-overload]
            )
            for part, cur, acked, start in cursors
        }
        return states, [_row(r) for r in rows]

    async def commit_progress(self, progress: Sequence[Progress], now_ms: int) -> list[Event]:
        batch = list(progress)
        return await self._commit.submit(lambda: self._commit_progress(batch))

    def _commit_progress(self, batch: list[Progress]) -> list[Event]:
        conn = self._wc
        appended: list[Event] = []
        for p in batch:
            if p.cursors:
                conn.executemany(
                    "UPDATE cursors SET cursor = ?, acked = ? WHERE sub = ? AND part = ?",
                    [
                        (c.cursor, _msgpack(c.acked) if c.acked else None, p.subscription, part)
                        for part, c in p.cursors.items()
                    ],
                )
            if p.deleted:
                conn.executemany(
                    "DELETE FROM deliveries WHERE sub = ? AND part = ? AND off = ?",
                    [(p.subscription, part, off) for part, off in p.deleted],
                )
            if p.rows:
                conn.executemany(
                    "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            p.subscription,
                            r.partition,
                            r.offset,
                            r.key,
                            r.state,
                            r.attempts,
                            r.next_ms,
                            r.last_error,
                            _msgpack(r.history),
                            r.updated_ms,
                        )
                        for r in p.rows
                    ],
                )
            for topic, ev in p.dead_letters:
                appended.extend(self._publish(topic, [ev], ev.publish_ms, 0).appended)
        return appended

    async def delivery_rows(
        self, topic: Topic, partition: int, offset: int
    ) -> dict[str, DeliveryRow]:
        def run() -> list[tuple[object, ...]]:
            return self._rc.execute(
                f"SELECT d.sub, {', '.join('d.' + c.strip() for c in _ROW_COLUMNS.split(','))} "
                "FROM deliveries d JOIN subscriptions s ON s.name = d.sub "
                "WHERE s.topic = ? AND d.part = ? AND d.off = ?",
                (topic.name, partition, offset),
            ).fetchall()

        return {str(r[0]): _row(r[1:]) for r in await self._in_reader(run)}

    async def cursors_of(self, topic: Topic, partition: int) -> dict[str, CursorState]:
        def run() -> list[tuple[object, ...]]:
            return self._rc.execute(
                "SELECT c.sub, c.cursor, c.acked, c.start FROM cursors c "
                "JOIN subscriptions s ON s.name = c.sub WHERE s.topic = ? AND c.part = ?",
                (topic.name, partition),
            ).fetchall()

        out: dict[str, CursorState] = {}
        for sub, cur, acked, start in await self._in_reader(run):
            ranges: Ranges = list(_ranges_decoder.decode(acked)) if acked else []  # type: ignore[arg-type]
            out[str(sub)] = CursorState(int(cur), ranges, int(start))  # type: ignore[call-overload]
        return out

    async def count_rows(self, subscription: str) -> dict[str, int]:
        rows = await self._in_reader(
            lambda: self._rc.execute(
                "SELECT state, count(*) FROM deliveries WHERE sub = ? GROUP BY state",
                (subscription,),
            ).fetchall()
        )
        return {str(state): int(n) for state, n in rows}

    # -- housekeeping -----------------------------------------------------------------------
    async def sweep(self, now_ms: int, dedup_ms: int) -> int:
        return await self._commit.submit(lambda: self._sweep(now_ms, dedup_ms))

    def _sweep(self, now_ms: int, dedup_ms: int) -> int:
        conn = self._wc
        removed = conn.execute(
            "DELETE FROM idempotency WHERE created_ms < ?", (now_ms - dedup_ms,)
        ).rowcount
        for tid, spec in conn.execute("SELECT id, spec FROM topics").fetchall():
            topic = _topic_codec.decode(spec)
            horizon = now_ms - topic.retention_seconds * 1000
            for part in range(topic.partitions):
                # Invariant kept: an event is removed only when every subscription has
                # finished it and no live delivery row still needs it.
                (bound,) = conn.execute(
                    "SELECT min(b) FROM ("
                    " SELECT c.cursor AS b FROM cursors c JOIN subscriptions s ON s.name = c.sub"
                    "  WHERE s.topic = ? AND c.part = ?"
                    " UNION ALL SELECT d.off FROM deliveries d JOIN subscriptions s"
                    "  ON s.name = d.sub WHERE s.topic = ? AND d.part = ?"
                    "  AND d.state IN ('retrying', 'blocked'))",
                    (topic.name, part, topic.name, part),
                ).fetchone()
                limit = self._head(tid, part) if bound is None else int(bound)
                removed += conn.execute(
                    "DELETE FROM log WHERE topic_id = ? AND part = ? AND off < ? "
                    "AND publish_ms < ?",
                    (tid, part, limit, horizon),
                ).rowcount
            removed += conn.execute(
                "DELETE FROM deliveries WHERE state IN ('succeeded', 'dead') AND updated_ms < ? "
                "AND sub IN (SELECT name FROM subscriptions WHERE topic = ?)",
                (horizon, topic.name),
            ).rowcount
        return int(removed)
