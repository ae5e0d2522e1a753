"""The push protocol between the delivery layer and a lambda's worker.

The platform POSTs a :class:`PushRequest` (JSON) to an endpoint's URL; the worker answers
``200`` with a :class:`PushResponse` holding one :class:`PushResult` per event it ran. An event
missing from the answer counts as ``retry``. A non-200 answer applies to the whole batch:
``429`` or ``503`` with ``Retry-After`` is a throttle (the subscription slows down and no
attempt is counted); anything else, a timeout or a broken connection is ``retry``.
"""

from __future__ import annotations

import msgspec

from conveyor.model import Outcome

PUSH_PATH = "/conveyor/push"
SUBSCRIPTION_HEADER = "Conveyor-Subscription"


class PushEvent(msgspec.Struct, omit_defaults=True):
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


class PushRequest(msgspec.Struct):
    """A batch of events of one subscription."""

    subscription: str
    events: list[PushEvent]


class PushResult(msgspec.Struct, omit_defaults=True):
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
