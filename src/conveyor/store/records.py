"""The records the store ports speak in: events to append and their acks, cursors, delivery
rows, schemas, leases, nodes, endpoints, releases. Plain data, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from conveyor.model import Attempt, Event, Topic

Ranges = list[tuple[int, int]]  # half-open [lo, hi) offset ranges, sorted, disjoint


@dataclass(slots=True)
class NewEvent:
    """An event accepted by the frontend, not yet stored.

    ``partition`` is chosen by the frontend for an immediate event; a delayed event's
    partition is chosen again when its timer fires (the same key gives the same partition).
    """

    id: str
    partition: int
    key: str | None
    attributes: dict[str, str] | None
    payload: bytes
    publish_ms: int
    deliver_at_ms: int | None
    delayed: bool
    idempotency_key: str | None = None
    digest: bytes | None = None
    schema_id: int | None = None  # the registry schema it was written with


@dataclass(slots=True)
class Stored:
    """What the store did with one :class:`NewEvent`.

    Attributes:
        id: the event's id (the first publish's id for a duplicate).
        partition: its partition, or ``None`` while it waits in the timer store.
        offset: its offset, or ``None`` while it waits in the timer store.
        deliver_at_ms: its scheduled time for a delayed event.
        duplicate: an earlier publish with the same idempotency key was returned.
        conflict: the idempotency key was used before with another request.
    """

    id: str
    partition: int | None
    offset: int | None
    deliver_at_ms: int | None
    duplicate: bool = False
    conflict: bool = False


@dataclass(slots=True)
class PublishBatchResult:
    """The result of one publish call: per-event outcomes plus what changed."""

    stored: list[Stored]
    appended: list[Event]
    timers: list[tuple[int, str]]  # (due_ms, event id) added to the timer store


@dataclass(slots=True, frozen=True)
class OverdueTimers:
    """Delayed events of one topic partition past their due time and still in the timer
    store (not appended to the log: the timers are not firing)."""

    topic: str
    partition: int
    count: int
    oldest_due_ms: int


class DeliveryRow(msgspec.Struct):
    """The sparse state of one event for one subscription.

    Attributes:
        partition: the event's partition.
        offset: the event's offset.
        key: its ordering key (needed to rebuild per-key blocking after a restart).
        state: ``retrying``, ``blocked``, ``dead``, ``succeeded``, ``redrive`` (a dead
            event sent back to its subscription) or ``dropped`` (purged).
        attempts: deliveries tried.
        next_ms: for ``retrying``, when the next attempt is due.
        last_error: the last failure's message.
        history: the attempts recorded.
        updated_ms: when the row last changed.
    """

    partition: int
    offset: int
    key: str | None
    state: str
    attempts: int
    next_ms: int | None
    last_error: str | None
    history: list[Attempt]
    updated_ms: int


@dataclass(slots=True)
class CursorState:
    """A subscription's progress in one partition (see the module's invariant)."""

    cursor: int
    acked: Ranges = field(default_factory=list)
    start: int = 0  # the log end when the subscription was created: it owns offsets >= start


@dataclass(slots=True)
class Progress:
    """One flush of a subscription's progress, committed atomically.

    Attributes:
        subscription: its name.
        cursors: new cursor states by partition.
        rows: delivery rows to insert or replace.
        deleted: (partition, offset) of delivery rows to delete.
        dead_letters: events to append to the dead-letter topic, with that topic.
    """

    subscription: str
    cursors: dict[int, CursorState] = field(default_factory=dict)
    rows: list[DeliveryRow] = field(default_factory=list)
    deleted: list[tuple[int, int]] = field(default_factory=list)
    dead_letters: list[tuple[Topic, NewEvent]] = field(default_factory=list)
    topic: str = ""
    epochs: dict[int, int] = field(default_factory=dict)  # partition -> lease epoch held

    def partitions(self) -> set[int]:
        """Every partition this progress writes to."""
        touched = set(self.cursors)
        touched.update(r.partition for r in self.rows)
        touched.update(part for part, _ in self.deleted)
        return touched


@dataclass(slots=True, frozen=True)
class StoredSchema:
    """One immutable version of a registry subject.

    Attributes:
        id: the schema's id, unique in the registry.
        subject: the subject it is a version of.
        version: its number in the subject, from 1.
        type: ``json``, ``avro`` or ``protobuf``.
        definition: the schema's text as registered.
        message: for Protobuf, the message's full name.
        fingerprint: the canonical form's hash (an identical registration returns this one).
        created_ms: when it was registered.
    """

    id: int
    subject: str
    version: int
    type: str
    definition: str
    message: str | None
    fingerprint: str
    created_ms: int


@dataclass(slots=True, frozen=True)
class SubjectInfo:
    """A registry subject: its own compatibility mode (``None``: the default) and versions."""

    name: str
    compatibility: str | None
    versions: list[int]


Verify = Callable[[list[StoredSchema], str], None]
"""Checks a candidate against a subject's versions (oldest first) under a compatibility mode;
raises a ConveyorError to refuse it."""


@dataclass(slots=True, frozen=True)
class Lease:
    """Who may dispatch a partition, until when, under which fencing epoch."""

    topic: str
    partition: int
    owner: str | None
    epoch: int
    expires_ms: int


@dataclass(slots=True, frozen=True)
class NodeInfo:
    """A node of the cluster, as its heartbeat last described it."""

    id: str
    url: str
    roles: str
    expires_ms: int


@dataclass(slots=True)
class Endpoint:
    """A registered push endpoint of a lambda.

    Attributes:
        locality: where it runs, ``cloud/region/zone`` (any prefix of it; ``""``: unknown).
        version: the version of the lambda it runs (``""``: unversioned).
        static: added by hand by URL; it does not expire (``expires_ms`` is ignored).
        health_url: where active probes GET its health (``""``: not probed).
    """

    lambda_name: str
    id: str
    url: str
    expires_ms: int
    concurrency: int
    locality: str = ""
    version: str = ""
    static: bool = False
    health_url: str = ""


@dataclass(slots=True, frozen=True)
class StoredRelease:
    """One version of a lambda under the releases manager (``delivery/releases.py``).

    Attributes:
        version: the version released.
        state: ``stable``, ``canary``, ``pending``, ``rolled_back`` or ``superseded``.
        started_ms: when it was first seen (for a canary: when its trial started).
        decided_ms: when it left its trial or was changed by hand; ``None`` while undecided.
        reason: why it is in its state.
        figures: the window figures the decision was made on (JSON, opaque to the store).
    """

    version: str
    state: str
    started_ms: int
    decided_ms: int | None = None
    reason: str = ""
    figures: bytes | None = None


@dataclass(slots=True, frozen=True)
class LambdaReleases:
    """A lambda's releases as stored.

    Attributes:
        revision: bumped by every change to its releases or policy (0: never changed).
        policy: its release policy (JSON, opaque to the store); ``None``: the defaults.
        releases: its releases, oldest first.
    """

    lambda_name: str
    revision: int = 0
    policy: bytes | None = None
    releases: tuple[StoredRelease, ...] = ()


ReleaseChange = Callable[[list[StoredRelease]], list[StoredRelease]]
"""Given a lambda's releases as stored (oldest first), the releases to write (added or
replaced by version); runs in the transaction that holds the lambda, and raises a
ConveyorError to refuse the change."""
