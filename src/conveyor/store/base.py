"""The Store port: everything Conveyor keeps durably, behind one narrow interface.

The record is a log with cursors (see docs/design.md):

* **log** — per topic partition, append-only, gap-free offsets from 0. An event is written
  once. Offsets are assigned by the single writer of a partition, inside the transaction that
  appends, so a reader never sees a later offset before an earlier one.
* **cursors** — per subscription and partition: ``cursor`` is the lowest offset not known to be
  finished; offsets at or above it that are finished are kept as ranges in ``acked``.
  *Invariant:* every offset below the cursor, or inside ``acked``, is finished — succeeded,
  filtered, or owned by a delivery row.
* **delivery rows** — sparse: only an event that needs memory has one (retrying, blocked
  behind its key, dead, or succeeded after failures, for its history).
* **timers** — delayed events wait here, apart from the log, and are appended to it in the
  same transaction that deletes the timer.
* **idempotency** — publish keys with the first result, for the dedup window.

The port does the shared work once: :class:`GroupCommit` batches concurrent writes into one
transaction (one fsync) and acknowledges none before that transaction is durable. Adapters
implement the narrow primitives.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence

from conveyor._resource import AsyncResource
from conveyor.model import Control, Event, Subscription, Topic
from conveyor.store._group_commit import GroupCommit
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
    Ranges,
    ReleaseChange,
    Stored,
    StoredRelease,
    StoredSchema,
    SubjectInfo,
    Verify,
)

__all__ = [
    "CursorState",
    "DeliveryRow",
    "Endpoint",
    "GroupCommit",
    "LambdaReleases",
    "Lease",
    "NewEvent",
    "NodeInfo",
    "OverdueTimers",
    "Progress",
    "PublishBatchResult",
    "Ranges",
    "ReleaseChange",
    "Store",
    "Stored",
    "StoredRelease",
    "StoredSchema",
    "SubjectInfo",
    "Verify",
]

log = logging.getLogger("conveyor.store")


class Store(AsyncResource):
    """The durable store of one Conveyor deployment.

    Every method may raise :class:`~conveyor.errors.StoreUnavailable` when the store cannot
    commit; nothing is then acknowledged.
    """

    name: str = "store"

    async def _enter(self) -> None:
        await self.open()

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or migrate the schema and get ready."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release every resource; idempotent."""

    # -- catalog ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_topic(self, topic: Topic) -> bool:
        """Create or update a topic; return whether it was created.

        Raises:
            Conflict: the topic exists with another number of partitions.
        """

    @abc.abstractmethod
    async def list_topics(self) -> list[Topic]:
        """Every topic."""

    @abc.abstractmethod
    async def put_subscription(self, sub: Subscription) -> bool:
        """Create or update a subscription; return whether it was created.

        An existing subscription keeps its :class:`~conveyor.model.Control` (run-time gates
        change only through :meth:`set_control`). A new subscription's cursors start at the
        end of its topic's log: it receives the events published after it was created.

        Raises:
            Conflict: it exists for another topic.
        """

    @abc.abstractmethod
    async def set_control(self, name: str, control: Control) -> Subscription:
        """Replace a subscription's run-time gates; return the subscription as stored.

        Raises:
            NotFound: no such subscription.
        """

    @abc.abstractmethod
    async def delete_subscription(self, name: str) -> bool:
        """Delete a subscription and all its progress; return whether it existed."""

    @abc.abstractmethod
    async def list_subscriptions(self) -> list[Subscription]:
        """Every subscription."""

    @abc.abstractmethod
    async def put_endpoint(self, endpoint: Endpoint) -> None:
        """Register or renew an endpoint."""

    @abc.abstractmethod
    async def delete_endpoint(self, lambda_name: str, endpoint_id: str) -> bool:
        """Remove an endpoint; return whether it existed."""

    @abc.abstractmethod
    async def list_endpoints(self) -> list[Endpoint]:
        """Every registered endpoint, expired or not."""

    # -- releases -------------------------------------------------------------------------
    @abc.abstractmethod
    async def lambda_releases(self, lambda_name: str) -> LambdaReleases:
        """A lambda's releases and policy (revision 0 and nothing when it has none)."""

    @abc.abstractmethod
    async def release_revisions(self) -> dict[str, int]:
        """The revision of every lambda with releases or a policy, by name."""

    @abc.abstractmethod
    async def change_releases(self, lambda_name: str, change: ReleaseChange) -> LambdaReleases:
        """Change a lambda's releases atomically with the decision to.

        ``change`` is called in a transaction that holds the lambda (another node's change
        waits), with its releases as stored; what it returns is written, and the lambda's
        revision bumped when that is anything. This is how transitions are compare-and-set:
        ``change`` sees the state it changes.

        Returns:
            The lambda's releases and policy after the change.
        """

    @abc.abstractmethod
    async def set_release_policy(self, lambda_name: str, policy: bytes | None) -> LambdaReleases:
        """Set a lambda's release policy (``None``: back to the defaults); bumps its revision.

        Returns:
            The lambda's releases and policy after the change.
        """

    # -- log ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def publish(
        self, topic: Topic, events: Sequence[NewEvent], now_ms: int, dedup_ms: int
    ) -> PublishBatchResult:
        """Store events atomically: immediate ones in the log, delayed ones as timers.

        An event whose idempotency key was seen within ``dedup_ms`` is not stored again;
        its first result is returned (or a conflict when the request differs).
        Returns only once the transaction is durable.
        """

    @abc.abstractmethod
    async def read_log(self, topic: Topic, partition: int, start: int, limit: int) -> list[Event]:
        """Events of a partition from offset ``start``, in order, at most ``limit``."""

    @abc.abstractmethod
    async def read_events(self, topic: Topic, refs: Sequence[tuple[int, int]]) -> list[Event]:
        """The events at (partition, offset) ``refs`` that still exist, in no set order."""

    @abc.abstractmethod
    async def log_ends(self, topic: Topic) -> list[int]:
        """The next offset of every partition of a topic."""

    @abc.abstractmethod
    async def find_event(self, event_id: str) -> tuple[Event, bool] | None:
        """An event by id, and whether it still waits in the timer store."""

    # -- timers ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def due_timers(
        self, until_ms: int, limit: int, from_ms: int = 0
    ) -> list[tuple[int, str]]:
        """(due_ms, id) of timers due in ``[from_ms, until_ms)``, earliest first."""

    @abc.abstractmethod
    async def fire_timers(self, ids: Sequence[str]) -> list[Event]:
        """Append the given timers' events to their logs and delete the timers, atomically.

        Returns the appended events; ids no longer in the timer store are skipped.
        """

    @abc.abstractmethod
    async def overdue_timers(self, due_before_ms: int) -> list[OverdueTimers]:
        """The timers due before ``due_before_ms`` and not fired, per topic partition."""

    def write_failure(self) -> str | None:
        """Why the last group-committed transaction failed, while none has succeeded since
        (the store refuses writes: a full disk, a lost database); ``None`` when writing."""
        return None

    # -- progress -------------------------------------------------------------------------
    @abc.abstractmethod
    async def load_progress(
        self, sub: Subscription
    ) -> tuple[dict[int, CursorState], list[DeliveryRow]]:
        """A subscription's cursors and its live (retrying or blocked) delivery rows."""

    @abc.abstractmethod
    async def commit_progress(self, progress: Sequence[Progress], now_ms: int) -> list[Event]:
        """Commit subscriptions' progress atomically; return appended dead-letter events.

        Raises:
            LeaseLost: a progress carries an epoch that is no longer its partition's (another
                node took it over); nothing was written.
        """

    @abc.abstractmethod
    async def delivery_rows(
        self, topic: Topic, partition: int, offset: int
    ) -> dict[str, DeliveryRow]:
        """The delivery rows of one event, by subscription."""

    @abc.abstractmethod
    async def cursors_of(self, topic: Topic, partition: int) -> dict[str, CursorState]:
        """The cursors of every subscription of a topic in one partition."""

    @abc.abstractmethod
    async def count_rows(self, subscription: str) -> dict[str, int]:
        """How many delivery rows a subscription has, by state."""

    # -- schema registry ------------------------------------------------------------------
    @abc.abstractmethod
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

    @abc.abstractmethod
    async def schemas_of(self, subject: str) -> list[StoredSchema]:
        """A subject's versions, oldest first (empty when it has none)."""

    @abc.abstractmethod
    async def schema_by_id(self, schema_id: int) -> StoredSchema | None:
        """A schema by its registry id."""

    @abc.abstractmethod
    async def list_subjects(self) -> list[SubjectInfo]:
        """Every subject, by name."""

    @abc.abstractmethod
    async def set_compatibility(self, subject: str | None, mode: str | None) -> None:
        """Set a subject's mode (``None`` returns it to the default), or with ``subject``
        ``None`` the registry's default."""

    @abc.abstractmethod
    async def default_compatibility(self) -> str | None:
        """The registry's default mode as set, or ``None`` when never set."""

    # -- dead letters ---------------------------------------------------------------------
    @abc.abstractmethod
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

    @abc.abstractmethod
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

    @abc.abstractmethod
    async def redrive_requests(
        self, subscription: str, partitions: Sequence[int] | None, limit: int
    ) -> list[DeliveryRow]:
        """A subscription's rows in state ``redrive``, in ``partitions`` (all when ``None``),
        ordered by (partition, offset), at most ``limit``."""

    # -- cluster --------------------------------------------------------------------------
    @abc.abstractmethod
    async def heartbeat_node(self, node: NodeInfo) -> None:
        """Register or renew a node."""

    @abc.abstractmethod
    async def list_nodes(self) -> list[NodeInfo]:
        """Every node that has sent a heartbeat (expired ones included)."""

    @abc.abstractmethod
    async def list_leases(self) -> list[Lease]:
        """The lease of every partition of every topic."""

    @abc.abstractmethod
    async def acquire_lease(
        self, topic: str, partition: int, owner: str, now_ms: int, until_ms: int
    ) -> int | None:
        """Take a partition that is free, expired, or already ``owner``'s.

        Returns:
            The new fencing epoch (one more than the last), or ``None`` when another node
            holds a live lease.
        """

    @abc.abstractmethod
    async def renew_leases(
        self, owner: str, held: Sequence[tuple[str, int, int]], until_ms: int
    ) -> list[tuple[str, int]]:
        """Extend leases (topic, partition, epoch) still held; return those renewed."""

    @abc.abstractmethod
    async def release_lease(self, topic: str, partition: int, owner: str, epoch: int) -> None:
        """Give a partition up, if still held under ``epoch``."""

    @abc.abstractmethod
    async def heads(self) -> dict[tuple[str, int], int]:
        """The next offset of every partition, by (topic, partition)."""

    # -- housekeeping ---------------------------------------------------------------------
    async def sweep(self, now_ms: int, dedup_ms: int) -> int:
        """One housekeeping pass: drop expired idempotency keys, then each topic's log
        entries past retention that every subscription has finished and its finished
        delivery rows past retention; return how many rows were removed.

        Invariant: one topic's failure never stops the others: it is logged, skipped, and
        tried again next pass.

        Raises:
            StoreUnavailable: the topics could not be listed.
        """
        removed = 0
        try:
            removed += await self.sweep_keys(now_ms - dedup_ms)
        except Exception as e:  # noqa: BLE001 - the topics are swept all the same (logged)
            log.warning("housekeeping of idempotency keys failed, skipped: %s", e)
        for topic in await self.list_topics():
            try:
                removed += await self.sweep_topic(topic, now_ms)
            except Exception as e:  # noqa: BLE001 - a topic's failure is its own (logged)
                log.warning("housekeeping of topic %r failed, skipped: %s", topic.name, e)
        return removed

    @abc.abstractmethod
    async def sweep_keys(self, cutoff_ms: int) -> int:
        """Drop the idempotency keys stored before ``cutoff_ms``, in transactions small
        enough never to hold publishes up for long; return how many."""

    @abc.abstractmethod
    async def sweep_topic(self, topic: Topic, now_ms: int) -> int:
        """Remove a topic's log entries past its retention that every subscription has
        finished (a dead letter keeps its event), and its finished delivery rows past
        retention, in small transactions; return how many rows were removed."""
