"""The HTTP API's request and response bodies (msgspec Structs).

These types are the contract shared by the server (:mod:`conveyor.api`), the Python client
(:mod:`conveyor.client`) and the worker's registration; the OpenAPI document is generated from
them. Times on the wire are RFC 3339 strings (``datetime``); inside the platform they are
milliseconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from conveyor.model import (
    LOCALITY_PATTERN,
    AttemptOutcome,
    Name,
    Priority,
    Subscription,
    Topic,
    Version,
)

MAX_KEY_LENGTH = 1024
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_KEY = 256
MAX_ATTRIBUTE_VALUE = 4096
MAX_BATCH_EVENTS = 10_000

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_LENGTH)]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
MAX_DELAY_SECONDS = 10 * 365 * 86400
"""The horizon of a delayed event, for ``delay`` and ``deliver_at`` alike."""

Delay = Annotated[float, msgspec.Meta(ge=0, le=MAX_DELAY_SECONDS)]


class PublishRequest(msgspec.Struct, gc=False, forbid_unknown_fields=True, omit_defaults=True):
    """One event to publish.

    Attributes:
        payload: any JSON value; checked against the topic's schema when it has one.
        key: ordering key; events with one key share a partition and keep their order.
        attributes: string metadata (at most 64 entries).
        deliver_at: the earliest delivery time (RFC 3339); excludes ``delay``.
        delay: seconds from now before delivery; excludes ``deliver_at``.
        idempotency_key: a retried publish with the same key returns the first result.
        priority: the lane it travels in: ``high`` goes first, ``low`` is never starved.
            Per-key order holds within a lane.
        schema_version: for a topic bound to a registry subject, the version the payload
            is written with (default: the newest the topic admits).
    """

    payload: msgspec.Raw
    key: Key | None = None
    attributes: dict[str, str] | None = None
    deliver_at: datetime | None = None
    delay: Delay | None = None
    idempotency_key: IdempotencyKey | None = None
    priority: Priority = Priority.NORMAL
    schema_version: Version | None = None


class BatchPublishRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Events to publish atomically: all are stored, or none is (unless the request asks for
    partial acceptance with ``?partial=true``)."""

    events: Annotated[list[PublishRequest], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class BatchQuery(msgspec.Struct):
    """The query of a batch publish.

    Attributes:
        partial: store the valid events and list each invalid one in ``rejected``, instead
            of refusing the whole batch (201 when any was stored, else 200).
    """

    partial: bool = False


class PublishResult(msgspec.Struct, gc=False, omit_defaults=True):
    """The acknowledgement of one published event (durable when returned).

    Attributes:
        id: the event's id.
        state: ``pending`` (in the log) or ``scheduled`` (waiting for ``deliver_at``).
        partition: the partition it was appended to (``None`` while scheduled).
        offset: its offset in that partition (``None`` while scheduled).
        deliver_at: when it may be delivered, for a delayed event.
        duplicate: ``True`` when an earlier publish with the same idempotency key is returned.
        index: with partial acceptance, the event's position in the batch.
    """

    id: str
    state: str
    partition: int | None = None
    offset: int | None = None
    deliver_at: datetime | None = None
    duplicate: bool = False
    index: int | None = None


class BatchPublishResult(msgspec.Struct, omit_defaults=True):
    """Results in the order of the request's events.

    Attributes:
        results: the stored events; with partial acceptance, each names its ``index``.
        rejected: with partial acceptance, one error per invalid event (with its
            ``index``); nothing else is ever partly stored.
    """

    results: list[PublishResult]
    rejected: list[ErrorDetail] = []


class SubscriptionStats(msgspec.Struct):
    """Live figures of one subscription on the node that answers.

    Attributes:
        backlog: events not yet finished: in the log (pending, running or blocked),
            waiting for a retry (``retrying``), and delayed events past their due time that
            the timers have not appended yet (``overdue``). The autoscaler reads it.
        in_flight: events pushed and not yet answered.
        retrying: events waiting for a retry.
        dead: events that went dead.
        oldest_pending_age: seconds since the oldest unfinished event became due (its
            publish, or its deliver_at for a delayed one, overdue ones included).
        backlog_by_priority: the backlog of each priority lane (retrying events are not in
            a lane: they wait for their retry time, not their turn).
        dropped: events dropped unpushed (purged backlog and purged dead letters).
        filtered: events that did not match the subscription's filter (never pushed).
        paused: whether pushes are paused.
        held: events fired ahead of their deliver_at, held in memory until it.
        concurrency: the adaptive concurrency limiter on the answering node.
        overdue: delayed events past their due time still in the timer store (the timers
            are not firing: a store refusing writes, no dispatch node).
        warnings: what keeps its events from being delivered, e.g. ``no endpoints`` (its
            lambda has no live endpoint registered): empty when nothing does.
    """

    backlog: int = 0
    in_flight: int = 0
    retrying: int = 0
    dead: int = 0
    oldest_pending_age: float | None = None
    backlog_by_priority: dict[str, int] = msgspec.field(default_factory=dict)
    dropped: int = 0
    filtered: int = 0
    paused: bool = False
    held: int = 0
    concurrency: ConcurrencyView | None = None
    overdue: int = 0
    warnings: list[str] = msgspec.field(default_factory=list)


class ConcurrencyView(msgspec.Struct):
    """The adaptive concurrency limiter of a subscription on one node.

    Attributes:
        limit: events it lets be in flight now.
        floor: the least limit (``min_concurrency``).
        cap: the most (``max_concurrency``).
        adaptive: whether the limit moves; fixed at ``cap`` when not.
        in_flight: events in flight now.
        min_rtt_ms: the no-load push latency it measures against.
        recent_rtt_ms: the recent push latency.
    """

    limit: int
    floor: int
    cap: int
    adaptive: bool
    in_flight: int
    min_rtt_ms: float | None = None
    recent_rtt_ms: float | None = None


class SubscriptionInfo(msgspec.Struct, omit_defaults=True):
    """A subscription with its live figures.

    Attributes:
        purged: in the answer of a purge only: the unfinished events (backlog and
            retrying) it drops unpushed, counted as it took effect. Each is dropped as its
            partition's dispatcher reaches it; ``stats.dropped`` counts them as they go.
    """

    subscription: Subscription
    stats: SubscriptionStats
    purged: int | None = None


class AttemptView(msgspec.Struct, omit_defaults=True):
    """One delivery attempt.

    Attributes:
        attempt: 1 for the first delivery.
        outcome: ``success``, ``retry``, ``fatal``, or ``dead`` for the last failure of an
            event that ran out of attempts (``max_attempts`` or ``max_retry_duration``).
        at: when the push was sent (unknown for an attempt not recorded).
        duration_ms: from push to result (unknown for an attempt not recorded).
        error: the lambda's or transport's message for a failure.
        recorded: ``false`` for a success at the first attempt: the normal path writes
            nothing per delivery, so only its number and outcome are known.
    """

    attempt: int
    outcome: AttemptOutcome
    at: datetime | None = None
    duration_ms: int = 0
    error: str | None = None
    recorded: bool = True


class DeliveryView(msgspec.Struct, omit_defaults=True):
    """Where one event stands for one subscription.

    Attributes:
        subscription: the subscription's name.
        state: scheduled, pending, running, succeeded, retrying, dead or filtered.
        attempts: deliveries tried so far.
        next_attempt_at: when a retrying event is tried again.
        last_error: the last failure's message.
        history: every attempt: those recorded (failures and what followed them), or for
            a success at the first attempt, that attempt as known (``recorded`` false).
    """

    subscription: str
    state: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    history: list[AttemptView] = []


class EventView(msgspec.Struct, omit_defaults=True):
    """An event and its state for every subscription of its topic."""

    id: str
    topic: str
    payload: msgspec.Raw
    publish_time: datetime
    key: str | None = None
    attributes: dict[str, str] | None = None
    deliver_at: datetime | None = None
    partition: int | None = None
    offset: int | None = None
    priority: Priority | None = None
    schema_id: int | None = None
    deliveries: list[DeliveryView] = []


class EndpointRegistration(msgspec.Struct, forbid_unknown_fields=True):
    """A worker's endpoint, registered (and renewed by heartbeat) for one lambda, or a static
    endpoint added by URL.

    Attributes:
        url: where pushes are POSTed, e.g. ``http://127.0.0.1:9000/conveyor/push``.
        ttl_seconds: the endpoint expires when not renewed within this time.
        concurrency: events the worker runs at once (a hint for balancing).
        locality: where it runs, ``cloud/region/zone`` (or a prefix; empty: unknown).
        version: the version of the lambda it runs (empty: unversioned); a new version
            starts a release (see docs/releases.md).
        static: added by hand: it never expires and needs no heartbeat.
        health_url: where the platform's active probes GET its health (empty: not probed).
    """

    url: Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=2048)]
    ttl_seconds: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 15.0
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 64
    locality: Annotated[str, msgspec.Meta(pattern=f"^$|{LOCALITY_PATTERN}", max_length=191)] = ""
    version: Annotated[str, msgspec.Meta(pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")] = ""
    static: bool = False
    health_url: Annotated[str, msgspec.Meta(pattern=r"^$|^https?://", max_length=2048)] = ""


class EndpointInfo(msgspec.Struct):
    """A registered endpoint, with its health on the answering node.

    Attributes:
        expires_at: when it expires unless renewed (``None`` for a static endpoint).
        healthy: neither ejected nor failing its health probes, on the answering node.
        ejected_until: while set, outlier detection keeps pushes away from it.
        ejections: how often it was ejected (each ejection lasts longer).
        consecutive_failures: failed pushes in a row.
        probe_healthy: what the active health probes last concluded.
        last_probe_error: why the last probe failed (empty when it passed).
        pushes: pushes made to it by the answering node.
        failures: connections to it that failed.
    """

    lambda_name: str = msgspec.field(name="lambda")
    id: str = ""
    url: str = ""
    expires_at: datetime | None = None
    in_flight: int = 0
    locality: str = ""
    version: str = ""
    static: bool = False
    healthy: bool = True
    ejected_until: datetime | None = None
    ejections: int = 0
    consecutive_failures: int = 0
    probe_healthy: bool = True
    last_probe_error: str = ""
    pushes: int = 0
    failures: int = 0


class LambdaInfo(msgspec.Struct):
    """A lambda and its live endpoints."""

    name: str
    endpoints: list[EndpointInfo]


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    """What is wrong with one part of a request.

    Attributes:
        message: what is wrong, for a person.
        field: JSON pointer of the offending field.
        rule: the rule it broke.
        index: the event's index in a batch.
        old: for a schema change, the old type or value at ``field``.
        new: for a schema change, the new one.
        code: for an event a partial batch rejected, the code its own publish would have
            answered with (``invalid_request`` or ``schema_violation``).
    """

    message: str
    field: str | None = None
    rule: str | None = None
    index: int | None = None
    old: str | None = None
    new: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every 4xx/5xx answer's body.

    Attributes:
        code: stable machine-readable code (``invalid_request``, ``schema_violation``,
            ``not_found``, ``conflict``, ``rate_limited``, ``store_unavailable``).
        message: what happened, for a person.
        field: JSON pointer of the offending field, when one is to blame.
        rule: the rule it broke (``type``, ``required``, ``max_length`` …).
        index: the event's index in a batch.
        errors: every problem found, for a batch (or every breaking change of a schema).
        schema_id: the registry schema a payload was checked against.
        schema_version: that schema's version in its subject.
    """

    code: str
    message: str
    field: str | None = None
    rule: str | None = None
    index: int | None = None
    errors: list[ErrorDetail] = []
    schema_id: int | None = None
    schema_version: int | None = None


class ErrorResponse(msgspec.Struct):
    """The envelope of an error answer: ``{"error": {...}}``."""

    error: ErrorBody


class Health(msgspec.Struct):
    """The node's health: ``ok`` (answered 200), or ``failing`` (503) with the problems.

    Attributes:
        status: ``ok`` or ``failing``.
        version: Conveyor's version.
        store: the store's kind.
        problems: why it is failing: the store refuses writes, delayed events are overdue
            beyond the threshold (``--health-overdue-after``), the store cannot be read.
    """

    status: str
    version: str
    store: str
    problems: list[str] = msgspec.field(default_factory=list)


__all__ = [
    "AttemptView",
    "BatchPublishRequest",
    "BatchPublishResult",
    "DeliveryView",
    "EndpointInfo",
    "EndpointRegistration",
    "ErrorBody",
    "ErrorDetail",
    "ErrorResponse",
    "EventView",
    "Health",
    "LambdaInfo",
    "Name",
    "PublishRequest",
    "PublishResult",
    "Subscription",
    "SubscriptionInfo",
    "SubscriptionStats",
    "Topic",
]
