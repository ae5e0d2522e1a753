"""Nodes, partition leases and the partitions' heads."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.store.records import Lease, NodeInfo
from conveyor.store.sql._core import SqlCore
from conveyor.store.sql._rows import as_int


class ClusterSql(SqlCore):
    """Nodes, partition leases and the partitions' heads."""

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
        return [NodeInfo(str(a), str(b), str(c), as_int(d)) for a, b, c, d in rows]

    async def list_leases(self) -> list[Lease]:
        rows = await self._in_reader(
            lambda: self._read(
                "SELECT t.name, l.part, l.owner, l.epoch, l.lease_ms FROM leases l "
                "JOIN topics t ON t.id = l.topic_id ORDER BY t.name, l.part"
            )
        )
        return [
            Lease(str(name), as_int(part), None if owner is None else str(owner), as_int(epoch),
                  as_int(until))
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
            return None if row is None else as_int(row[0])

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
        return {(str(n), as_int(p)): as_int(h) for n, p, h in rows}

    # -- housekeeping -----------------------------------------------------------------------
    # A pass finds what it may remove on the reader connection, then removes it in small
    # transactions of their own (SWEEP_ROWS rows, SWEEP_PARTS partitions at most), which the
    # writer runs between group commits: it never holds publishes up for long. (One
