"""Pure domain types: topics, subscriptions, events and delivery states.

Nothing here does I/O or imports other Conveyor modules. Times are integer milliseconds since
the Unix epoch inside the platform; the HTTP API shows them as RFC 3339 strings.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal

import msgspec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
_NAME_RE = re.compile(NAME_PATTERN)

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, max_length=200)]
LOCALITY_PATTERN = r"^[A-Za-z0-9._-]{1,63}(/[A-Za-z0-9._-]{1,63}){0,2}$"
# Where an endpoint runs: ``cloud/region/zone``, or a prefix of it (``aws``, ``aws/us-east-1``).
Locality = Annotated[
    str,
    msgspec.Meta(
        pattern=LOCALITY_PATTERN,
        max_length=191,
        description="cloud/region/zone, or a prefix of it",
    ),
]
JsonValue = Annotated[object, msgspec.Meta(extra_json_schema={"description": "any JSON value"})]

DEFAULT_PARTITIONS = 4
MAX_PARTITIONS = 256
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
# Every number the API accepts has an upper bound, so that no value can overflow a store's
# 64-bit integers (a topic's retention in milliseconds, a version looked up by number).
MAX_RETENTION_SECONDS = 10 * 365 * 86400  # ten years, the horizon a delay stops at too
MAX_VERSION = 2**31 - 1  # a schema version or id: more than any registry will hold
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last time RFC 3339 writes
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]


def is_valid_name(name: str) -> bool:
    """Tell whether ``name`` may name a topic, subscription or lambda."""
    return bool(_NAME_RE.match(name))


class Priority(enum.StrEnum):
    """The lane an event travels in: high goes first, low is never starved."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


# Lanes in the order of their partitions in the log: a topic of P partitions keeps P log
# partitions per lane, normal first (so a topic's first P partitions are its normal lane).
LANES: tuple[Priority, ...] = (Priority.NORMAL, Priority.HIGH, Priority.LOW)
LANE_WEIGHTS: dict[Priority, int] = {Priority.HIGH: 8, Priority.NORMAL: 4, Priority.LOW: 1}
_LANE_INDEX = {lane: i for i, lane in enumerate(LANES)}


def log_partition(partition: int, priority: Priority, partitions: int) -> int:
    """The log partition of a topic partition's lane."""
    return _LANE_INDEX[priority] * partitions + partition


def lane_of(log_part: int, partitions: int) -> Priority:
    """The lane a log partition belongs to."""
    return LANES[log_part // partitions]


class SchemaType(enum.StrEnum):
    """The kinds of schema the registry holds."""

    JSON = "json"  # JSON Schema, draft 2020-12
    AVRO = "avro"
    PROTOBUF = "protobuf"


class SchemaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A topic's binding to a registry subject.

    Attributes:
        subject: the subject whose versions the topic's events are written with.
        first_version: the oldest version a publisher may write with.
        last_version: the newest one, or ``None`` for the subject's latest.
    """

    subject: Name
    first_version: Version = 1
    last_version: Version | None = None

    def __post_init__(self) -> None:
        if self.last_version is not None and self.last_version < self.first_version:
            raise ValueError("schema_settings.last_version must be >= first_version")


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a subscription retries a failed delivery.

    Attributes:
        max_attempts: deliveries tried before the event is dead (1 = no retry).
        min_backoff: seconds, the least wait before a retry.
        max_backoff: seconds, the most wait before a retry.
        multiplier: growth of the backoff bound per attempt.
        max_retry_duration: seconds after the first attempt past which a failure is final
            (the event goes dead even with attempts left), or ``None`` for no bound.
    """

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    min_backoff: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 1.0
    max_backoff: Annotated[float, msgspec.Meta(ge=0, le=7 * 86400)] = 300.0
    multiplier: Annotated[float, msgspec.Meta(ge=1, le=100)] = 2.0
    max_retry_duration: Annotated[float, msgspec.Meta(gt=0, le=365 * 86400)] | None = None

    def __post_init__(self) -> None:
        if self.max_backoff < self.min_backoff:
            raise ValueError("retry.max_backoff must be >= retry.min_backoff")


class Topic(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A named, partitioned log that events are published to.

    Attributes:
        name: the topic's name.
        partitions: how many partitions; an event's key picks its partition.
        schema: a JSON Schema (draft 2020-12) every payload must conform to, or ``None``.
        schema_settings: a registry subject every payload must conform to (a version in
            its range: the publisher's choice, else the newest), or ``None``. Excludes
            ``schema``.
        max_payload_bytes: the largest payload accepted, in bytes of JSON.
        retention_seconds: how long finished events are kept in the log (60 s to ten
            years).
    """

    name: Name
    partitions: Annotated[int, msgspec.Meta(ge=1, le=MAX_PARTITIONS)] = DEFAULT_PARTITIONS
    schema: dict[str, JsonValue] | None = None
    max_payload_bytes: Annotated[int, msgspec.Meta(ge=1, le=16 * 1024 * 1024)] = (
        DEFAULT_MAX_PAYLOAD_BYTES
    )
    retention_seconds: Annotated[int, msgspec.Meta(ge=60, le=MAX_RETENTION_SECONDS)] = (
        DEFAULT_RETENTION_SECONDS
    )
    schema_settings: SchemaSettings | None = None

    def __post_init__(self) -> None:
        if self.schema is not None and self.schema_settings is not None:
            raise ValueError("give schema or schema_settings, not both")

    @property
    def log_partitions(self) -> int:
        """Partitions in the log: ``partitions`` for each priority lane."""
        return self.partitions * len(LANES)


class RateLimit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A token bucket over a subscription's pushes.

    Attributes:
        per_second: events pushed per second, sustained.
        burst: events that may go at once after a quiet spell (the bucket's size).
    """

    per_second: Annotated[float, msgspec.Meta(gt=0, le=10_000_000)]
    burst: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 1


class Control(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A subscription's run-time gates: set by operators, kept when its spec is replaced.

    Attributes:
        paused: nothing is pushed; the backlog keeps growing and stays visible.
        rate_limit: the most events per second pushed, or ``None`` for no limit.
        purged_before_ms: events published before this time are dropped unpushed (a drain
            to drop), or ``None``.
    """

    paused: bool = False
    rate_limit: RateLimit | None = None
    purged_before_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_TIME_MS)] | None = None


class DeliveryFormat(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a subscription's lambda receives: an encoding, a schema version, an envelope.

    Attributes:
        encoding: ``json`` (the default: the canonical JSON form, as stored), ``avro``
            (Avro binary, one datum without a container) or ``protobuf`` (Protobuf binary);
            a binary encoding needs the topic bound to a subject of that type.
        cloudevents: wrap each event in a CloudEvent (JSON structured mode, spec 1.0).
        schema_version: the version of the topic's subject to deliver in (a reader
            version: Avro schema resolution, or Protobuf's unknown fields dropped), or
            ``None`` for the version each event was written with.
    """

    encoding: Literal["json", "avro", "protobuf"] = "json"
    cloudevents: bool = False
    schema_version: Version | None = None

    @property
    def as_stored(self) -> bool:
        """Whether events go out as they are stored (plain JSON, the writer's version)."""
        return self.encoding == "json" and not self.cloudevents and self.schema_version is None


class Subscription(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A topic's events pushed to one lambda.

    Attributes:
        name: the subscription's name.
        topic: the topic it reads.
        lambda_name: the lambda whose endpoints receive the pushes (``lambda`` on the wire).
        ordered: deliver events of one key one at a time, in log order.
        max_concurrency: the most events in flight at once, over all partitions.
        min_concurrency: the least the adaptive limit may fall to.
        adaptive: let the limit move between ``min_concurrency`` and ``max_concurrency``
            with the lambda's latency, errors and throttling; fixed at the maximum when off
            (the default: a push's latency grows with its batch, which the limiter would
            read as queueing, so turn it on for lambdas whose downstreams can be overloaded).
        max_batch: events in one push.
        max_batch_bytes: payload bytes in one push, at most (a push always holds at least
            one event).
        max_wait: seconds a push may wait to fill up to ``max_batch`` (a linger; 0 pushes
            what is there at once).
        push_timeout: seconds to wait for a push's answer before it counts as a retry.
        retry: the retry policy.
        dead_letter_topic: a topic that receives events that went dead, or ``None``.
        control: the run-time gates (pause, rate limit, purge); changed only through the
            subscription's control operations, never by replacing its spec.
        filter: an EventBridge-style pattern over the event's attributes, key and payload
            (see ``delivery/filters/``); events that do not match are ``filtered`` and
            never pushed. ``None`` delivers every event.
        format: the encoding, schema version and envelope its lambda receives (plain JSON
            as stored by default).
        locality: the places whose endpoints it prefers, most preferred first, each a
            ``cloud/region/zone`` label or a prefix of one (``aws/us-east-1``); pushes spill
            over to the next place as the preferred one loses healthy endpoints (see
            ``delivery/locality.py``). Empty: the dispatching node's own locality.
    """

    name: Name
    topic: Name
    lambda_name: Name = msgspec.field(name="lambda")
    ordered: bool = False
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 512
    min_concurrency: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    adaptive: bool = False
    max_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256
    max_batch_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    max_wait: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.0
    push_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    retry: RetryPolicy = RetryPolicy()
    dead_letter_topic: Name | None = None
    control: Control = Control()
    format: DeliveryFormat = DeliveryFormat()
    filter: dict[str, JsonValue] | None = None
    locality: Annotated[list[Locality], msgspec.Meta(max_length=16)] = []

    def __post_init__(self) -> None:
        if self.min_concurrency > self.max_concurrency:
            raise ValueError("min_concurrency must be <= max_concurrency")


class DeliveryState(enum.StrEnum):
    """Where one event stands for one subscription."""

    SCHEDULED = "scheduled"  # waiting for its deliver_at
    PENDING = "pending"  # in the log, not yet pushed (or blocked behind its key)
    RUNNING = "running"  # pushed, no result yet
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # failed, waits for its next attempt
    DEAD = "dead"  # out of attempts, or fatal
    FILTERED = "filtered"  # did not match the subscription's filter
    DROPPED = "dropped"  # purged: from the backlog by a drain-to-drop, or from the DLQ


class Outcome(enum.StrEnum):
    """The result of one delivery attempt, as the lambda (or the transport) gave it."""

    SUCCESS = "success"
    RETRY = "retry"
    FATAL = "fatal"


class AttemptOutcome(enum.StrEnum):
    """What one attempt in an event's history came to: the lambda's (or the transport's)
    answer, or ``dead`` for a failure that left no attempt to retry with."""

    SUCCESS = "success"
    RETRY = "retry"  # failed; the event was tried again (or waits for it)
    FATAL = "fatal"  # the lambda declined it for good: the event went dead
    DEAD = "dead"  # failed with no attempt left (max_attempts, max_retry_duration): dead


class Attempt(msgspec.Struct, gc=False, frozen=True):
    """One delivery attempt in an event's history.

    Attributes:
        attempt: 1 for the first delivery.
        at_ms: when the push was sent.
        outcome: ``success``, ``retry``, ``fatal``, or ``dead`` for the last failure of an
            event that ran out of attempts.
        error: the lambda's or transport's message for a failure.
        duration_ms: from push to result.
    """

    attempt: int
    at_ms: int
    outcome: AttemptOutcome
    error: str | None = None
    duration_ms: int = 0


class Event(msgspec.Struct, gc=False, frozen=True, array_like=True):
    """An event in a topic's log (or waiting in the timer store, with offset -1).

    Attributes:
        id: 32 hex digits, time-ordered.
        topic: the topic's name.
        partition: the partition it was appended to.
        offset: its gap-free position in that partition.
        key: the ordering key, or ``None``.
        attributes: string metadata, for routing and tracing.
        payload: the payload as JSON bytes.
        publish_ms: when the publish was acknowledged.
        deliver_at_ms: the earliest delivery time, or ``None`` for "now".
        schema_id: the registry schema it was written with, or ``None``.
    """

    id: str
    topic: str
    partition: int
    offset: int
    key: str | None
    attributes: dict[str, str] | None
    payload: bytes
    publish_ms: int
    deliver_at_ms: int | None = None
    schema_id: int | None = None
