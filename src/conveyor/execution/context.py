"""The metadata of the event a handler is running for."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from conveyor.codecs.media import JSON_CONTENT_TYPE
from conveyor.wire.push import PushEvent


class EventContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a handler may know about its event besides the payload.

    A handler receives it when it declares a parameter after the payload annotated
    ``EventContext`` or named ``ctx`` or ``event``.

    Attributes:
        id: the event's id.
        topic: its topic.
        partition: the partition it was appended to.
        offset: its offset in that partition.
        key: the ordering key, or ``None``.
        attributes: string metadata (empty when the event has none).
        attempt: 1 for the first delivery.
        published_at: when the publish was acknowledged (UTC).
        deliver_at: the scheduled time of a delayed event (UTC), else ``None``.
        subscription: the subscription that pushed the event.
        content_type: the data's content type: ``application/json``,
            ``application/vnd.apache.avro`` or ``application/x-protobuf`` (for a CloudEvent,
            its ``datacontenttype``).
        schema_id: the registry schema the data follows (the reader version's, when the
            subscription asks for one), or ``None``.
        schema_version: that schema's version in its subject, or ``None``.
        cloudevent: the CloudEvent's attributes (``specversion``, ``id``, ``source``,
            ``type``, ``time``, ``subject``, ``datacontenttype``, ``dataschema`` and the
            extensions) when the subscription delivers CloudEvents, else ``None``.
    """

    id: str
    topic: str
    partition: int
    offset: int
    key: str | None
    attributes: dict[str, str]
    attempt: int
    published_at: datetime
    deliver_at: datetime | None
    subscription: str
    content_type: str = JSON_CONTENT_TYPE
    schema_id: int | None = None
    schema_version: int | None = None
    cloudevent: dict[str, str] | None = None

    @classmethod
    def from_push(
        cls,
        event: PushEvent,
        subscription: str,
        *,
        content_type: str | None = None,
        cloudevent: dict[str, str] | None = None,
    ) -> EventContext:
        """Build the context of one pushed event.

        Args:
            event: the event as the platform pushed it.
            subscription: the push's subscription.
            content_type: the data's content type, when not the push's own (a CloudEvent's
                ``datacontenttype``); ``None``: the push's, or JSON.
            cloudevent: the CloudEvent's attributes, for an event pushed as one.

        Returns:
            The event's context.
        """
        deliver_at = event.deliver_at_ms
        return cls(
            id=event.id,
            topic=event.topic,
            partition=event.partition,
            offset=event.offset,
            key=event.key,
            attributes=event.attributes or {},
            attempt=event.attempt,
            published_at=_utc(event.published_ms),
            deliver_at=None if deliver_at is None else _utc(deliver_at),
            subscription=subscription,
            content_type=content_type or event.content_type or JSON_CONTENT_TYPE,
            schema_id=event.schema_id,
            schema_version=event.schema_version,
            cloudevent=cloudevent,
        )


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


__all__ = ["EventContext"]
