"""Turn a caller's payload and options into the wire's :class:`PublishRequest`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import msgspec

from conveyor.model import Priority
from conveyor.options import PublishOptions
from conveyor.wire.schemas import PublishRequest

__all__ = [
    "EventFields",
    "PublishOptions",
    "build_request",
    "encode_payload",
    "request_from_mapping",
]


def _encode_model(value: object) -> object:
    """Lower a value msgspec does not know; pydantic models are found by duck typing.

    Duck typing keeps pydantic optional: it is never imported here.
    """
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        dumped: object = model_dump(mode="json")
        return dumped
    raise TypeError(f"cannot encode {type(value).__qualname__} as JSON")


# Invariant: one encoder per process; msgspec encoders are stateless and thread-safe.
_PAYLOAD_ENCODER = msgspec.json.Encoder(enc_hook=_encode_model)


def encode_payload(payload: object) -> msgspec.Raw:
    """Encode a payload to JSON once, so the request carries it verbatim.

    Args:
        payload: a JSON-encodable value, a msgspec Struct, a dataclass, a pydantic model
            (dumped with ``mode="json"``), any of those nested, or a ``msgspec.Raw`` of JSON
            that is sent as is.

    Raises:
        TypeError: the payload holds a value that cannot be encoded as JSON.

    Returns:
        The payload's JSON.
    """
    if isinstance(payload, msgspec.Raw):
        return payload
    try:
        return msgspec.Raw(_PAYLOAD_ENCODER.encode(payload))
    except (TypeError, msgspec.EncodeError) as e:
        raise TypeError(f"payload is not JSON-encodable: {e}") from e


def build_request(
    payload: object,
    *,
    key: str | None = None,
    attributes: Mapping[str, str] | None = None,
    delay: float | timedelta | None = None,
    deliver_at: datetime | None = None,
    idempotency_key: str | None = None,
    priority: Priority | str = Priority.NORMAL,
    schema_version: int | None = None,
) -> PublishRequest:
    """Build one event's request; see :meth:`conveyor.client.AsyncClient.publish`.

    Limits (key length, attribute count, delay range) are the server's to check, so that
    one place states them.

    Raises:
        TypeError: the payload cannot be encoded as JSON.
        ValueError: both ``delay`` and ``deliver_at`` are given, ``deliver_at`` is naive,
            or ``priority`` is not ``high``, ``normal`` or ``low``.

    Returns:
        The request, its payload already encoded.
    """
    if delay is not None and deliver_at is not None:
        raise ValueError("pass delay or deliver_at, not both")
    if deliver_at is not None and deliver_at.utcoffset() is None:
        raise ValueError("deliver_at must be timezone-aware, e.g. datetime.now(UTC)")
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    return PublishRequest(
        payload=encode_payload(payload),
        key=key,
        attributes=dict(attributes) if attributes is not None else None,
        deliver_at=deliver_at,
        delay=delay,
        idempotency_key=idempotency_key,
        priority=Priority(priority),
        schema_version=schema_version,
    )


class EventFields(msgspec.Struct, forbid_unknown_fields=True):
    """The keys a mapping may give for one event of a batch."""

    payload: object
    key: str | None = None
    attributes: dict[str, str] | None = None
    delay: float | timedelta | None = None
    deliver_at: datetime | None = None
    idempotency_key: str | None = None
    priority: Priority = Priority.NORMAL
    schema_version: int | None = None


def request_from_mapping(event: Mapping[str, object], index: int) -> PublishRequest:
    """Build one batch event's request from a mapping of :class:`EventFields`' keys.

    Args:
        event: ``payload`` (required), ``key``, ``attributes``, ``delay``, ``deliver_at``,
            ``idempotency_key``, ``priority``, ``schema_version``.
        index: the event's position in the batch, for messages.

    Raises:
        TypeError: a key is unknown, ``payload`` is missing, or a value has the wrong type.
        ValueError: as :func:`build_request`.

    Returns:
        The request.
    """
    if "payload" not in event:
        raise TypeError(f"events[{index}] has no 'payload'")
    try:
        fields = msgspec.convert(dict(event), EventFields)
    except msgspec.ValidationError as e:
        raise TypeError(f"events[{index}]: {e}") from e
    return build_request(
        fields.payload,
        key=fields.key,
        attributes=fields.attributes,
        delay=fields.delay,
        deliver_at=fields.deliver_at,
        idempotency_key=fields.idempotency_key,
        priority=fields.priority,
        schema_version=fields.schema_version,
    )
