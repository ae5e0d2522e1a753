"""Publishing: check every event, store the batch atomically, acknowledge once durable.

A publish is acknowledged only after the group-committed transaction holding it is durable;
a batch is stored whole or not at all (every event is checked before anything is written).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import UTC, datetime

from conveyor._ids import new_id
from conveyor.catalog import Catalog
from conveyor.clock import Clock, to_ms
from conveyor.codecs.validation import PayloadValidator, check_payload
from conveyor.errors import InvalidRequest, SchemaViolation
from conveyor.frontend._decoding import topic_version
from conveyor.frontend.partitioning import partition_for
from conveyor.frontend.registry.registry import Schema, SchemaRegistry
from conveyor.metrics import Metrics
from conveyor.model import Event, Priority, Topic, log_partition
from conveyor.store.base import NewEvent, Stored
from conveyor.store.ports import PublishPort
from conveyor.wire.nesting import MAX_NESTING, nests_deeper
from conveyor.wire.schemas import (
    MAX_ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    MAX_DELAY_SECONDS,
    PublishRequest,
    PublishResult,
)

_SHALLOW_BYTES = 2 * MAX_NESTING + 1


def _ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _digest(req: PublishRequest) -> bytes:
    """What makes two publishes with one idempotency key the same request."""
    h = hashlib.blake2b(digest_size=16)
    h.update(bytes(req.payload))
    h.update(b"\x00" + (req.key or "").encode())
    h.update(b"\x00" + repr((req.delay, req.deliver_at)).encode())
    for k in sorted(req.attributes or {}):
        h.update(b"\x00" + k.encode() + b"=" + (req.attributes or {})[k].encode())
    # (defaults add nothing, so that older digests still match)
    if req.priority is not Priority.NORMAL:
        h.update(b"\x00priority=" + req.priority.value.encode())
    if req.schema_version is not None:
        h.update(b"\x00schema_version=" + str(req.schema_version).encode())
    return h.digest()


@dataclass(slots=True, eq=False)
class PublishService:
    """The frontend's publish path.

    Args:
        store: the durable store.
        catalog: topics and their schemas.
        clock: the source of time.
        metrics: the node's metrics.
        on_append: told of events appended to the log (after commit).
        on_timers: told of timers added to the timer store (after commit).
        dedup_window: seconds an idempotency key is remembered.
        registry: the schema registry, for topics bound to a subject.
    """

    store: PublishPort
    catalog: Catalog
    clock: Clock
    metrics: Metrics
    _: KW_ONLY
    on_append: Callable[[list[Event]], None]
    on_timers: Callable[[list[tuple[int, str]]], None]
    dedup_window: InitVar[float]
    registry: SchemaRegistry | None = None
    _dedup_ms: int = field(init=False)
    _spread: Iterator[int] = field(init=False, default_factory=itertools.count)

    def __post_init__(self, dedup_window: float) -> None:
        self._dedup_ms = int(dedup_window * 1000)

    async def publish(
        self, topic_name: str, requests: Sequence[PublishRequest], *, batch: bool
    ) -> list[PublishResult]:
        """Check and store events; return their acknowledgements.

        Args:
            topic_name: the topic.
            requests: the events, in order.
            batch: whether the request was a batch (errors then carry indices).

        Raises:
            NotFound: the topic does not exist.
            InvalidRequest: an event is invalid; nothing was stored.
            Conflict: an idempotency key was reused with another event; nothing was stored.
            StoreUnavailable: the store could not commit; nothing was acknowledged.
        """
        results, _ = await self._publish(topic_name, requests, batch=batch, partial=False)
        return results

    async def publish_partial(
        self, topic_name: str, requests: Sequence[PublishRequest]
    ) -> tuple[list[PublishResult], list[InvalidRequest]]:
        """Store a batch's valid events and report the invalid ones (partial acceptance).

        Returns:
            The stored events' acknowledgements (each with its ``index`` in the batch), and
            one error per invalid event (with its ``index``).

        Raises:
            NotFound, Conflict, StoreUnavailable: as :meth:`publish`; and InvalidRequest for
                a schema version the topic does not admit.
        """
        return await self._publish(topic_name, requests, batch=True, partial=True)

    async def _publish(
        self, topic_name: str, requests: Sequence[PublishRequest], *, batch: bool, partial: bool
    ) -> tuple[list[PublishResult], list[InvalidRequest]]:
        topic = self.catalog.find_topic(topic_name) or await self.catalog.find_topic_fresh(
            topic_name
        )
        received = self.clock.now()
        now_ms = to_ms(received)
        schemas = await self._schemas(topic, requests, batch)
        events, indices, problems = self._check_all(topic, requests, received, batch, schemas)
        if problems and not partial:
            raise self._refusal(problems, len(requests), batch)
        if not events:
            return [], problems
        result = await self.store.publish(topic, events, now_ms, self._dedup_ms)
        if result.appended:
            self.on_append(result.appended)
        if result.timers:
            self.on_timers(result.timers)
        # (result.appended may hold earlier same-key timers fired first: not new events)
        self.metrics.published.labels(topic.name).inc(sum(not s.duplicate for s in result.stored))
        acks = [self._ack(s) for s in result.stored]
        if partial:
            for ack, index in zip(acks, indices, strict=True):
                ack.index = index
        return acks, problems

    @staticmethod
    def _ack(stored: Stored) -> PublishResult:
        return PublishResult(
            id=stored.id,
            state="scheduled" if stored.partition is None else "pending",
            partition=stored.partition,
            offset=stored.offset,
            deliver_at=_ms_to_datetime(stored.deliver_at_ms),
            duplicate=stored.duplicate,
        )

    async def _schemas(
        self, topic: Topic, requests: Sequence[PublishRequest], batch: bool
    ) -> dict[int | None, Schema]:
        """The registry versions a request writes with, by requested version (``None``: the
        newest the topic admits)."""
        settings = topic.schema_settings
        if settings is None:
            return {}
        if self.registry is None:
            raise InvalidRequest(f"topic {topic.name!r} needs the schema registry")
        out: dict[int | None, Schema] = {}
        for index, req in enumerate(requests):
            wanted = req.schema_version
            if wanted in out:
                continue
            field = ("" if not batch else f"/events/{index}") + "/schema_version"
            out[wanted] = await topic_version(
                self.registry, topic, settings, wanted, field=field, index=index if batch else None
            )
        return out

    def _check_all(
        self,
        topic: Topic,
        requests: Sequence[PublishRequest],
        received: float,
        batch: bool,
        schemas: dict[int | None, Schema],
    ) -> tuple[list[NewEvent], list[int], list[InvalidRequest]]:
        """The valid events (with their indices in the request) and the problems found."""
        now_ms = to_ms(received)
        # A delay counts from when the request arrived, rounded up to the millisecond: the
        # truncated time could make it end up to 1 ms before arrival + delay.
        delay_from_ms = math.ceil(received * 1000 - 0.001)
        plain = self.catalog.validator(topic.name)
        events: list[NewEvent] = []
        indices: list[int] = []
        problems: list[InvalidRequest] = []
        for index, req in enumerate(requests):
            schema = schemas.get(req.schema_version) if schemas else None
            validator = plain if schema is None else schema.validator
            try:
                event = self._check(
                    topic, validator, req, (now_ms, delay_from_ms), index if batch else None
                )
            except InvalidRequest as e:
                if schema is not None:
                    e.schema_id, e.schema_version = schema.id, schema.version
                problems.append(e)
                continue
            if schema is not None:
                event.schema_id = schema.id
            events.append(event)
            indices.append(index)
        if problems:
            self.metrics.publish_rejected.labels(problems[0].rule or "invalid").inc()
        return events, indices, problems

    @staticmethod
    def _refusal(problems: list[InvalidRequest], count: int, batch: bool) -> InvalidRequest:
        """The error refusing a whole request for its invalid events."""
        first = problems[0]
        if not batch:
            return first
        message = (
            f"{len(problems)} of {count} events are invalid; none was stored. "
            f"First: {first.message}"
        )
        if isinstance(first, SchemaViolation):
            error = SchemaViolation(
                message,
                field=first.field or "",
                rule=first.rule or "",
                index=first.index,
                errors=problems,
            )
            error.schema_id, error.schema_version = first.schema_id, first.schema_version
            return error
        return InvalidRequest(
            message,
            field=first.field,
            rule=first.rule,
            status=first.status,
            index=first.index,
            errors=problems,
        )

    def _check(
        self,
        topic: Topic,
        validator: PayloadValidator | None,
        req: PublishRequest,
        times: tuple[int, int],
        index: int | None,
    ) -> NewEvent:
        now_ms, delay_from_ms = times
        prefix = "" if index is None else f"/events/{index}"
        payload = bytes(req.payload)
        if len(payload) > topic.max_payload_bytes:
            raise InvalidRequest(
                f"payload is {len(payload)} bytes; topic {topic.name!r} accepts at most "
                f"{topic.max_payload_bytes}",
                field=prefix + "/payload",
                rule="max_size",
                status=413,
                index=index,
            )
        # (a payload of fewer bytes than two per level cannot nest too deep: no call at all)
        if len(payload) > _SHALLOW_BYTES and nests_deeper(payload):
            raise InvalidRequest(
                f"payload nests objects and arrays deeper than {MAX_NESTING} levels",
                field=prefix + "/payload",
                rule="max_depth",
                index=index,
            )
        self._check_attributes(req, prefix, index)
        if validator is not None:
            check_payload(validator, payload, index=index, prefix=prefix)
        deliver_at_ms = self._deliver_at(req, delay_from_ms, prefix, index)
        return NewEvent(
            id=new_id(now_ms),
            partition=log_partition(
                partition_for(req.key, topic.partitions, next(self._spread)),
                req.priority,
                topic.partitions,
            ),
            key=req.key,
            attributes=req.attributes,
            payload=payload,
            publish_ms=now_ms,
            deliver_at_ms=deliver_at_ms,
            delayed=deliver_at_ms is not None and deliver_at_ms > now_ms,
            idempotency_key=req.idempotency_key,
            digest=None if req.idempotency_key is None else _digest(req),
        )

    @staticmethod
    def _check_attributes(req: PublishRequest, prefix: str, index: int | None) -> None:
        attributes = req.attributes
        if not attributes:
            return
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidRequest(
                f"at most {MAX_ATTRIBUTES} attributes are accepted, got {len(attributes)}",
                field=prefix + "/attributes",
                rule="max_properties",
                index=index,
            )
        for name, value in attributes.items():
            if not name or len(name) > MAX_ATTRIBUTE_KEY:
                raise InvalidRequest(
                    f"attribute names are 1 to {MAX_ATTRIBUTE_KEY} characters",
                    field=prefix + "/attributes",
                    rule="max_length",
                    index=index,
                )
            if len(value) > MAX_ATTRIBUTE_VALUE:
                raise InvalidRequest(
                    f"attribute {name!r} is longer than {MAX_ATTRIBUTE_VALUE} characters",
                    field=f"{prefix}/attributes/{name}",
                    rule="max_length",
                    index=index,
                )

    @staticmethod
    def _deliver_at(
        req: PublishRequest, delay_from_ms: int, prefix: str, index: int | None
    ) -> int | None:
        if req.deliver_at is not None and req.delay is not None:
            raise InvalidRequest(
                "give deliver_at or delay, not both",
                field=prefix + "/delay",
                rule="exclusive",
                index=index,
            )
        if req.delay is not None:
            return delay_from_ms + math.ceil(req.delay * 1000)
        if req.deliver_at is not None:
            when = req.deliver_at
            if when.tzinfo is None:
                raise InvalidRequest(
                    "deliver_at needs a time zone (e.g. 2030-01-01T00:00:00Z)",
                    field=prefix + "/deliver_at",
                    rule="format",
                    index=index,
                )
            # Rounded up: a time between two milliseconds is never reached early.
            due_ms = math.ceil(when.timestamp() * 1000)
            # One horizon for delay and deliver_at, so that neither reaches past the other.
            if due_ms > delay_from_ms + MAX_DELAY_SECONDS * 1000:
                raise InvalidRequest(
                    f"deliver_at is more than {MAX_DELAY_SECONDS} seconds (10 years) ahead, "
                    "the horizon of delay too",
                    field=prefix + "/deliver_at",
                    rule="maximum",
                    index=index,
                )
            return due_ms
        return None
