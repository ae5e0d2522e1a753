"""Typed decoding of the rows the SQL store reads.

A DB-API row is a tuple of ``object``; each query shape has a decoder here that checks and
converts its columns into the store's types (SQLite and psycopg return ``int``, ``str``,
``bytes`` and ``None`` for the columns Conveyor uses). A column of another type is a broken
schema, reported as a ``TypeError`` naming the value, never carried on as a wrong type.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from conveyor.model import Attempt, Event, Subscription, Topic
from conveyor.store._specs import decode_spec
from conveyor.store.records import (
    CursorState,
    DeliveryRow,
    Endpoint,
    NewEvent,
    Ranges,
    StoredRelease,
    StoredSchema,
)

Row = tuple[object, ...]

SCHEMA_COLUMNS = "id, subject, version, type, definition, message, fingerprint, created_ms"
LOG_COLUMNS = "part, off, id, key, attrs, payload, publish_ms, deliver_at_ms, schema_id"
ROW_COLUMNS = "part, off, key, state, attempts, next_ms, last_error, history, updated_ms"
RELEASE_COLUMNS = "version, state, started_ms, decided_ms, reason, figures"
ENDPOINT_COLUMNS = "lambda, id, url, expires_ms, concurrency, locality, version, static, health_url"
TIMER_COLUMNS = "id, topic_id, part, due_ms, key, attrs, payload, publish_ms, schema_id"

_topic_codec = msgspec.json.Decoder(Topic)
_sub_codec = msgspec.json.Decoder(Subscription)
_attrs_decoder = msgspec.json.Decoder(dict[str, str])
_history_decoder = msgspec.msgpack.Decoder(list[Attempt])
_ranges_decoder = msgspec.msgpack.Decoder(list[tuple[int, int]])


# -- columns --------------------------------------------------------------------------------
def as_int(v: object) -> int:
    """An integer column (``int`` from both drivers; text or numeric from an aggregate)."""
    if isinstance(v, int):
        return v
    if isinstance(v, str | bytes | Decimal | float):
        return int(v)
    raise TypeError(f"an integer column holds {v!r}")


def as_opt_int(v: object) -> int | None:
    return None if v is None else as_int(v)


def as_opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def as_bytes(v: object) -> bytes:
    """A binary column (``bytes``; a ``memoryview`` or ``bytearray`` is copied)."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    raise TypeError(f"a binary column holds {v!r}")


def as_opt_bytes(v: object) -> bytes | None:
    return None if v is None else as_bytes(v)


# -- query shapes ---------------------------------------------------------------------------
def as_json(v: object) -> bytes | str:
    """A JSON column (written as bytes; text where an older build wrote text)."""
    return v if isinstance(v, str) else as_bytes(v)


def topic_of(spec: object) -> Topic:
    return decode_spec(as_json(spec), _topic_codec, Topic)


def subscription_of(spec: object) -> Subscription:
    return decode_spec(as_json(spec), _sub_codec, Subscription)


def attrs_of(blob: object) -> dict[str, str] | None:
    if isinstance(blob, bytes):
        return _attrs_decoder.decode(blob)
    return None if blob is None else _attrs_decoder.decode(as_json(blob))


def delivery_row(r: Row) -> DeliveryRow:
    """A row of ``SELECT {ROW_COLUMNS}``."""
    part, off, key, state, attempts, next_ms, last_error, history, updated_ms = r
    return DeliveryRow(
        partition=as_int(part),
        offset=as_int(off),
        key=as_opt_str(key),
        state=str(state),
        attempts=as_int(attempts),
        next_ms=as_opt_int(next_ms),
        last_error=as_opt_str(last_error),
        history=_history_decoder.decode(as_bytes(history)) if history else [],
        updated_ms=as_int(updated_ms),
    )


def event_of(topic: str, r: Row) -> Event:
    """A row of ``SELECT {LOG_COLUMNS}`` as the event of ``topic``."""
    part, off, eid, key, attrs, payload, publish_ms, deliver_at_ms, schema_id = r
    # The common case checked inline: this runs once per event the runners read.
    if (
        isinstance(eid, str)
        and isinstance(part, int)
        and isinstance(off, int)
        and (key is None or isinstance(key, str))
        and isinstance(payload, bytes)
        and isinstance(publish_ms, int)
        and (deliver_at_ms is None or isinstance(deliver_at_ms, int))
        and (schema_id is None or isinstance(schema_id, int))
    ):
        attributes = None if attrs is None else attrs_of(attrs)
        return Event(
            eid, topic, part, off, key, attributes, payload, publish_ms, deliver_at_ms, schema_id
        )
    return Event(
        str(eid),
        topic,
        as_int(part),
        as_int(off),
        as_opt_str(key),
        attrs_of(attrs),
        as_bytes(payload),
        as_int(publish_ms),
        as_opt_int(deliver_at_ms),
        as_opt_int(schema_id),
    )


def timer_event(r: Row) -> tuple[int, int, NewEvent, object]:
    """A row of ``… RETURNING {TIMER_COLUMNS}``: (due, topic id, the event, its raw attrs)."""
    eid, tid, part, due, key, attrs, payload, publish_ms, schema_id = r
    due_ms = as_int(due)
    event = NewEvent(
        str(eid),
        as_int(part),
        as_opt_str(key),
        attrs_of(attrs),
        as_bytes(payload),
        as_int(publish_ms),
        due_ms,
        False,
        schema_id=as_opt_int(schema_id),
    )
    return due_ms, as_int(tid), event, attrs


def schema_of(r: Row) -> StoredSchema:
    """A row of ``SELECT {SCHEMA_COLUMNS}``."""
    sid, subject, version, kind, definition, message, fingerprint, created_ms = r
    return StoredSchema(
        as_int(sid),
        str(subject),
        as_int(version),
        str(kind),
        str(definition),
        as_opt_str(message),
        str(fingerprint),
        as_int(created_ms),
    )


def cursor_state(cur: object, acked: object, start: object) -> CursorState:
    ranges: Ranges = list(_ranges_decoder.decode(as_bytes(acked))) if acked else []
    return CursorState(as_int(cur), ranges, as_int(start))


def endpoint_of(r: Row) -> Endpoint:
    """A row of ``SELECT {ENDPOINT_COLUMNS}``."""
    lambda_name, endpoint_id, url, expires_ms, concurrency, locality, version, static, health = r
    return Endpoint(
        str(lambda_name),
        str(endpoint_id),
        str(url),
        as_int(expires_ms),
        as_int(concurrency),
        str(locality),
        str(version),
        bool(static),
        str(health),
    )


def release_of(r: Row) -> StoredRelease:
    """A row of ``SELECT {RELEASE_COLUMNS}``."""
    version, state, started_ms, decided_ms, reason, figures = r
    return StoredRelease(
        str(version),
        str(state),
        as_int(started_ms),
        as_opt_int(decided_ms),
        str(reason),
        None if figures is None else str(figures).encode(),
    )
