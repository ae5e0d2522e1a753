"""Settings of a Conveyor node (``conveyor serve``), passed explicitly: no globals."""

from __future__ import annotations

import msgspec

from conveyor.delivery.health import HealthPolicy
from conveyor.wire.connections import DEFAULT_PORT, ConnectionLimits


class NodeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How one ``conveyor serve`` process runs.

    Attributes:
        store: ``sqlite:///path/to/file.db`` or a plain path to the SQLite file.
        host: the address the HTTP API listens on.
        port: its port (0 picks a free one; the chosen port is printed and logged).
        max_request_bytes: the largest request body accepted.
        dedup_window_seconds: how long idempotency keys are remembered.
        timer_window_seconds: delayed events due within this horizon are held in memory.
        timer_lead_seconds: delayed events are appended to the log this long before they are
            due (and held until due), so that their delivery starts on time.
        flush_interval: seconds between cursor and delivery-state commits.
        ready_file: when set, ``host:port`` is written there once the node serves.
        node_id: this node's id in a cluster (default ``hostname:port``).
        roles: ``frontend`` (API and publishes), ``dispatch`` (timers and delivery), or both.
        cluster: lease partitions among nodes (default: on for PostgreSQL, off for SQLite,
            which is embedded and single-node).
        lease_ttl: seconds a node's heartbeat and partition leases live without renewal;
            a dead node's partitions move within this time.
        sync_interval: seconds between reads of what other nodes changed (catalog,
            endpoints), in a cluster.
        heads_interval: seconds between reads of partition heads appended by other nodes.
        signing_secrets: sign every push with these (Standard Webhooks, ``whsec_…``; two
            while rotating); empty sends pushes unsigned.
        locality: where this node runs, ``cloud/region/zone``: subscriptions that state no
            locality preference prefer endpoints in its zone, then region, then cloud.
        health: outlier detection and active health probes of endpoints.
        connections: idle and header timeouts and the most connections of the HTTP API.
        health_overdue_seconds: ``/v1/health`` fails once a delayed event is overdue by more
            than this (its timer not fired: a store refusing writes, no dispatch node);
            0 never fails for it.
    """

    store: str = "conveyor.db"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_request_bytes: int = 32 * 1024 * 1024
    dedup_window_seconds: float = 24 * 3600.0
    timer_window_seconds: float = 30.0
    timer_lead_seconds: float = 0.1
    flush_interval: float = 0.005
    ready_file: str | None = None
    node_id: str | None = None
    roles: str = "frontend,dispatch"
    cluster: bool | None = None
    lease_ttl: float = 10.0
    sync_interval: float = 1.0
    heads_interval: float = 0.02
    signing_secrets: tuple[str, ...] = ()
    locality: str = ""
    health: HealthPolicy = HealthPolicy()
    connections: ConnectionLimits = ConnectionLimits()
    health_overdue_seconds: float = 30.0

    @property
    def clustered(self) -> bool:
        """Whether partitions are leased among nodes."""
        if self.cluster is not None:
            return self.cluster
        return self.store.startswith(("postgres://", "postgresql://"))
