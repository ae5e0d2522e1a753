"""The push protocol between the delivery layer and a lambda's worker.

The platform POSTs a :class:`PushRequest` (JSON) to an endpoint's URL; the worker answers
``200`` with a :class:`PushResponse` holding one :class:`PushResult` per event it ran. An event
missing from the answer counts as ``retry``. A non-200 answer applies to the whole batch:
``429`` or ``503`` with ``Retry-After`` is a throttle (the subscription slows down and no
attempt is counted); anything else, a timeout or a broken connection is ``retry``.

An event goes out in its subscription's :class:`~conveyor.model.DeliveryFormat`, told by
:attr:`PushEvent.content_type`:

* absent (``None``): ``payload`` is the event's JSON, as stored or in a reader version;
* ``application/vnd.apache.avro`` or ``application/x-protobuf``: ``data`` holds the binary
  encoding in base64 (``payload`` is ``null``), written with the schema ``schema_id``;
* ``application/cloudevents+json``: ``payload`` is a CloudEvent in JSON structured mode
  (spec 1.0) whose ``data`` is the JSON, or whose ``data_base64`` is the binary encoding
  (its ``datacontenttype`` tells which).

Every field added since the first version has a default, and a default is never sent, so an
older worker still reads plain JSON pushes, and a newer worker reads an older platform's.

**The push's deadline.** Every push carries the ``Conveyor-Timeout`` header: the seconds the
platform waits for the answer, counted from when it sends the push. It is relative, not a
time of day, so clocks that differ between hosts do not matter. The worker counts it from the
push's arrival on its own monotonic clock, less a headroom for the answer's way back
(:func:`handler_budget`), and at that point it cancels the handler calls still running (an
``async`` handler) or stops waiting for them (a sync handler in a thread, which cannot be
stopped: whatever it returns later is ignored). It answers at once: the finished events with
their results, the others ``retry``, and ``deadline_exceeded`` set, which the platform counts
as a failed push (as it would the timeout). So no handler call the platform has given up on
is reported, and no ``async`` handler call runs past it.
"""

from __future__ import annotations

import math

import msgspec

# The push's content types are the codecs' media types (re-exported, see __all__).
from conveyor.codecs.media import (
    AVRO_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
)
from conveyor.model import Outcome

PUSH_PATH = "/conveyor/push"
SUBSCRIPTION_HEADER = "Conveyor-Subscription"
TIMEOUT_HEADER = "Conveyor-Timeout"
"""Seconds the platform waits for a push's answer, from when it sent it (a decimal number)."""

HEADROOM_SHARE = 0.1
MAX_HEADROOM = 0.5
"""The worker stops its handlers this much before the platform's timeout (a share of it, at
most ``MAX_HEADROOM`` seconds), so that its answer is back in time."""


class PushEvent(msgspec.Struct, gc=False, omit_defaults=True):
    """One event in a push.

    Attributes:
        id: the event's id.
        topic: its topic.
        partition: its partition.
        offset: its offset in the partition.
        payload: the payload's JSON.
        published_ms: publish time, ms since the epoch.
        attempt: 1 for the first delivery.
        key: the ordering key.
        attributes: string metadata.
        deliver_at_ms: the scheduled time of a delayed event.
        content_type: how the event is encoded (see the module's docstring); ``None`` for
            JSON in ``payload``.
        data: the binary encoding in base64, for an Avro or Protobuf delivery.
        schema_id: the registry schema the data follows (the reader's, when the
            subscription asks for a version), or ``None`` for an event without one.
        schema_version: that schema's version in its subject (given whenever the platform
            looked the schema up: for a topic bound to a subject, or a transcoded event).
    """

    id: str
    topic: str
    partition: int
    offset: int
    payload: msgspec.Raw
    published_ms: int
    attempt: int = 1
    key: str | None = None
    attributes: dict[str, str] | None = None
    deliver_at_ms: int | None = None
    content_type: str | None = None
    data: str | None = None
    schema_id: int | None = None
    schema_version: int | None = None


class PushRequest(msgspec.Struct):
    """A batch of events of one subscription."""

    subscription: str
    events: list[PushEvent]


class PushResult(msgspec.Struct, gc=False, omit_defaults=True):
    """The result of one event.

    Attributes:
        id: the event's id.
        status: ``success``, ``retry`` or ``fatal``.
        after: for ``retry``, seconds to wait before the next attempt.
        error: a message for a failure (truncated to 2,000 characters by the platform).
    """

    id: str
    status: Outcome
    after: float | None = None
    error: str | None = None


class PushResponse(msgspec.Struct, omit_defaults=True):
    """The worker's answer to a push.

    Attributes:
        results: one per event.
        deadline_exceeded: some handler calls did not finish within the push's deadline
            (their events are ``retry``): the platform counts the push as failed.
    """

    results: list[PushResult]
    deadline_exceeded: bool = False


def handler_budget(timeout: float) -> float:
    """Seconds a worker gives a push's handlers, from the push's arrival, when the platform
    waits ``timeout`` seconds for the answer."""
    return timeout - min(MAX_HEADROOM, timeout * HEADROOM_SHARE)


def header_seconds(value: str | None) -> float | None:
    """A header's value read as seconds (a float), or ``None`` when absent or not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_timeout(value: str | None) -> float | None:
    """The ``Conveyor-Timeout`` header's seconds, or ``None`` when absent or not a positive
    finite number (then the push has no deadline, as from an older platform)."""
    seconds = header_seconds(value)
    return seconds if seconds is not None and 0 < seconds < math.inf else None


push_request_encoder = msgspec.json.Encoder()
push_request_decoder = msgspec.json.Decoder(PushRequest)
push_response_decoder = msgspec.json.Decoder(PushResponse)

__all__ = [
    "AVRO_CONTENT_TYPE",
    "CLOUDEVENTS_CONTENT_TYPE",
    "HEADROOM_SHARE",
    "JSON_CONTENT_TYPE",
    "MAX_HEADROOM",
    "PROTOBUF_CONTENT_TYPE",
    "PUSH_PATH",
    "SUBSCRIPTION_HEADER",
    "TIMEOUT_HEADER",
    "PushEvent",
    "PushRequest",
    "PushResponse",
    "PushResult",
    "handler_budget",
    "parse_timeout",
    "push_request_decoder",
    "push_request_encoder",
    "push_response_decoder",
]
