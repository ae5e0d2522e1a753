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
"""

from __future__ import annotations

import msgspec

from conveyor.model import Outcome

PUSH_PATH = "/conveyor/push"
SUBSCRIPTION_HEADER = "Conveyor-Subscription"

JSON_CONTENT_TYPE = "application/json"
AVRO_CONTENT_TYPE = "application/vnd.apache.avro"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


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


class PushResponse(msgspec.Struct):
    """The worker's answer to a push."""

    results: list[PushResult]


push_request_encoder = msgspec.json.Encoder()
push_request_decoder = msgspec.json.Decoder(PushRequest)
push_response_decoder = msgspec.json.Decoder(PushResponse)
