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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import chain
from typing import Protocol, TypeVar

import msgspec

from conveyor.errors import Conflict, ConveyorError, LeaseLost, NotFound, StoreUnavailable
from conveyor.model import Attempt, Control, Event, Subscription, Topic
from conveyor.store._claims import (
    CLAIM_ROWS,
    PublishOp,
    ack_of,
    batch_claims,
    claim_row,
    claim_sql,
    offsets_sql,
)
from conveyor.store._key_order import Claimed, Lane, keyed_bound, keyed_dues, merge
from conveyor.store._specs import decode_spec
from conveyor.store.base import (
    CursorState,
    DeliveryRow,
    Endpoint,
    GroupCommit,
    LambdaReleases,
    Lease,
    NewEvent,
    NodeInfo,
    OverdueTimers,
    Progress,
    PublishBatchResult,
    Ranges,
    ReleaseChange,
    Store,
    Stored,
    StoredRelease,
    StoredSchema,
    SubjectInfo,
    Verify,
)

T = TypeVar("T")
SWEEP_ROWS = 1000  # offsets (or rows) at most in one housekeeping transaction
SWEEP_PARTS = 64  # partitions at most in one housekeeping transaction

_topic_codec = msgspec.json.Decoder(Topic)
_sub_codec = msgspec.json.Decoder(Subscription)


def _topic(spec: object) -> Topic:
    return decode_spec(spec, _topic_codec, Topic)  # type: ignore[arg-type]


def _subscription(spec: object) -> Subscription:
    return decode_spec(spec, _sub_codec, Subscription)  # type: ignore[arg-type]


_attrs_decoder = msgspec.json.Decoder(dict[str, str])
_history_decoder = msgspec.msgpack.Decoder(list[Attempt])
_ranges_decoder = msgspec.msgpack.Decoder(list[tuple[int, int]])
_json = msgspec.json.encode
_msgpack = msgspec.msgpack.encode

_SCHEMA_COLUMNS = "id, subject, version, type, definition, message, fingerprint, created_ms"
_LOG_COLUMNS = "part, off, id, key, attrs, payload, publish_ms, deliver_at_ms, schema_id"
_ROW_UPSERT = (
    "INSERT INTO deliveries (sub, part, off, key, state, attempts, next_ms, last_error, history, "
    "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sub, part, off) DO UPDATE SET "
    "key = excluded.key, state = excluded.state, attempts = excluded.attempts, "
    "next_ms = excluded.next_ms, last_error = excluded.last_error, history = excluded.history, "
    "updated_ms = excluded.updated_ms"
)
_ROW_COLUMNS = "part, off, key, state, attempts, next_ms, last_error, history, updated_ms"
_NO_TIMERS = 2**63 - 1  # the timer floor of an empty timer store
_RELEASE_COLUMNS = "version, state, started_ms, decided_ms, reason, figures"
_RELEASE_UPSERT = (
    "INSERT INTO releases (lambda, version, state, started_ms, decided_ms, reason, figures) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (lambda, version) DO UPDATE SET "
    "state = excluded.state, started_ms = excluded.started_ms, "
    "decided_ms = excluded.decided_ms, reason = excluded.reason, figures = excluded.figures"
)


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


class Cursor(Protocol):
    """What the store reads from a DB-API cursor."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the statement."""

    def fetchone(self) -> tuple[object, ...] | None:
        """The next row."""

    def fetchall(self) -> list[tuple[object, ...]]:
        """Every remaining row."""


class Connection(Protocol):
    """What the store needs of a DB-API connection (sqlite3 and psycopg both fit)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        """Run one statement."""

    def close(self) -> None:
        """Close the connection."""


class SqlStore(Store):
    """The Store on a SQL database; adapters supply the dialect.

    Args:
        max_batch: operations at most in one group-committed transaction.
    """

    begin_sql = "BEGIN"

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
        self._appends: list[_Append] = []
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

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        return self._rc.execute(self._sql(sql), params).fetchall()

    def _read_one(self, sql: str, params: Sequence[object] = ()) -> tuple[object, ...] | None:
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
        by_partition: dict[tuple[int, int], list[_Append]] = {}
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
            first = int(head[0]) - len(appends)  # type: ignore[call-overload]
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
            self._topic_ids[str(name)] = int(tid)  # type: ignore[call-overload]
            self._topic_names[int(tid)] = str(name)  # type: ignore[call-overload]

    def _head(self, tid: int, part: int) -> int:
        row = self._x(
            "SELECT next_off FROM partitions WHERE topic_id = ? AND part = ?", (tid, part)
        ).fetchone()
        return 0 if row is None else int(row[0])  # type: ignore[call-overload]

    def _tid(self, topic: str) -> int:
        tid = self._topic_ids.get(topic)
        if tid is None:
            # Perhaps created through another node since this one last looked.
            self._reload_topic_ids()
            tid = self._topic_ids.get(topic)
        if tid is None:
            raise NotFound("topic", topic)
        return tid

    # -- catalog ----------------------------------------------------------------------------
    async def put_topic(self, topic: Topic) -> bool:
        return await self._commit.submit(lambda: self._put_topic(topic))

    def _put_topic(self, topic: Topic) -> bool:
        row = self._x("SELECT id, spec FROM topics WHERE name = ?", (topic.name,)).fetchone()
        if row is not None:
            old = _topic(row[1])
            if old.partitions != topic.partitions:
                raise Conflict(
                    f"topic {topic.name!r} has {old.partitions} partitions; the number of "
                    "partitions cannot change (it would move keys between partitions)"
                )
            self._x("UPDATE topics SET spec = ? WHERE id = ?", (_json(topic), row[0]))
            return False
        created = self._x(
            "INSERT INTO topics (name, spec) VALUES (?, ?) RETURNING id", (topic.name, _json(topic))
        ).fetchone()
        assert created is not None
        tid = int(created[0])  # type: ignore[call-overload]
        self._xmany(
            "INSERT INTO partitions (topic_id, part, next_off) VALUES (?, ?, 0)",
            [(tid, p) for p in range(topic.log_partitions)],
        )
        self._xmany(
            "INSERT INTO leases (topic_id, part) VALUES (?, ?)",
            [(tid, p) for p in range(topic.log_partitions)],
        )
        self._topic_ids[topic.name] = tid
        self._topic_names[tid] = topic.name
        return True

    async def list_topics(self) -> list[Topic]:
        rows = await self._in_reader(
            lambda: self._read("SELECT id, spec FROM topics ORDER BY name")
        )
        topics = []
        for tid, spec in rows:
            topic = _topic(spec)
            # Topics created through other nodes become known here (ids never change).
            self._topic_ids.setdefault(topic.name, int(tid))  # type: ignore[call-overload]
            self._topic_names.setdefault(int(tid), topic.name)  # type: ignore[call-overload]
            topics.append(topic)
        return topics

    async def put_subscription(self, sub: Subscription) -> bool:
        return await self._commit.submit(lambda: self._put_subscription(sub))

    def _put_subscription(self, sub: Subscription) -> bool:
        tid = self._tid(sub.topic)
        row = self._x(
            "SELECT topic, spec FROM subscriptions WHERE name = ?", (sub.name,)
        ).fetchone()
        if row is not None and row[0] != sub.topic:
            raise Conflict(
                f"subscription {sub.name!r} reads topic {row[0]!r}; it cannot move to "
                f"{sub.topic!r} (delete it first)"
            )
        if row is not None:
            # Invariant: run-time gates survive a spec's replacement (a worker re-registering
            # its subscriptions must not resume a paused one).
            old = _subscription(row[1])
            sub = msgspec.structs.replace(sub, control=old.control)
        self._x(
            "INSERT INTO subscriptions (name, topic, spec) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET topic = excluded.topic, spec = excluded.spec",
            (sub.name, sub.topic, _json(sub)),
        )
        if row is not None:
            return False
        counted = self._x("SELECT count(*) FROM partitions WHERE topic_id = ?", (tid,)).fetchone()
        partitions = int(counted[0]) if counted else 0  # type: ignore[call-overload]
        self._xmany(
            "INSERT INTO cursors (sub, part, cursor, acked, start) VALUES (?, ?, ?, NULL, ?) "
            "ON CONFLICT (sub, part) DO UPDATE SET cursor = excluded.cursor, acked = NULL, "
            "start = excluded.start",
            [(sub.name, p, self._head(tid, p), self._head(tid, p)) for p in range(partitions)],
        )
        return True

    async def set_control(self, name: str, control: Control) -> Subscription:
        def run() -> Subscription:
            row = self._x("SELECT spec FROM subscriptions WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound("subscription", name)
            sub = msgspec.structs.replace(
                _subscription(row[0]),
                control=control,
            )
            self._x("UPDATE subscriptions SET spec = ? WHERE name = ?", (_json(sub), name))
            return sub

        return await self._commit.submit(run)

    async def delete_subscription(self, name: str) -> bool:
        def run() -> bool:
            existed = self._x("DELETE FROM subscriptions WHERE name = ?", (name,)).rowcount
            self._x("DELETE FROM cursors WHERE sub = ?", (name,))
            self._x("DELETE FROM deliveries WHERE sub = ?", (name,))
            return existed > 0

        return await self._commit.submit(run)

    async def list_subscriptions(self) -> list[Subscription]:
        rows = await self._in_reader(
            lambda: self._read("SELECT spec FROM subscriptions ORDER BY name")
        )
        return [_subscription(r[0]) for r in rows]

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        def run() -> None:
            self._x(
                "INSERT INTO endpoints (lambda, id, url, expires_ms, concurrency, locality, "
                "version, static, health_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (lambda, id) DO UPDATE SET "
                "url = excluded.url, expires_ms = excluded.expires_ms, "
                "concurrency = excluded.concurrency, locality = excluded.locality, "
                "version = excluded.version, static = excluded.static, "
                "health_url = excluded.health_url",
                (
                    endpoint.lambda_name,
                    endpoint.id,
                    endpoint.url,
                    endpoint.expires_ms,
                    endpoint.concurrency,
                    endpoint.locality,
                    endpoint.version,
                    int(endpoint.static),
                    endpoint.health_url,
                ),
            )

        await self._commit.submit(run)

    async def delete_endpoint(self, lambda_name: str, endpoint_id: str) -> bool:
        def run() -> bool:
            deleted = self._x(
                "DELETE FROM endpoints WHERE lambda = ? AND id = ?", (lambda_name, endpoint_id)
            ).rowcount
            return deleted > 0

        return await self._commit.submit(run)

    async def list_endpoints(self) -> list[Endpoint]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT lambda, id, url, expires_ms, concurrency, locality, version, static, "
                "health_url "
                "FROM endpoints"
            )
        )
        return [_endpoint(r) for r in rows]

    # -- releases ---------------------------------------------------------------------------
    async def lambda_releases(self, lambda_name: str) -> LambdaReleases:
        return await self._in_reader(lambda: self._lambda_releases(self._rc, lambda_name))

    def _lambda_releases(self, conn: Connection, lambda_name: str) -> LambdaReleases:
        head = conn.execute(
            self._sql("SELECT revision, policy FROM release_lambdas WHERE lambda = ?"),
            (lambda_name,),
        ).fetchone()
        rows = conn.execute(
            self._sql(
                f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE lambda = ? "
                "ORDER BY started_ms, version"
            ),
            (lambda_name,),
        ).fetchall()
        if head is None:
            return LambdaReleases(lambda_name, releases=tuple(map(_release, rows)))
        revision, policy = head
        return LambdaReleases(
            lambda_name,
            int(revision),  # type: ignore[call-overload]
            None if policy is None else str(policy).encode(),
            tuple(map(_release, rows)),
        )

    async def release_revisions(self) -> dict[str, int]:
        rows = await self._in_reader(
            lambda: self._read("SELECT lambda, revision FROM release_lambdas")
        )
        return {str(name): int(revision) for name, revision in rows}  # type: ignore[call-overload]

    def _hold_lambda(self, lambda_name: str) -> None:
        """Create the lambda's row if needed and lock it to the end of the transaction."""
        self._x(
            "INSERT INTO release_lambdas (lambda, policy, revision) VALUES (?, NULL, 0) "
            "ON CONFLICT (lambda) DO NOTHING",
            (lambda_name,),
        )
        self._x(
            "SELECT revision FROM release_lambdas WHERE lambda = ?" + self.lock_for_update,
            (lambda_name,),
        ).fetchone()

    async def change_releases(self, lambda_name: str, change: ReleaseChange) -> LambdaReleases:
        def run() -> LambdaReleases:
            self._hold_lambda(lambda_name)
            before = self._lambda_releases(self._wc, lambda_name)
            written = change(list(before.releases))  # raises to refuse: nothing written
            if written:
                self._xmany(
                    _RELEASE_UPSERT,
                    [
                        (lambda_name, r.version, r.state, r.started_ms, r.decided_ms, r.reason,
                         None if r.figures is None else r.figures.decode())
                        for r in written
                    ],
                )  # fmt: skip
                self._bump(lambda_name)
            return self._lambda_releases(self._wc, lambda_name)

        # A transaction of its own: its row lock never waits inside a batch of appends.
        return await self._solo(run)

    async def set_release_policy(self, lambda_name: str, policy: bytes | None) -> LambdaReleases:
        def run() -> LambdaReleases:
            self._hold_lambda(lambda_name)
            self._x(
                "UPDATE release_lambdas SET policy = ? WHERE lambda = ?",
                (None if policy is None else policy.decode(), lambda_name),
            )
            self._bump(lambda_name)
            return self._lambda_releases(self._wc, lambda_name)

        return await self._solo(run)

    def _bump(self, lambda_name: str) -> None:
        self._x(
            "UPDATE release_lambdas SET revision = revision + 1 WHERE lambda = ?", (lambda_name,)
        )

    # -- log --------------------------------------------------------------------------------
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
        timer_rows: list[tuple[object, ...]] = []
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
                self._claims[(int(tid), str(key))] = str(event_id)  # type: ignore[call-overload]

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
        if row is None or int(row[5]) < cutoff_ms:  # type: ignore[call-overload]
            return None
        digest = None if row[4] is None else bytes(row[4])  # type: ignore[call-overload]
        return Stored(row[0], row[1], row[2], row[3]), digest  # type: ignore[arg-type]

    async def read_log(self, topic: Topic, partition: int, start: int, limit: int) -> list[Event]:
        tid = self._tid(topic.name)
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT {_LOG_COLUMNS} FROM log WHERE topic_id = ? AND part = ? AND off >= ? "
                "ORDER BY off LIMIT ?",
                (tid, partition, start, limit),
            )
        )
        return [self._event(topic.name, r) for r in rows]

    @staticmethod
    def _event(topic: str, r: tuple[object, ...]) -> Event:
        part, off, eid, key, attrs, payload, publish_ms, deliver_at_ms, schema_id = r
        return Event(
            eid,  # type: ignore[arg-type]
            topic,
            part,  # type: ignore[arg-type]
            off,  # type: ignore[arg-type]
            key,  # type: ignore[arg-type]
            _attrs(attrs),  # type: ignore[arg-type]
            bytes(payload),  # type: ignore[call-overload]
            publish_ms,  # type: ignore[arg-type]
            deliver_at_ms,  # type: ignore[arg-type]
            None if schema_id is None else int(schema_id),  # type: ignore[call-overload]
        )

    async def read_events(self, topic: Topic, refs: Sequence[tuple[int, int]]) -> list[Event]:
        tid = self._tid(topic.name)
        wanted = list(refs)

        def run() -> list[tuple[object, ...]]:
            out: list[tuple[object, ...]] = []
            for part, off in wanted:
                row = self._read_one(
                    f"SELECT {_LOG_COLUMNS} FROM log WHERE topic_id = ? AND part = ? AND off = ?",
                    (tid, part, off),
                )
                if row is not None:
                    out.append(row)
            return out

        return [self._event(topic.name, r) for r in await self._in_reader(run)]

    async def log_ends(self, topic: Topic) -> list[int]:
        tid = self._tid(topic.name)
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT next_off FROM partitions WHERE topic_id = ? ORDER BY part", (tid,)
            )
        )
        return [int(r[0]) for r in rows]  # type: ignore[call-overload]

    async def find_event(self, event_id: str) -> tuple[Event, bool] | None:
        def run() -> tuple[int, tuple[object, ...], bool] | None:
            # Timers first: an event only ever moves from the timers to the log (in one
            # transaction), so one that fires between the two reads is found in the log.
            row = self._read_one(
                "SELECT topic_id, part, -1, id, key, attrs, payload, publish_ms, due_ms, "
                "schema_id FROM timers WHERE id = ?",
                (event_id,),
            )
            if row is not None:
                return int(row[0]), row[1:], True  # type: ignore[call-overload]
            row = self._read_one(
                f"SELECT topic_id, {_LOG_COLUMNS} FROM log WHERE id = ?", (event_id,)
            )
            return None if row is None else (int(row[0]), row[1:], False)  # type: ignore[call-overload]

        found = await self._in_reader(run)
        if found is None:
            return None
        tid, row, scheduled = found
        name = self._topic_names.get(tid)
        if name is None:
            return None
        return self._event(name, row), scheduled

    # -- timers -----------------------------------------------------------------------------
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
            OverdueTimers(name, int(part), int(n), int(oldest))  # type: ignore[call-overload]
            for tid, part, n, oldest in rows
            if (name := self._topic_names.get(int(tid))) is not None  # type: ignore[call-overload]
        ]

    def write_failure(self) -> str | None:
        return self._commit.failure

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
        return [(int(r[0]), str(r[1])) for r in rows]  # type: ignore[call-overload]

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
            f"DELETE FROM timers WHERE {where} "
            "RETURNING id, topic_id, part, due_ms, key, attrs, payload, publish_ms, schema_id",
            params,
        ).fetchall()
        claimed: list[Claimed] = []
        for eid, tid, part, due, key, attrs, payload, publish_ms, schema_id in rows:
            name = self._topic_names.get(tid)  # type: ignore[call-overload]
            if name is None:
                continue
            event = NewEvent(
                str(eid),
                int(part),  # type: ignore[call-overload]
                key,  # type: ignore[arg-type]
                _attrs(attrs),  # type: ignore[arg-type]
                bytes(payload),  # type: ignore[call-overload]
                int(publish_ms),  # type: ignore[call-overload]
                int(due),  # type: ignore[call-overload]
                False,
                schema_id=None if schema_id is None else int(schema_id),  # type: ignore[call-overload]
            )
            claimed.append((int(due), event.id, int(tid), event, attrs, name))  # type: ignore[call-overload]
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
            self._timer_floor = _NO_TIMERS if row is None or row[0] is None else int(row[0])  # type: ignore[call-overload]
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

    # -- progress ---------------------------------------------------------------------------
    async def load_progress(
        self, sub: Subscription
    ) -> tuple[dict[int, CursorState], list[DeliveryRow]]:
        def run() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
            cursors = self._read(
                "SELECT part, cursor, acked, start FROM cursors WHERE sub = ?", (sub.name,)
            )
            rows = self._read(
                f"SELECT {_ROW_COLUMNS} FROM deliveries WHERE sub = ? "
                "AND state IN ('retrying', 'blocked') ORDER BY part, off",
                (sub.name,),
            )
            return cursors, rows

        cursors, rows = await self._in_reader(run)
        states = {
            int(part): _cursor(cur, acked, start)  # type: ignore[call-overload]
            for part, cur, acked, start in cursors
        }
        return states, [_row(r) for r in rows]

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

    lock_for_share = ""  # the dialect's row lock that keeps an epoch until COMMIT

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
            int(part): int(epoch)  # type: ignore[call-overload]
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
        columns = ", ".join("d." + c.strip() for c in _ROW_COLUMNS.split(","))
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT d.sub, {columns} FROM deliveries d JOIN subscriptions s "
                "ON s.name = d.sub WHERE s.topic = ? AND d.part = ? AND d.off = ?",
                (topic.name, partition, offset),
            )
        )
        return {str(r[0]): _row(r[1:]) for r in rows}

    async def cursors_of(self, topic: Topic, partition: int) -> dict[str, CursorState]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT c.sub, c.cursor, c.acked, c.start FROM cursors c "
                "JOIN subscriptions s ON s.name = c.sub WHERE s.topic = ? AND c.part = ?",
                (topic.name, partition),
            )
        )
        return {str(sub): _cursor(cur, acked, start) for sub, cur, acked, start in rows}

    async def count_rows(self, subscription: str) -> dict[str, int]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT state, count(*) FROM deliveries WHERE sub = ? GROUP BY state",
                (subscription,),
            )
        )
        return {str(state): int(n) for state, n in rows}  # type: ignore[call-overload]

    # -- schema registry --------------------------------------------------------------------
    lock_for_update = ""  # the dialect's row lock that serializes writers of a subject

    async def register_schema(
        self, candidate: StoredSchema, default_mode: str, verify: Verify
    ) -> tuple[StoredSchema, bool]:
        return await self._commit.submit(
            lambda: self._register_schema(candidate, default_mode, verify)
        )

    def _register_schema(
        self, candidate: StoredSchema, default_mode: str, verify: Verify
    ) -> tuple[StoredSchema, bool]:
        subject = candidate.subject
        self._x(
            "INSERT INTO subjects (name, compatibility) VALUES (?, NULL) "
            "ON CONFLICT (name) DO NOTHING",
            (subject,),
        )
        row = self._x(
            "SELECT compatibility FROM subjects WHERE name = ?" + self.lock_for_update,
            (subject,),
        ).fetchone()
        mode = str(row[0]) if row is not None and row[0] is not None else default_mode
        versions = [
            _schema(r)
            for r in self._x(
                f"SELECT {_SCHEMA_COLUMNS} FROM schemas WHERE subject = ? ORDER BY version",
                (subject,),
            ).fetchall()
        ]
        for existing in versions:
            if existing.fingerprint == candidate.fingerprint and existing.type == candidate.type:
                return existing, False
        verify(versions, mode)  # raises to refuse: nothing was written but the subject row
        number = versions[-1].version + 1 if versions else 1
        created = self._x(
            "INSERT INTO schemas (subject, version, type, definition, message, fingerprint, "
            "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (subject, number, candidate.type, candidate.definition, candidate.message,
             candidate.fingerprint, candidate.created_ms),
        ).fetchone()  # fmt: skip
        assert created is not None
        return (
            StoredSchema(
                int(created[0]),  # type: ignore[call-overload]
                subject,
                number,
                candidate.type,
                candidate.definition,
                candidate.message,
                candidate.fingerprint,
                candidate.created_ms,
            ),
            True,
        )

    async def schemas_of(self, subject: str) -> list[StoredSchema]:
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT {_SCHEMA_COLUMNS} FROM schemas WHERE subject = ? ORDER BY version",
                (subject,),
            )
        )
        return [_schema(r) for r in rows]

    async def schema_by_id(self, schema_id: int) -> StoredSchema | None:
        row = await self._in_reader(
            lambda: self._read_one(
                f"SELECT {_SCHEMA_COLUMNS} FROM schemas WHERE id = ?", (schema_id,)
            )
        )
        return None if row is None else _schema(row)

    async def list_subjects(self) -> list[SubjectInfo]:
        def run() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
            return (
                self._read("SELECT name, compatibility FROM subjects ORDER BY name"),
                self._read("SELECT subject, version FROM schemas ORDER BY subject, version"),
            )

        subjects, versions = await self._in_reader(run)
        by_subject: dict[str, list[int]] = {}
        for name, version in versions:
            by_subject.setdefault(str(name), []).append(int(version))  # type: ignore[call-overload]
        return [
            SubjectInfo(
                str(name), None if mode is None else str(mode), by_subject.get(str(name), [])
            )
            for name, mode in subjects
        ]

    async def set_compatibility(self, subject: str | None, mode: str | None) -> None:
        def run() -> None:
            if subject is None:
                if mode is None:
                    self._x("DELETE FROM meta WHERE k = 'registry_compatibility'")
                else:
                    self._x(
                        "INSERT INTO meta (k, v) VALUES ('registry_compatibility', ?) "
                        "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                        (mode,),
                    )
                return
            self._x(
                "INSERT INTO subjects (name, compatibility) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET compatibility = excluded.compatibility",
                (subject, mode),
            )

        await self._commit.submit(run)

    async def default_compatibility(self) -> str | None:
        row = await self._in_reader(
            lambda: self._read_one("SELECT v FROM meta WHERE k = 'registry_compatibility'")
        )
        return None if row is None else str(row[0])

    # -- dead letters -----------------------------------------------------------------------
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
                f"SELECT {_ROW_COLUMNS} FROM deliveries WHERE {where} ORDER BY part, off LIMIT ?",
                (*params, limit),
            )
        )
        return [_row(r) for r in rows]

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
                f"SELECT {_ROW_COLUMNS} FROM deliveries WHERE {where} ORDER BY part, off LIMIT ?",
                (*params, limit),
            )
        )
        return [_row(r) for r in rows]

    # -- cluster ----------------------------------------------------------------------------
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
        return result  # type: ignore[return-value]

    async def heartbeat_node(self, node: NodeInfo) -> None:
        def run() -> None:
            self._x(
                "INSERT INTO nodes (id, url, roles, expires_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET url = excluded.url, roles = excluded.roles, "
                "expires_ms = excluded.expires_ms",
                (node.id, node.url, node.roles, node.expires_ms),
            )

        await self._solo(run)

    async def list_nodes(self) -> list[NodeInfo]:
        rows = await self._in_reader(
            lambda: self._read("SELECT id, url, roles, expires_ms FROM nodes ORDER BY id")
        )
        return [NodeInfo(str(a), str(b), str(c), int(d)) for a, b, c, d in rows]  # type: ignore[call-overload]

    async def list_leases(self) -> list[Lease]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT t.name, l.part, l.owner, l.epoch, l.lease_ms FROM leases l "
                "JOIN topics t ON t.id = l.topic_id ORDER BY t.name, l.part"
            )
        )
        return [
            Lease(str(name), int(part), None if owner is None else str(owner), int(epoch),  # type: ignore[call-overload]
                  int(until))  # type: ignore[call-overload]
            for name, part, owner, epoch, until in rows
        ]  # fmt: skip

    async def acquire_lease(
        self, topic: str, partition: int, owner: str, now_ms: int, until_ms: int
    ) -> int | None:
        def run() -> int | None:
            self._lease_lock_timeout()
            row = self._x(
                "UPDATE leases SET owner = ?, epoch = epoch + 1, lease_ms = ? "
                "WHERE topic_id = ? AND part = ? AND (owner IS NULL OR owner = ? OR lease_ms < ?) "
                "RETURNING epoch",
                (owner, until_ms, self._tid(topic), partition, owner, now_ms),
            ).fetchone()
            return None if row is None else int(row[0])  # type: ignore[call-overload]

        return await self._solo(run)

    async def renew_leases(
        self, owner: str, held: Sequence[tuple[str, int, int]], until_ms: int
    ) -> list[tuple[str, int]]:
        wanted = list(held)

        def run() -> list[tuple[str, int]]:
            renewed: list[tuple[str, int]] = []
            for topic, part, epoch in wanted:
                tid = self._topic_ids.get(topic)
                if tid is None:
                    continue
                done = self._x(
                    "UPDATE leases SET lease_ms = ? WHERE topic_id = ? AND part = ? "
                    "AND owner = ? AND epoch = ?",
                    (until_ms, tid, part, owner, epoch),
                ).rowcount
                if done == 1:
                    renewed.append((topic, part))
            return renewed

        return await self._solo(run)

    async def release_lease(self, topic: str, partition: int, owner: str, epoch: int) -> None:
        def run() -> None:
            self._x(
                "UPDATE leases SET owner = NULL, lease_ms = 0 WHERE topic_id = ? AND part = ? "
                "AND owner = ? AND epoch = ?",
                (self._tid(topic), partition, owner, epoch),
            )

        await self._solo(run)

    async def heads(self) -> dict[tuple[str, int], int]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT t.name, p.part, p.next_off FROM partitions p JOIN topics t "
                "ON t.id = p.topic_id"
            )
        )
        return {(str(n), int(p)): int(h) for n, p, h in rows}  # type: ignore[call-overload]

    # -- housekeeping -----------------------------------------------------------------------
    # A pass finds what it may remove on the reader connection, then removes it in small
    # transactions of their own (SWEEP_ROWS rows, SWEEP_PARTS partitions at most), which the
    # writer runs between group commits: it never holds publishes up for long. (One
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
        self, table: str, where: str, params: tuple[object, ...], column: str, cutoff: int
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
            last = int(found[-1][0])  # type: ignore[call-overload]
            upto = cutoff if len(found) < SWEEP_ROWS else min(cutoff, last + 1)
            gone = await self._solo(partial(self._delete_count, delete, (*params, upto)))
            removed += gone
            if upto == cutoff or gone == 0:
                return removed

    def _delete_count(self, sql: str, params: tuple[object, ...]) -> int:
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
        tid = int(row[0])  # type: ignore[call-overload]
        limits = {
            int(p): int(h)  # type: ignore[call-overload]
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
                part = int(p)  # type: ignore[call-overload]
                if part in limits:
                    limits[part] = min(limits[part], int(bound))  # type: ignore[call-overload]
        spans: list[_Span] = []
        for part, limit in sorted(limits.items()):
            first = self._read_one(
                "SELECT min(off) FROM log WHERE topic_id = ? AND part = ? AND off < ? "
                "AND publish_ms < ?",
                (tid, part, limit, horizon),
            )
            if first is not None and first[0] is not None:
                spans.append((part, int(first[0]), limit))  # type: ignore[call-overload]
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


def _schema(r: tuple[object, ...]) -> StoredSchema:
    sid, subject, version, kind, definition, message, fingerprint, created_ms = r
    return StoredSchema(
        int(sid),  # type: ignore[call-overload]
        str(subject),
        int(version),  # type: ignore[call-overload]
        str(kind),
        str(definition),
        None if message is None else str(message),
        str(fingerprint),
        int(created_ms),  # type: ignore[call-overload]
    )


def _cursor(cur: object, acked: object, start: object) -> CursorState:
    ranges: Ranges = list(_ranges_decoder.decode(bytes(acked))) if acked else []  # type: ignore[call-overload]
    return CursorState(int(cur), ranges, int(start))  # type: ignore[call-overload]


_Append = tuple[int, NewEvent, object, str, "Stored | None", list[Event]]


def _endpoint(row: tuple[object, ...]) -> Endpoint:
    lambda_name, endpoint_id, url, expires_ms, concurrency, locality, version, static, health = row
    assert isinstance(expires_ms, int)
    assert isinstance(concurrency, int)
    return Endpoint(
        str(lambda_name),
        str(endpoint_id),
        str(url),
        expires_ms,
        concurrency,
        str(locality),
        str(version),
        bool(static),
        str(health),
    )


def _release(row: tuple[object, ...]) -> StoredRelease:
    version, state, started_ms, decided_ms, reason, figures = row
    return StoredRelease(
        str(version),
        str(state),
        int(started_ms),  # type: ignore[call-overload]
        None if decided_ms is None else int(decided_ms),  # type: ignore[call-overload]
        str(reason),
        None if figures is None else str(figures).encode(),
    )
