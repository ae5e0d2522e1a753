"""The event methods of :class:`~conveyor.AsyncClient`: publish one or a batch of JSON events,
read an event back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Unpack

import msgspec

from conveyor._client.http import HttpSession
from conveyor._client.publish import build_request, request_from_mapping
from conveyor.options import PublishOptions
from conveyor.wire.schemas import (
    BatchPublishRequest,
    BatchPublishResult,
    EventView,
    PublishRequest,
    PublishResult,
)

__all__ = ["EventMethods"]

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_PUBLISHED = msgspec.json.Decoder(PublishResult)
_BATCH_PUBLISHED = msgspec.json.Decoder(BatchPublishResult)
_EVENT = msgspec.json.Decoder(EventView)


class EventMethods:
    """Publishing JSON events (one, or a batch) and reading an event back.

    Mixed into :class:`AsyncClient`.
    """

    _http: HttpSession

    async def publish(
        self,
        topic: str,
        payload: object,
        **options: Unpack[PublishOptions],
    ) -> PublishResult:
        """Publish one event; it is durable when this returns.

        The options are :class:`~conveyor.options.PublishOptions`, each optional.

        Args:
            topic: the topic's name.
            payload: a JSON-encodable value, a msgspec Struct, a dataclass or a pydantic
                model (dumped with ``mode="json"``), or a ``msgspec.Raw`` of JSON.
            key: ordering key; the events of one key share a partition and keep their order.
            attributes: string metadata (at most 64 entries).
            delay: seconds (or a timedelta) from now before delivery.
            deliver_at: the earliest delivery time, timezone-aware.
            idempotency_key: a retried publish with the same key returns the first result
                (with ``duplicate=True``) instead of storing the event again.
            priority: ``high``, ``normal`` or ``low``: the lane it travels in.
            schema_version: for a topic bound to a registry subject, the version the
                payload is written with (default: the newest the topic admits).

        Raises:
            TypeError: the payload cannot be encoded as JSON.
            ValueError: both ``delay`` and ``deliver_at`` are given, or ``deliver_at`` is
                naive.
            NotFound: the topic does not exist.
            SchemaViolation: the payload is off the topic's schema.
            InvalidRequest: another value breaks a rule (413 for a payload too large).
            Conflict: the idempotency key was used for another event.

        Returns:
            The event's id and where it stands.
        """
        request = build_request(payload, **options)
        return await self.publish_request(topic, request)

    async def publish_request(self, topic: str, request: PublishRequest) -> PublishResult:
        """Publish one event already built as a :class:`PublishRequest`; see :meth:`publish`."""
        answer = await self._http.request("POST", ["topics", topic, "events"], request)
        return self._http.decode(answer, _PUBLISHED)

    async def publish_batch(
        self, topic: str, events: Sequence[PublishRequest | Mapping[str, object]]
    ) -> list[PublishResult]:
        """Publish events atomically: all are stored, or none is.

        Args:
            topic: the topic's name.
            events: requests, or mappings with the keys ``payload`` (required), ``key``,
                ``attributes``, ``delay``, ``deliver_at``, ``idempotency_key`` and
                ``priority``, which
                mean what :meth:`publish`'s arguments do.

        Raises:
            TypeError: a mapping has an unknown key, no payload, or a value of the wrong
                type, or a payload cannot be encoded as JSON.
            ValueError: an event has both ``delay`` and ``deliver_at``, or a naive
                ``deliver_at``.
            NotFound: the topic does not exist.
            InvalidRequest: an event is invalid (a
                :class:`~conveyor.errors.SchemaViolation` when off the schema); its
                ``errors`` give each bad event's ``index``. Nothing was stored.

        Returns:
            The results, in the order of ``events``.
        """
        requests = [
            event if isinstance(event, PublishRequest) else request_from_mapping(event, index)
            for index, event in enumerate(events)
        ]
        answer = await self._http.request(
            "POST", ["topics", topic, "events", "batch"], BatchPublishRequest(events=requests)
        )
        return self._http.decode(answer, _BATCH_PUBLISHED).results

    async def publish_batch_partial(
        self, topic: str, events: Sequence[PublishRequest | Mapping[str, object]]
    ) -> BatchPublishResult:
        """Publish a batch's valid events; the invalid ones are reported, not stored.

        Takes what :meth:`publish_batch` takes.

        Returns:
            The stored events (each with its ``index`` in ``events``) and, in ``rejected``,
            one error per invalid event (with its ``index``, ``field`` and ``rule``).
        """
        requests = [
            event if isinstance(event, PublishRequest) else request_from_mapping(event, index)
            for index, event in enumerate(events)
        ]
        answer = await self._http.request(
            "POST",
            ["topics", topic, "events", "batch"],
            BatchPublishRequest(events=requests),
            query={"partial": "true"},
        )
        return self._http.decode(answer, _BATCH_PUBLISHED)

    async def get_event(self, event_id: str) -> EventView:
        """Read an event and where it stands for each subscription of its topic.

        Raises:
            NotFound: there is no such event (or it is past its topic's retention).

        Returns:
            The event, its payload as raw JSON (``msgspec.json.decode(view.payload)``).
        """
        return self._http.decode(await self._http.request("GET", ["events", event_id]), _EVENT)
