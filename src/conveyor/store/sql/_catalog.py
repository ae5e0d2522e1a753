"""The catalog: topics, subscriptions, endpoints."""

from __future__ import annotations

import msgspec

from conveyor.errors import Conflict, NotFound
from conveyor.model import Control, Subscription, Topic
from conveyor.store.records import Endpoint
from conveyor.store.sql._core import SqlCore
from conveyor.store.sql._rows import as_int, endpoint_of, subscription_of, topic_of

_json = msgspec.json.encode


class CatalogSql(SqlCore):
    """The catalog: topics, subscriptions, endpoints."""

    async def put_topic(self, topic: Topic) -> bool:
        return await self._commit.submit(lambda: self._put_topic(topic))

    def _put_topic(self, topic: Topic) -> bool:
        row = self._x("SELECT id, spec FROM topics WHERE name = ?", (topic.name,)).fetchone()
        if row is not None:
            old = topic_of(row[1])
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
        tid = as_int(created[0])
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
            topic = topic_of(spec)
            # Topics created through other nodes become known here (ids never change).
            self._topic_ids.setdefault(topic.name, as_int(tid))
            self._topic_names.setdefault(as_int(tid), topic.name)
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
            old = subscription_of(row[1])
            sub = msgspec.structs.replace(sub, control=old.control)
        self._x(
            "INSERT INTO subscriptions (name, topic, spec) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET topic = excluded.topic, spec = excluded.spec",
            (sub.name, sub.topic, _json(sub)),
        )
        if row is not None:
            return False
        counted = self._x("SELECT count(*) FROM partitions WHERE topic_id = ?", (tid,)).fetchone()
        partitions = as_int(counted[0]) if counted else 0
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
                subscription_of(row[0]),
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
        return [subscription_of(r[0]) for r in rows]

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
        return [endpoint_of(r) for r in rows]
