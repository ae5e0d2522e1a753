"""The store's ports, one per consumer: each layer depends on the few methods it uses.

``Store`` (base.py) is their union, for wiring: the node opens one store and hands each part
its port. A consumer is typed against the narrowest port (or a union of two or three,
declared where it is used), so a second engine can be written and checked port by port
(tests/store/contract/ holds one contract suite per port).

============== ======================================== ===============================
port           methods                                  consumers
============== ======================================== ===============================
PublishPort    publish                                  frontend (publish service)
LogReadPort    read_log, read_events, log_ends,         flow (runner, status, dead
               find_event, heads                        letters, dispatcher)
ProgressPort   load_progress, commit_progress,          flow
               delivery_rows, cursors_of, count_rows
TimersPort     due_timers, fire_timers, overdue_timers  scheduler, health, status
CatalogPort    topics, subscriptions, endpoints         catalog, delivery (endpoints)
RegistryPort   subjects, schemas, compatibility         frontend (registry)
ReleasesPort   lambda releases and policies             delivery (releases)
LeasesPort     nodes, partition leases                  cluster
DeadLetterPort list_rows, mark_rows, redrive_requests   flow (dead letters, dispatcher)
HousekeepingPort sweep, sweep_keys, sweep_topic         node
HealthPort     write_failure                            node health
============== ======================================== ===============================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.model import Control, Event, Subscription, Topic
from conveyor.store.records import (
    CursorState,
    DeliveryRow,
    Endpoint,
    LambdaReleases,
    Lease,
    NewEvent,
    NodeInfo,
    OverdueTimers,
    Progress,
    PublishBatchResult,
    ReleaseChange,
    StoredSchema,
    SubjectInfo,
    Verify,
)


class PublishPort(Protocol):
    """Appending events to the log (the frontend)."""

    async def publish(
        self, topic: Topic, events: Sequence[NewEvent], now_ms: int, dedup_ms: int
    ) -> PublishBatchResult:
        """Store events atomically: immediate ones in the log, delayed ones as timers.

        An event whose idempotency key was seen within ``dedup_ms`` is not stored again;
        its first result is returned (or a conflict when the request differs).
        Returns only once the transaction is durable.
        """


class LogReadPort(Protocol):
    """Reading the log: events by offset or id, the partitions' ends and heads."""

    async def read_log(self, topic: Topic, partition: int, start: int, limit: int) -> list[Event]:
        """Events of a partition from offset ``start``, in order, at most ``limit``."""

    async def read_events(self, topic: Topic, refs: Sequence[tuple[int, int]]) -> list[Event]:
        """The events at (partition, offset) ``refs`` that still exist, in no set order."""

    async def log_ends(self, topic: Topic) -> list[int]:
        """The next offset of every partition of a topic."""

    async def find_event(self, event_id: str) -> tuple[Event, bool] | None:
        """An event by id, and whether it still waits in the timer store."""

    async def heads(self) -> dict[tuple[str, int], int]:
        """The next offset of every partition, by (topic, partition)."""


class ProgressPort(Protocol):
    """The subscriptions' progress: cursors and delivery rows, under lease epochs."""

    async def load_progress(
        self, sub: Subscription
    ) -> tuple[dict[int, CursorState], list[DeliveryRow]]:
        """A subscription's cursors and its live (retrying or blocked) delivery rows."""

    async def commit_progress(self, progress: Sequence[Progress], now_ms: int) -> list[Event]:
        """Commit subscriptions' progress atomically; return appended dead-letter events.

        Raises:
            LeaseLost: a progress carries an epoch that is no longer its partition's (another
                node took it over); nothing was written.
        """

    async def delivery_rows(
        self, topic: Topic, partition: int, offset: int
    ) -> dict[str, DeliveryRow]:
        """The delivery rows of one event, by subscription."""

    async def cursors_of(self, topic: Topic, partition: int) -> dict[str, CursorState]:
        """The cursors of every subscription of a topic in one partition."""

    async def count_rows(self, subscription: str) -> dict[str, int]:
        """How many delivery rows a subscription has, by state."""


class TimersPort(Protocol):
    """The timers of delayed events (the scheduler; overdue ones for health and status)."""

    async def due_timers(
        self, until_ms: int, limit: int, from_ms: int = 0
    ) -> list[tuple[int, str]]:
        """(due_ms, id) of timers due in ``[from_ms, until_ms)``, earliest first."""

    async def fire_timers(self, ids: Sequence[str]) -> list[Event]:
        """Append the given timers' events to their logs and delete the timers, atomically.

        Returns the appended events; ids no longer in the timer store are skipped.
        """

    async def overdue_timers(self, due_before_ms: int) -> list[OverdueTimers]:
        """The timers due before ``due_before_ms`` and not fired, per topic partition."""


class CatalogPort(Protocol):
    """Topics, subscriptions and lambda endpoints (the catalog, delivery)."""

    async def put_topic(self, topic: Topic) -> bool:
        """Create or update a topic; return whether it was created.

        Raises:
            Conflict: the topic exists with another number of partitions.
        """

    async def list_topics(self) -> list[Topic]:
        """Every topic."""

    async def put_subscription(self, sub: Subscription) -> bool:
        """Create or update a subscription; return whether it was created.

        An existing subscription keeps its :class:`~conveyor.model.Control` (run-time gates
        change only through :meth:`set_control`). A new subscription's cursors start at the
        end of its topic's log: it receives the events published after it was created.

        Raises:
            Conflict: it exists for another topic.
        """

    async def set_control(self, name: str, control: Control) -> Subscription:
        """Replace a subscription's run-time gates; return the subscription as stored.

        Raises:
            NotFound: no such subscription.
        """

    async def delete_subscription(self, name: str) -> bool:
        """Delete a subscription and all its progress; return whether it existed."""

    async def list_subscriptions(self) -> list[Subscription]:
        """Every subscription."""

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        """Register or renew an endpoint."""

    async def delete_endpoint(self, lambda_name: str, endpoint_id: str) -> bool:
        """Remove an endpoint; return whether it existed."""

    async def list_endpoints(self) -> list[Endpoint]:
        """Every registered endpoint, expired or not."""


class RegistryPort(Protocol):
    """The schema registry: subjects, their versions, compatibility modes (the frontend)."""

    async def register_schema(
        self, candidate: StoredSchema, default_mode: str, verify: Verify
    ) -> tuple[StoredSchema, bool]:
        """Add a version to a subject, atomically with its compatibility check.

        ``candidate``'s id and version are ignored. When the subject has a version with the
        same fingerprint, that version is returned (``False``); otherwise ``verify`` is
        called, in the transaction that holds the subject, with every existing version and
        the subject's mode (``default_mode`` when it has none), and the new version is
        stored (``True``) unless it raised.
        """

    async def schemas_of(self, subject: str) -> list[StoredSchema]:
        """A subject's versions, oldest first (empty when it has none)."""

    async def schema_by_id(self, schema_id: int) -> StoredSchema | None:
        """A schema by its registry id."""

    async def list_subjects(self) -> list[SubjectInfo]:
        """Every subject, by name."""

    async def set_compatibility(self, subject: str | None, mode: str | None) -> None:
        """Set a subject's mode (``None`` returns it to the default), or with ``subject``
        ``None`` the registry's default."""

    async def default_compatibility(self) -> str | None:
        """The registry's default mode as set, or ``None`` when never set."""


class ReleasesPort(Protocol):
    """Each lambda's releases and release policy (delivery)."""

    async def lambda_releases(self, lambda_name: str) -> LambdaReleases:
        """A lambda's releases and policy (revision 0 and nothing when it has none)."""

    async def release_revisions(self) -> dict[str, int]:
        """The revision of every lambda with releases or a policy, by name."""

    async def change_releases(self, lambda_name: str, change: ReleaseChange) -> LambdaReleases:
        """Change a lambda's releases atomically with the decision to.

        ``change`` is called in a transaction that holds the lambda (another node's change
        waits), with its releases as stored; what it returns is written, and the lambda's
        revision bumped when that is anything. This is how transitions are compare-and-set:
        ``change`` sees the state it changes.

        Returns:
            The lambda's releases and policy after the change.
        """

    async def set_release_policy(self, lambda_name: str, policy: bytes | None) -> LambdaReleases:
        """Set a lambda's release policy (``None``: back to the defaults); bumps its revision.

        Returns:
            The lambda's releases and policy after the change.
        """


class LeasesPort(Protocol):
    """Nodes and partition leases (the cluster)."""

    async def heartbeat_node(self, node: NodeInfo) -> None:
        """Register or renew a node."""

    async def list_nodes(self) -> list[NodeInfo]:
        """Every node that has sent a heartbeat (expired ones included)."""

    async def list_leases(self) -> list[Lease]:
        """The lease of every partition of every topic."""

    async def acquire_lease(
        self, topic: str, partition: int, owner: str, now_ms: int, until_ms: int
    ) -> int | None:
        """Take a partition that is free, expired, or already ``owner``'s.

        Returns:
            The new fencing epoch (one more than the last), or ``None`` when another node
            holds a live lease.
        """

    async def renew_leases(
        self, owner: str, held: Sequence[tuple[str, int, int]], until_ms: int
    ) -> list[tuple[str, int]]:
        """Extend leases (topic, partition, epoch) still held; return those renewed."""

    async def release_lease(self, topic: str, partition: int, owner: str, epoch: int) -> None:
        """Give a partition up, if still held under ``epoch``."""


class DeadLetterPort(Protocol):
    """Delivery rows by state: listing, marking, redrive requests (flow control, the API)."""

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
        """A subscription's delivery rows in one state, a page at a time.

        Args:
            subscription: its name.
            state: the rows' state, e.g. ``dead``.
            since_ms: only rows last changed at or after this time.
            until_ms: only rows last changed before this time.
            error: only rows whose ``last_error`` contains this text, ignoring case.
            after: only rows after this (partition, offset): the last row of the page before.
            limit: rows at most.

        Returns:
            The rows, ordered by (partition, offset).
        """

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
        """Move rows from one state to another atomically; return how many moved.

        The rows moved are those in ``from_state`` at the (partition, offset) ``refs`` (every
        row in ``from_state`` when ``refs`` is ``None``), narrowed by ``since_ms``,
        ``until_ms`` and ``error`` as in :meth:`list_rows`. Each gets ``updated_ms = now_ms``;
        moved to ``redrive``, it also gets ``attempts = 0`` and ``next_ms = now_ms`` (its
        history is kept), and the dispatching runner delivers it again from attempt 1.
        """

    async def redrive_requests(
        self, subscription: str, partitions: Sequence[int] | None, limit: int
    ) -> list[DeliveryRow]:
        """A subscription's rows in state ``redrive``, in ``partitions`` (all when ``None``),
        ordered by (partition, offset), at most ``limit``."""


class HousekeepingPort(Protocol):
    """Removing what retention and the dedup window no longer keep (the node)."""

    async def sweep(self, now_ms: int, dedup_ms: int) -> int:
        """One housekeeping pass: drop expired idempotency keys, then each topic's log
        entries past retention that every subscription has finished and its finished
        delivery rows past retention; return how many rows were removed.

        Invariant: one topic's failure never stops the others: it is logged, skipped, and
        tried again next pass.

        Raises:
            StoreUnavailable: the topics could not be listed.
        """

    async def sweep_keys(self, cutoff_ms: int) -> int:
        """Drop the idempotency keys stored before ``cutoff_ms``, in transactions small
        enough never to hold publishes up for long; return how many."""

    async def sweep_topic(self, topic: Topic, now_ms: int) -> int:
        """Remove a topic's log entries past its retention that every subscription has
        finished (a dead letter keeps its event), and its finished delivery rows past
        retention, in small transactions; return how many rows were removed."""


class HealthPort(Protocol):
    """The store's own health (the node's health check)."""

    def write_failure(self) -> str | None:
        """Why the last group-committed transaction failed, while none has succeeded since
        (the store refuses writes: a full disk, a lost database); ``None`` when writing."""


class LogPort(PublishPort, LogReadPort, Protocol):
    """The whole log: appending and reading."""


class FlowReadPort(LogReadPort, ProgressPort, TimersPort, Protocol):
    """What a subscription's status reads: the log, its progress, the overdue timers."""


class DeadLetterStorePort(DeadLetterPort, ProgressPort, LogReadPort, Protocol):
    """What the dead-letter service uses: the rows by state, and the events they name."""


class NodeHealthPort(TimersPort, HealthPort, Protocol):
    """What the node's health check reads: the commit failure and the overdue timers."""
