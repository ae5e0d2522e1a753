"""The asynchronous client of Conveyor's HTTP API."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import quote

import aiohttp
import msgspec

from conveyor._client.batching import AsyncPublisher, BatchSettings
from conveyor._client.checks import checked
from conveyor._client.dlq import listing_query, selection
from conveyor._client.errors import error_from_answer
from conveyor._client.http import Answer, HttpSession, _segment
from conveyor._client.publish import build_request, encode_payload, request_from_mapping
from conveyor._client.releases import ReleaseMethods
from conveyor._resource import AsyncResource
from conveyor.errors import Conflict, ConveyorError
from conveyor.model import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_PARTITIONS,
    DEFAULT_RETENTION_SECONDS,
    Control,
    DeliveryFormat,
    Priority,
    RateLimit,
    RetryPolicy,
    SchemaSettings,
    SchemaType,
    Subscription,
    Topic,
)
from conveyor.wire.dead_letters import DEFAULT_PAGE, DeadLetter, DeadLetterCount, DeadLetterPage
from conveyor.wire.registry import (
    Compatibility,
    CompatibilitySetting,
    CompatibilityView,
    Registered,
    SchemaRequest,
    SchemaView,
    SubjectView,
)
from conveyor.wire.schemas import (
    BatchPublishRequest,
    BatchPublishResult,
    EndpointInfo,
    EndpointRegistration,
    EventView,
    Health,
    LambdaInfo,
    PublishRequest,
    PublishResult,
    SubscriptionInfo,
)

__all__ = ["DEFAULT_BASE_URL", "AsyncClient"]

DEFAULT_BASE_URL = "http://127.0.0.1:8400"
_CREATED = 201

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_HEALTH = msgspec.json.Decoder(Health)
_TOPIC = msgspec.json.Decoder(Topic)
_TOPICS = msgspec.json.Decoder(list[Topic])
_SUBSCRIPTION = msgspec.json.Decoder(SubscriptionInfo)
_SUBSCRIPTIONS = msgspec.json.Decoder(list[SubscriptionInfo])
_PUBLISHED = msgspec.json.Decoder(PublishResult)
_BATCH_PUBLISHED = msgspec.json.Decoder(BatchPublishResult)
_EVENT = msgspec.json.Decoder(EventView)
_ENDPOINT = msgspec.json.Decoder(EndpointInfo)
_LAMBDAS = msgspec.json.Decoder(list[LambdaInfo])
_DEAD_LETTER_PAGE = msgspec.json.Decoder(DeadLetterPage)
_DEAD_LETTER = msgspec.json.Decoder(DeadLetter)
_COUNT = msgspec.json.Decoder(DeadLetterCount)
_REGISTERED = msgspec.json.Decoder(Registered)
_COMPATIBILITY = msgspec.json.Decoder(CompatibilityView)
_SUBJECTS = msgspec.json.Decoder(list[SubjectView])
_SCHEMA = msgspec.json.Decoder(SchemaView)
_SETTING = msgspec.json.Decoder(CompatibilitySetting)
# An attribute name that can travel as a header name and keep its case (HTTP does not).
_HEADER_TOKEN = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+", re.ASCII)


class AsyncClient(ReleaseMethods, AsyncResource):
    """A client of one Conveyor node, over one pooled keep-alive HTTP session.

    Use it as an async context manager, or call :meth:`aclose` when done. Every method may
    raise, besides what it lists, :class:`~conveyor.errors.ConveyorError` when the node cannot
    be reached or does not answer within ``timeout`` (chained from aiohttp's error),
    :class:`~conveyor.errors.StoreUnavailable` on a 5xx answer (nothing was stored; retry),
    :class:`~conveyor.errors.RateLimited` on a 429, and :class:`RuntimeError` once closed.
    An :class:`~conveyor.errors.InvalidRequest` it raises also has ``errors``: every problem
    the server listed, each an :class:`~conveyor.errors.InvalidRequest`.
    A topic, subscription, rate limit, endpoint or release policy that breaks a rule the
    server checks (a number past its bound, say) is refused before it is sent, with the
    error the server would answer.

    Args:
        base_url: the node's URL, optionally with a path prefix.
        timeout: seconds one request may take in all.

    Raises:
        ValueError: the URL is not absolute http(s), or the timeout is not positive.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0) -> None:
        self._http = HttpSession(base_url, timeout=timeout)

    @property
    def base_url(self) -> str:
        """The node's URL, as given."""
        return self._http.base_url

    async def aclose(self) -> None:
        """Close the HTTP session; calling it again does nothing."""
        await self._http.aclose()

    async def health(self) -> Health:
        """Ask the node for its health.

        Returns:
            Its status (``ok``, or ``failing`` with the ``problems`` that make it fail:
            the store refuses writes, delayed events are overdue), version and store.
        """
        answer = await self._http.request("GET", ["health"], also_ok=(503,))
        return self._http.decode(answer, _HEALTH)

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        schema: Mapping[str, object] | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        exist_ok: bool = True,
        schema_settings: SchemaSettings | None = None,
    ) -> Topic:
        """Create a topic, or accept it as it is when it exists with this very definition.

        Args:
            name: the topic's name.
            partitions: how many partitions (1 to 256).
            schema: a JSON Schema (draft 2020-12) that every payload must conform to.
            max_payload_bytes: the largest payload accepted, in bytes of JSON.
            retention_seconds: how long finished events are kept.
            exist_ok: accept an existing topic with the same definition; when ``False``,
                any existing topic is a conflict.
            schema_settings: bind the topic to a registry subject (excludes ``schema``).

        Raises:
            Conflict: the topic exists with another definition, or exists and not
                ``exist_ok``.
            InvalidRequest: a value breaks a rule (``field`` and ``rule`` name it).

        Returns:
            The topic as stored.
        """
        topic = Topic(
            name=name,
            partitions=partitions,
            schema=dict(schema) if schema is not None else None,
            max_payload_bytes=max_payload_bytes,
            retention_seconds=retention_seconds,
            schema_settings=schema_settings,
        )
        answer = await self._http.request("POST", ["topics"], checked(topic))
        # The server answers 200, not 201, when an identical topic already exists.
        if answer.status != _CREATED and not exist_ok:
            raise Conflict(f"topic {name!r} already exists")
        return self._http.decode(answer, _TOPIC)

    async def put_topic(self, topic: Topic) -> Topic:
        """Create a topic or replace its definition.

        Raises:
            InvalidRequest: a value breaks a rule, or the change is not allowed.

        Returns:
            The topic as stored.
        """
        answer = await self._http.request("PUT", ["topics", topic.name], checked(topic))
        return self._http.decode(answer, _TOPIC)

    async def get_topic(self, name: str) -> Topic:
        """Read a topic's definition.

        Raises:
            NotFound: there is no such topic.

        Returns:
            The topic.
        """
        return self._http.decode(await self._http.request("GET", ["topics", name]), _TOPIC)

    async def list_topics(self) -> list[Topic]:
        """List every topic.

        Returns:
            The topics, in the server's order.
        """
        return self._http.decode(await self._http.request("GET", ["topics"]), _TOPICS)

    async def create_subscription(
        self,
        name: str,
        topic: str,
        lambda_name: str,
        *,
        ordered: bool = False,
        max_concurrency: int = 512,
        min_concurrency: int = 1,
        adaptive: bool = False,
        max_batch: int = 256,
        max_batch_bytes: int = 4 * 1024 * 1024,
        max_wait: float = 0.0,
        push_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        dead_letter_topic: str | None = None,
        control: Control | None = None,
        format: DeliveryFormat | None = None,  # the wire's name
        filter: Mapping[str, object] | None = None,  # the wire's name
        locality: Sequence[str] = (),
    ) -> SubscriptionInfo:
        """Subscribe a lambda to a topic; see :class:`~conveyor.model.Subscription`.

        Args:
            name: the subscription's name.
            topic: the topic it reads.
            lambda_name: the lambda whose endpoints receive the pushes.
            ordered: deliver the events of one key one at a time, in log order.
            max_concurrency: events in flight at once, at most.
            min_concurrency: the least the adaptive limit falls to.
            adaptive: move the limit with the lambda's latency, errors and throttles.
            max_batch: events in one push.
            max_batch_bytes: payload bytes in one push, at most.
            max_wait: seconds a push may wait to fill up to ``max_batch``.
            push_timeout: seconds to wait for a push's answer.
            retry: the retry policy; ``RetryPolicy()`` when ``None``.
            dead_letter_topic: a topic that receives the events that went dead.
            control: the initial run-time gates (paused, rate limit); kept by later
                replacements of the subscription.
            format: what the lambda receives (encoding, CloudEvents, reader schema
                version); plain JSON as stored when ``None``.
            filter: an EventBridge-style pattern; events that do not match are never
                pushed (docs/flow-control.md).
            locality: the places whose endpoints it prefers, most preferred first
                (``cloud/region/zone`` or a prefix); empty: the dispatching node's own.

        Raises:
            NotFound: the topic (or dead-letter topic) does not exist.
            Conflict: the subscription exists with another definition.
            InvalidRequest: a value breaks a rule.

        Returns:
            The subscription with its live figures.
        """
        subscription = Subscription(
            name=name,
            topic=topic,
            lambda_name=lambda_name,
            ordered=ordered,
            max_concurrency=max_concurrency,
            min_concurrency=min_concurrency,
            adaptive=adaptive,
            max_batch=max_batch,
            max_batch_bytes=max_batch_bytes,
            max_wait=max_wait,
            push_timeout=push_timeout,
            retry=retry if retry is not None else RetryPolicy(),
            dead_letter_topic=dead_letter_topic,
            control=control if control is not None else Control(),
            format=format if format is not None else DeliveryFormat(),
            filter=None if filter is None else dict(filter),
            locality=list(locality),
        )
        answer = await self._http.request("POST", ["subscriptions"], checked(subscription))
        return self._http.decode(answer, _SUBSCRIPTION)

    async def put_subscription(self, sub: Subscription) -> SubscriptionInfo:
        """Create a subscription or replace its definition.

        Raises:
            NotFound: its topic does not exist.
            InvalidRequest: a value breaks a rule, or the change is not allowed.

        Returns:
            The subscription with its live figures.
        """
        answer = await self._http.request("PUT", ["subscriptions", sub.name], checked(sub))
        return self._http.decode(answer, _SUBSCRIPTION)

    async def get_subscription(self, name: str) -> SubscriptionInfo:
        """Read a subscription and its live figures.

        Raises:
            NotFound: there is no such subscription.

        Returns:
            The subscription with its live figures.
        """
        answer = await self._http.request("GET", ["subscriptions", name])
        return self._http.decode(answer, _SUBSCRIPTION)

    async def list_subscriptions(self) -> list[SubscriptionInfo]:
        """List every subscription with its live figures.

        Returns:
            The subscriptions, in the server's order.
        """
        answer = await self._http.request("GET", ["subscriptions"])
        return self._http.decode(answer, _SUBSCRIPTIONS)

    async def delete_subscription(self, name: str) -> None:
        """Delete a subscription; its pending deliveries stop.

        Raises:
            NotFound: there is no such subscription.
        """
        await self._http.request("DELETE", ["subscriptions", name])

    async def pause(self, name: str) -> SubscriptionInfo:
        """Pause a subscription's pushes; its backlog keeps growing and stays visible.

        Raises:
            NotFound: there is no such subscription.
        """
        return await self._control(name, "POST", "pause")

    async def resume(self, name: str) -> SubscriptionInfo:
        """Resume a paused subscription.

        Raises:
            NotFound: there is no such subscription.
        """
        return await self._control(name, "POST", "resume")

    async def purge(self, name: str) -> SubscriptionInfo:
        """Drain to drop: every event published until now is dropped unpushed.

        Raises:
            NotFound: there is no such subscription.

        Returns:
            The subscription with its live figures, and in ``purged`` how many unfinished
            events (backlog and retrying) the purge drops.
        """
        return await self._control(name, "POST", "purge")

    async def set_rate_limit(
        self, name: str, per_second: float, *, burst: int = 1
    ) -> SubscriptionInfo:
        """Limit a subscription to ``per_second`` events pushed, ``burst`` at once.

        Raises:
            NotFound: there is no such subscription.
            InvalidRequest: a value breaks a rule.
        """
        limit = checked(RateLimit(per_second=per_second, burst=burst))
        return await self._control(name, "PUT", "rate-limit", limit)

    async def clear_rate_limit(self, name: str) -> SubscriptionInfo:
        """Remove a subscription's rate limit.

        Raises:
            NotFound: there is no such subscription.
        """
        return await self._control(name, "DELETE", "rate-limit")

    async def _control(
        self, name: str, method: str, action: str, body: msgspec.Struct | None = None
    ) -> SubscriptionInfo:
        answer = await self._http.request(method, ["subscriptions", name, action], body)
        return self._http.decode(answer, _SUBSCRIPTION)

    async def publish(
        self,
        topic: str,
        payload: object,
        *,
        key: str | None = None,
        attributes: Mapping[str, str] | None = None,
        delay: float | timedelta | None = None,
        deliver_at: datetime | None = None,
        idempotency_key: str | None = None,
        priority: Priority | str = Priority.NORMAL,
        schema_version: int | None = None,
    ) -> PublishResult:
        """Publish one event; it is durable when this returns.

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
        request = build_request(
            payload,
            key=key,
            attributes=attributes,
            delay=delay,
            deliver_at=deliver_at,
            idempotency_key=idempotency_key,
            priority=priority,
            schema_version=schema_version,
        )
        return await self.publish_request(topic, request)

    async def publish_request(self, topic: str, request: PublishRequest) -> PublishResult:
        """Publish one event already built as a :class:`PublishRequest`; see :meth:`publish`."""
        answer = await self._http.request("POST", ["topics", topic, "events"], request)
        return self._http.decode(answer, _PUBLISHED)

    def publisher(
        self,
        *,
        linger: float = 0.005,
        max_events: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
        max_in_flight: int = 4,
        max_pending: int = 100_000,
    ) -> AsyncPublisher:
        """A publisher that gathers this client's single publishes into batch requests.

        Each ``await publisher.publish(...)`` still returns its own event's result once it is
        durable, and raises its own event's error; events of one key keep their order (see
        :mod:`conveyor._client.batching` and docs/publishing.md)::

            async with client.publisher() as publisher:
                await asyncio.gather(*(publisher.publish("orders", o) for o in orders))

        Args:
            linger: seconds the first event of a batch waits for others.
            max_events: events in one request, at most.
            max_bytes: bytes of events in one request, about.
            max_in_flight: batch requests awaiting their answer at once.
            max_pending: events buffered or in flight, at most (``publish`` waits beyond it).

        Raises:
            ValueError: a setting is out of range.
        """
        settings = BatchSettings(linger, max_events, max_bytes, max_in_flight, max_pending)
        return AsyncPublisher(self, settings)

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

    async def register_endpoint(
        self,
        lambda_name: str,
        endpoint_id: str,
        url: str,
        *,
        ttl_seconds: float = 15.0,
        concurrency: int = 64,
        locality: str = "",
        version: str = "",
        static: bool = False,
        health_url: str = "",
    ) -> EndpointInfo:
        """Register a worker's endpoint for a lambda, or renew it (a heartbeat); or add a
        static endpoint by URL (``static=True``: it never expires).

        Args:
            lambda_name: the lambda it serves.
            endpoint_id: the endpoint's id, stable across renewals.
            url: where pushes are POSTed.
            ttl_seconds: the endpoint expires when not renewed within this time.
            concurrency: events the worker runs at once (a hint for balancing).
            locality: where it runs, ``cloud/region/zone`` (or a prefix).
            version: the version of the lambda it runs (a new one starts a release).
            static: added by hand: it never expires and needs no heartbeat.
            health_url: where the platform's active probes GET its health.

        Raises:
            InvalidRequest: a value breaks a rule.

        Returns:
            The endpoint, with its expiry and health.
        """
        registration = EndpointRegistration(
            url=url,
            ttl_seconds=ttl_seconds,
            concurrency=concurrency,
            locality=locality,
            version=version,
            static=static,
            health_url=health_url,
        )
        answer = await self._http.request(
            "PUT", ["lambdas", lambda_name, "endpoints", endpoint_id], checked(registration)
        )
        return self._http.decode(answer, _ENDPOINT)

    async def deregister_endpoint(self, lambda_name: str, endpoint_id: str) -> None:
        """Remove a worker's endpoint; no more pushes are sent to it."""
        await self._http.request("DELETE", ["lambdas", lambda_name, "endpoints", endpoint_id])

    async def list_lambdas(self) -> list[LambdaInfo]:
        """List every lambda with its live endpoints.

        Returns:
            The lambdas, in the server's order.
        """
        return self._http.decode(await self._http.request("GET", ["lambdas"]), _LAMBDAS)

    async def dead_letters(
        self,
        subscription: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> DeadLetterPage:
        """Read a page of a subscription's dead letters, by partition and offset.

        Args:
            subscription: the subscription's name.
            since: only those that went dead at or after this time (timezone-aware).
            until: only those that went dead before this time (timezone-aware).
            error: only those whose last error contains this text, ignoring case.
            after: the ``next`` of the page before, for the page after it.
            limit: dead letters at most in the page (1 to 1,000).

        Raises:
            ValueError: ``since`` or ``until`` is naive.
            NotFound: there is no such subscription.
            InvalidRequest: a value breaks a rule (``field`` is ``/query/<name>``).

        Returns:
            The page: its ``items`` (without their history) and the ``next`` cursor, which
            is ``None`` on the last page.
        """
        query = listing_query(since=since, until=until, error=error, after=after, limit=limit)
        answer = await self._http.request(
            "GET", ["subscriptions", subscription, "dead-letters"], query=query
        )
        return self._http.decode(answer, _DEAD_LETTER_PAGE)

    async def dead_letter(self, subscription: str, event_id: str) -> DeadLetter:
        """Read one dead letter with its payload and whole attempt history.

        Raises:
            NotFound: no such subscription or event, or the event is not dead for the
                subscription (it never was, or was redriven or purged).

        Returns:
            The dead letter.
        """
        answer = await self._http.request(
            "GET", ["subscriptions", subscription, "dead-letters", event_id]
        )
        return self._http.decode(answer, _DEAD_LETTER)

    async def redrive(
        self,
        subscription: str,
        event_ids: Sequence[str] | None = None,
        *,
        all: bool = False,  # the wire's name (shadows the builtin in this method only)
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
    ) -> DeadLetterCount:
        """Send dead letters back to their subscription, delivered again from attempt 1.

        Dead letters published before the subscription's :meth:`purge` stay dead (the purge
        would drop them unpushed at once); ``before_purge`` counts them.

        Args:
            subscription: the subscription's name.
            event_ids: these dead letters; those no longer dead are skipped.
            all: every dead letter instead, narrowed by ``since``, ``until`` and ``error``.
            since: with ``all``: only those that went dead at or after this time.
            until: with ``all``: only those that went dead before this time.
            error: with ``all``: only those whose last error contains this text, ignoring
                case.

        Raises:
            ValueError: neither ``event_ids`` nor ``all``, or both, or an empty
                ``event_ids``, or a filter with ``event_ids``, or a naive time.
            NotFound: there is no such subscription.
            InvalidRequest: an id names no event of the subscription's topic (``errors``
                lists each, ``field`` ``/event_ids/<index>``); nothing was sent back.

        Returns:
            How many were sent back (``count``), and how many were left dead for the
            subscription's purge (``before_purge``).
        """
        chosen = selection(event_ids, all=all, since=since, until=until, error=error)
        answer = await self._http.request(
            "POST", ["subscriptions", subscription, "dead-letters:redrive"], chosen
        )
        return self._http.decode(answer, _COUNT)

    async def purge_dead_letters(
        self,
        subscription: str,
        event_ids: Sequence[str] | None = None,
        *,
        all: bool = False,  # the wire's name (shadows the builtin in this method only)
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
    ) -> int:
        """Drop dead letters: they read ``dropped`` and are never delivered again.

        Takes the arguments of :meth:`redrive`, and raises the same errors.

        Returns:
            How many were dropped.
        """
        chosen = selection(event_ids, all=all, since=since, until=until, error=error)
        answer = await self._http.request(
            "POST", ["subscriptions", subscription, "dead-letters:purge"], chosen
        )
        return self._http.decode(answer, _COUNT).count

    # -- schema registry -------------------------------------------------------------------
    async def register_schema(
        self,
        subject: str,
        schema: str | Mapping[str, object],
        *,
        type: SchemaType | str = SchemaType.JSON,  # the wire's name
        message: str | None = None,
    ) -> Registered:
        """Register a schema as a subject's next version.

        Args:
            subject: the subject.
            schema: JSON Schema or Avro as JSON text or a mapping; Protobuf as ``.proto``
                text or a base64 ``FileDescriptorSet``.
            type: ``json``, ``avro`` or ``protobuf``.
            message: for Protobuf, the message's full name.

        Raises:
            InvalidRequest: the schema does not parse (field ``/schema``).
            IncompatibleSchema: it breaks the subject's compatibility mode; ``errors``
                lists each breaking change with its ``field``, ``rule``, ``old``, ``new``.

        Returns:
            Its id and version; ``created`` is false when an identical version existed.
        """
        body = _schema_request(schema, type, message)
        answer = await self._http.request("POST", ["subjects", subject, "versions"], body)
        return self._http.decode(answer, _REGISTERED)

    async def check_schema(
        self,
        subject: str,
        schema: str | Mapping[str, object],
        *,
        type: SchemaType | str = SchemaType.JSON,  # the wire's name
        message: str | None = None,
    ) -> CompatibilityView:
        """Dry run: would this schema be accepted as the subject's next version?"""
        body = _schema_request(schema, type, message)
        answer = await self._http.request("POST", ["subjects", subject, "check"], body)
        return self._http.decode(answer, _COMPATIBILITY)

    async def list_subjects(self) -> list[SubjectView]:
        """Every subject with its mode in force and its versions."""
        answer = await self._http.request("GET", ["subjects"])
        return self._http.decode(answer, _SUBJECTS)

    async def get_schema(self, subject: str, version: int | str = "latest") -> SchemaView:
        """A subject's version by number, or its latest.

        Raises:
            NotFound: no such subject or version.
        """
        answer = await self._http.request("GET", ["subjects", subject, "versions", str(version)])
        return self._http.decode(answer, _SCHEMA)

    async def get_schema_by_id(self, schema_id: int) -> SchemaView:
        """A schema by its registry id.

        Raises:
            NotFound: no schema has that id.
        """
        answer = await self._http.request("GET", ["schemas", str(schema_id)])
        return self._http.decode(answer, _SCHEMA)

    async def set_compatibility(
        self, mode: Compatibility | str | None, *, subject: str | None = None
    ) -> Compatibility:
        """Set a subject's compatibility mode (``None``: back to the default), or, without
        ``subject``, the registry's default. Returns the mode now in force."""
        path = ["config", "compatibility"] if subject is None else ["subjects", subject]
        if subject is not None:
            path.append("compatibility")
        setting = CompatibilitySetting(None if mode is None else Compatibility(mode))
        answer = await self._http.request("PUT", path, setting)
        result = self._http.decode(answer, _SETTING).compatibility
        assert result is not None
        return result

    async def get_compatibility(self, *, subject: str | None = None) -> Compatibility:
        """The compatibility mode in force for a subject, or the registry's default."""
        path = ["config", "compatibility"] if subject is None else ["subjects", subject]
        if subject is not None:
            path.append("compatibility")
        answer = await self._http.request("GET", path)
        result = self._http.decode(answer, _SETTING).compatibility
        assert result is not None
        return result

    # -- formats in ------------------------------------------------------------------------
    async def publish_encoded(
        self,
        topic: str,
        data: bytes,
        content_type: str,
        *,
        key: str | None = None,
        attributes: Mapping[str, str] | None = None,
        delay: float | timedelta | None = None,
        deliver_at: datetime | None = None,
        priority: Priority | str = Priority.NORMAL,
        schema_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> PublishResult:
        """Publish one event whose data is already encoded: Avro or Protobuf binary for a
        topic bound to a registry subject of that type (the server decodes it to JSON), or
        JSON. The metadata travels in ``Conveyor-*`` headers (see docs/schemas.md).

        Args:
            topic: the topic's name.
            data: the encoded data (Avro: the datum alone, no container or framing).
            content_type: ``application/vnd.apache.avro``, ``application/x-protobuf``, or
                ``application/json`` (then ``data`` is the payload's JSON); a CloudEvents
                type publishes ``data`` as that CloudEvent, without the other arguments.
            key, attributes, delay, deliver_at, priority, idempotency_key: as for
                :meth:`publish`. Attribute names must be lower-case HTTP header tokens.
            schema_version: the version of the topic's subject ``data`` is written with
                (default: the newest the topic admits).

        Raises:
            ValueError: as for :meth:`publish`; an attribute name that is not a lower-case
                header token; metadata given with a CloudEvents type.
            NotFound: the topic does not exist.
            InvalidRequest: the data does not decode with the schema (``field``
                ``/payload``, ``rule`` ``decode``), the content type does not fit the topic
                (415), or a value breaks a rule (``field`` names its header).
            SchemaViolation: the decoded data is off the schema.
            Conflict: the idempotency key was used for another event.

        Returns:
            The event's id and where it stands.
        """
        media = content_type.partition(";")[0].strip().lower()
        if media == "application/json":
            return await self.publish(
                topic,
                msgspec.Raw(data),
                key=key,
                attributes=attributes,
                delay=delay,
                deliver_at=deliver_at,
                idempotency_key=idempotency_key,
                priority=priority,
                schema_version=schema_version,
            )
        request = build_request(
            None,
            key=key,
            attributes=attributes,
            delay=delay,
            deliver_at=deliver_at,
            idempotency_key=idempotency_key,
            priority=priority,
            schema_version=schema_version,
        )
        headers = _metadata_headers(request)
        if media.startswith("application/cloudevents") and headers:
            raise ValueError("a CloudEvent carries its metadata as attributes, not arguments")
        headers["Content-Type"] = content_type
        return await self._post_bytes(["topics", topic, "events"], data, headers)

    async def publish_cloudevent(self, topic: str, event: Mapping[str, object]) -> PublishResult:
        """Publish one CloudEvent (structured mode, ``application/cloudevents+json``).

        Its attributes become the event's ``ce-*`` attributes; ``partitionkey`` is its key;
        ``conveyordelay`` (seconds), ``conveyordeliverat`` (RFC 3339) and
        ``conveyorpriority`` set when and in which lane it goes; ``source`` and ``id`` make
        its idempotency key (the same event published twice is stored once).

        Args:
            topic: the topic's name.
            event: the CloudEvent; ``specversion`` defaults to ``1.0``. ``data`` may be any
                JSON-encodable value, or bytes (sent as ``data_base64``; Avro or Protobuf
                when ``datacontenttype`` says so).

        Raises:
            TypeError: the event cannot be encoded as JSON.
            NotFound: the topic does not exist.
            InvalidRequest: a required attribute is missing (``field`` names it), or its data
                does not fit the topic.
            SchemaViolation: its data is off the topic's schema (``field`` under ``/data``).
            Conflict: its source and id were published with another event.

        Returns:
            The event's id and where it stands (``duplicate`` for a replay).
        """
        body = {"specversion": "1.0", **event}
        data = body.get("data")
        if isinstance(data, bytes | bytearray | memoryview):
            del body["data"]
            body["data_base64"] = base64.b64encode(data).decode()
        headers = {"Content-Type": "application/cloudevents+json"}
        return await self._post_bytes(
            ["topics", topic, "events"], bytes(encode_payload(body)), headers
        )

    async def _post_bytes(
        self, path: Sequence[str], data: bytes, headers: Mapping[str, str]
    ) -> PublishResult:
        """POST a body that is not a JSON Struct (HttpSession.request sends only those)."""
        http = self._http
        root = http._root
        url = root.with_path("/".join([root.raw_path, *map(_segment, path)]), encoded=True)
        sent = {"Accept": "application/json", "User-Agent": "conveyor-client", **headers}
        try:
            async with http._open().post(url, data=data, headers=sent) as response:
                content = await response.read()
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as e:
            raise ConveyorError(f"no answer from Conveyor at {self.base_url} in time") from e
        except aiohttp.ClientError as e:
            raise ConveyorError(f"cannot reach Conveyor at {self.base_url}: {e}") from e
        if response.status >= 400:
            raise error_from_answer(
                response.status, content, resource=url.path, retry_after=retry_after
            )
        return self._http.decode(Answer(response.status, content), _PUBLISHED)


def _metadata_headers(request: PublishRequest) -> dict[str, str]:
    """A request's metadata as ``Conveyor-*`` headers; text that may be anything is
    percent-encoded (the server decodes it)."""
    headers: dict[str, str] = {}
    if request.key is not None:
        headers["Conveyor-Key"] = quote(request.key, safe="")
    if request.delay is not None:
        headers["Conveyor-Delay"] = repr(float(request.delay))
    if request.deliver_at is not None:
        headers["Conveyor-Deliver-At"] = request.deliver_at.isoformat()
    if request.priority is not Priority.NORMAL:
        headers["Conveyor-Priority"] = request.priority.value
    if request.schema_version is not None:
        headers["Conveyor-Schema-Version"] = str(request.schema_version)
    if request.idempotency_key is not None:
        headers["Idempotency-Key"] = request.idempotency_key
    for name, value in (request.attributes or {}).items():
        if not _HEADER_TOKEN.fullmatch(name):
            raise ValueError(
                f"attribute name {name!r} cannot be a header name: use lower-case letters, "
                "digits and !#$%&'*+-.^_`|~"
            )
        headers[f"Conveyor-Attr-{name}"] = quote(value, safe="")
    return headers


def _schema_request(
    schema: str | Mapping[str, object], kind: SchemaType | str, message: str | None
) -> SchemaRequest:
    text = schema if isinstance(schema, str) else msgspec.json.encode(dict(schema)).decode()
    return SchemaRequest(schema=text, type=SchemaType(kind), message=message)
