"""The Store over a SQL database: the logic both adapters share (SQLite, PostgreSQL).

Threads: one writer thread owns the writing connection and runs every transaction (group
commit: many operations, one transaction, one fsync); one reader thread owns a second
connection for queries. The event loop never touches the database directly.

Offsets: operations queue their appends; at the end of the transaction the writer moves each
partition's head with ``UPDATE partitions SET next_off = next_off + n … RETURNING`` — in
sorted partition order, so writers on several nodes never deadlock — and writes the rows in
one bulk statement. The head's row lock is held until COMMIT, so a second writer of the same
partition waits and then continues from the new head: offsets are gap-free, unique, and
become visible in order (no ``bigserial`` skip), whoever writes.

Dialects differ in connecting, migrations, placeholders and bulk inserts only; every
statement here is written with ``?`` placeholders and ``ON CONFLICT`` upserts, which both
databases accept.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar, cast

from conveyor.errors import ConveyorError, NotFound, StoreUnavailable
from conveyor.model import Event
from conveyor.store._group_commit import GroupCommit
from conveyor.store.records import NewEvent, Stored
from conveyor.store.sql._rows import Row, as_int

T = TypeVar("T")

# An append queued by the open transaction, as a plain tuple (this is per event, on the hot
# path): (topic id, event, attributes JSON, topic name, its ack to fill, list to add it to).
Append = tuple[int, NewEvent, object, str, "Stored | None", list[Event]]


class Cursor(Protocol):
    """What the store reads from a DB-API cursor."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the statement."""

    def fetchone(self) -> Row | None:
        """The next row."""

    def fetchall(self) -> list[Row]:
        """Every remaining row."""


class Connection(Protocol):
    """What the store needs of a DB-API connection (sqlite3 and psycopg both fit)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        """Run one statement."""

    def close(self) -> None:
        """Close the connection."""


class SqlCore:
    """What every part of the SQL store shares: the dialect, the connections and their
    threads, the group commit, the appends of the open transaction, the topic ids.

    Args:
        max_batch: operations at most in one group-committed transaction.
    """

    name: str = "store"
    begin_sql = "BEGIN"
    lock_for_share = ""  # the dialect's row lock that keeps an epoch until COMMIT
    lock_for_update = ""  # the dialect's row lock that serializes writers of a row

    def __init__(self, *, max_batch: int = 512) -> None:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"conveyor-{self.name}-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"conveyor-{self.name}-reader")
        self._w: Connection | None = None
        self._r: Connection | None = None
        self._commit = GroupCommit(self._execute_batch, max_batch=max_batch)
        # Writer-thread state of the open transaction: the appends its operations queued,
        # what to write once their offsets are known, and the idempotency keys it stored.
        # Appends as plain tuples (this is per event, on the hot path):
        # (topic id, event, attributes JSON, topic name, its ack to fill, list to add it to).
        self._appends: list[Append] = []
        self._after_appends: list[Callable[[], None]] = []
        self._txn_keys: dict[tuple[int, str], tuple[Stored, bytes | None]] = {}
        self._timer_floor: int | None = None  # the open transaction's MIN(due_ms) of timers
        # The keys this transaction claimed, with the id of the event that may use each.
        self._claims: dict[tuple[int, str], str] = {}
        self._topic_ids: dict[str, int] = {}
        self._topic_names: dict[int, str] = {}
        self._closed = False

    # -- the dialect ------------------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self, *, writer: bool) -> Connection:
        """Open a connection in autocommit mode (transactions are begun explicitly)."""

    @abc.abstractmethod
    def _migrations(self) -> list[str]:
        """The schema, as numbered migrations (statements separated by ``;``)."""

    def _sql(self, sql: str) -> str:
        """The statement in the dialect's placeholder style (``?`` as written)."""
        return sql

    def _x(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self._wc.execute(self._sql(sql), params)

    @abc.abstractmethod
    def _xmany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement for many rows on the writing connection."""

    def _write_log(self, rows: list[tuple[object, ...]]) -> None:
        if rows:
            self._xmany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._rc.execute(self._sql(sql), params).fetchall()

    def _read_one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        return self._rc.execute(self._sql(sql), params).fetchone()

    # -- lifecycle --------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            await self._in_writer(self._open_writer)
            await self._in_reader(lambda: setattr(self, "_r", self._connect(writer=False)))
        except StoreUnavailable:
            raise
        except Exception as e:
            raise StoreUnavailable(f"cannot open the {self.name} store: {e}") from e
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

    def _migration_lock(self) -> None:
        """Serialize migrations of nodes starting together (a no-op where one process writes)."""

    def _migration_unlock(self) -> None:
        """Release :meth:`_migration_lock`."""

    def _broken(self, conn: Connection) -> bool:
        """Whether a connection is dead and must be opened again."""
        del conn
        return False

    def _lease_lock_timeout(self) -> None:
        """Make the lease transaction give up quickly on a row locked by a stalled node."""

    def _open_writer(self) -> None:
        self._w = self._connect(writer=True)
        self._migration_lock()
        try:
            self._migrate()
        finally:
            self._migration_unlock()

    def _migrate(self) -> None:
        self._x("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        row = self._x("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
        version = int(str(row[0])) if row else 0
        migrations = self._migrations()
        for number, sql in enumerate(migrations[version:], start=version + 1):
            self._x(self.begin_sql)
            try:
                for statement in filter(str.strip, sql.split(";")):
                    self._x(statement)
                self._x(
                    "INSERT INTO meta (k, v) VALUES ('schema_version', ?) "
                    "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    (str(number),),
                )
                self._x("COMMIT")
            except BaseException:
                self._x("ROLLBACK")
                raise
        self._reload_topic_ids()

    @property
    def schema_version(self) -> int:
        """The number of migrations this build knows."""
        return len(self._migrations())

    async def _in_writer(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn)

    async def _in_reader(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, fn)
        except (OSError, RuntimeError, ValueError, TypeError, KeyError, NotFound):
            raise
        except Exception as e:
            if self._r is not None and self._broken(self._r):
                await asyncio.get_running_loop().run_in_executor(self._reader, self._reopen_reader)
            raise StoreUnavailable(f"read failed: {e}") from e

    def _reopen_reader(self) -> None:
        with contextlib.suppress(Exception):
            if self._r is not None:
                self._r.close()
        with contextlib.suppress(Exception):
            self._r = self._connect(writer=False)

    @property
    def _wc(self) -> Connection:
        if self._w is None:
            raise StoreUnavailable("the store is not open")
        return self._w

    @property
    def _rc(self) -> Connection:
        if self._r is None:
            raise StoreUnavailable("the store is not open")
        return self._r

    # -- group commit (writer thread) -------------------------------------------------------
    async def _execute_batch(self, ops: list[Callable[[], object]]) -> list[object]:
        return await self._in_writer(lambda: self._run_batch(ops))

    def _run_batch(self, ops: list[Callable[[], object]]) -> list[object]:
        # Invariant: an operation raises a ConveyorError (bad request, conflict) only before it
        # writes anything, so such an error fails that operation alone with no savepoint (its
        # queued appends are dropped). Any other error fails the whole transaction.
        # Idempotency keys are the exception: claimed before any operation runs (see
        # _claims.py), a failing operation's claims are given up again.
        results: list[object] = []
        self._appends, self._after_appends, self._txn_keys = [], [], {}
        self._timer_floor = None  # read again in each transaction: other nodes add timers
        try:
            self._x(self.begin_sql)
            self._claim_keys(ops)
            for op in ops:
                queued, hooks = len(self._appends), len(self._after_appends)
                try:
                    results.append(op())
                except ConveyorError as e:
                    del self._appends[queued:]
                    del self._after_appends[hooks:]
                    self._give_up_claims(op)
                    results.append(e)
            self._write_appends()
            for hook in self._after_appends:
                hook()
            self._x("COMMIT")
        except BaseException:
            self._rollback_quietly()
            self._reopen_if_broken()
            with contextlib.suppress(Exception):
                self._reload_topic_ids()
            raise
        finally:
            self._appends, self._after_appends, self._txn_keys = [], [], {}
            self._claims = {}
        return results

    def _reopen_if_broken(self) -> None:
        # A dead link (the server ended the session, a restart) is replaced at once, so the
        # next transaction works again; this one's callers were told it failed.
        if self._w is not None and self._broken(self._w):
            with contextlib.suppress(Exception):
                self._w.close()
            with contextlib.suppress(Exception):
                self._w = self._connect(writer=True)

    def _write_appends(self) -> None:
        by_partition: dict[tuple[int, int], list[Append]] = {}
        for append in self._appends:
            by_partition.setdefault((append[0], append[1].partition), []).append(append)
        rows: list[tuple[object, ...]] = []
        for (tid, part), appends in sorted(by_partition.items()):
            head = self._x(
                "UPDATE partitions SET next_off = next_off + ? WHERE topic_id = ? AND part = ? "
                "RETURNING next_off",
                (len(appends), tid, part),
            ).fetchone()
            if head is None:
                raise StoreUnavailable(f"partition {part} of topic #{tid} does not exist")
            first = as_int(head[0]) - len(appends)
            for offset, (_, ev, attrs, topic, stored, appended) in enumerate(appends, first):
                rows.append((tid, part, offset, ev.id, ev.key, attrs, ev.payload, ev.publish_ms,
                             ev.deliver_at_ms, ev.schema_id))  # fmt: skip
                if stored is not None:
                    stored.offset = offset
                appended.append(
                    Event(ev.id, topic, part, offset, ev.key, ev.attributes, ev.payload,
                          ev.publish_ms, ev.deliver_at_ms, ev.schema_id)
                )  # fmt: skip
        self._write_log(rows)

    def _rollback_quietly(self) -> None:
        # No transaction may be open any more, or the link may be gone: nothing to undo then.
        with contextlib.suppress(Exception):
            self._x("ROLLBACK")

    def _reload_topic_ids(self) -> None:
        self._topic_ids.clear()
        self._topic_names.clear()
        for tid, name in self._x("SELECT id, name FROM topics").fetchall():
            self._topic_ids[str(name)] = as_int(tid)
            self._topic_names[as_int(tid)] = str(name)

    def _head(self, tid: int, part: int) -> int:
        row = self._x(
            "SELECT next_off FROM partitions WHERE topic_id = ? AND part = ?", (tid, part)
        ).fetchone()
        return 0 if row is None else as_int(row[0])

    def _tid(self, topic: str) -> int:
        tid = self._topic_ids.get(topic)
        if tid is None:
            # Perhaps created through another node since this one last looked.
            self._reload_topic_ids()
            tid = self._topic_ids.get(topic)
        if tid is None:
            raise NotFound("topic", topic)
        return tid

    def write_failure(self) -> str | None:
        return self._commit.failure

    async def _solo(self, op: Callable[[], T]) -> T:
        """Run ``op`` in a transaction of its own (lease changes never share one with
        appends, whose locks they could otherwise cross)."""
        try:
            (result,) = await self._in_writer(lambda: self._run_batch([op]))
        except ConveyorError:
            raise
        except Exception as e:
            raise StoreUnavailable(f"{self.name} store: {e}") from e
        if isinstance(result, BaseException):
            raise result
        return cast("T", result)  # the result of ``op``: _run_batch keeps each op's own

    # -- hooks of the log's idempotency keys (see _log.py) ----------------------------------
    def _claim_keys(self, ops: Sequence[Callable[[], object]]) -> None:
        """Claim the batch's idempotency keys before its operations run."""

    def _give_up_claims(self, op: Callable[[], object]) -> None:
        """Free the keys a failed operation claimed."""
