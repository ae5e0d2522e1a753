"""The blocking client: a thin wrapper that runs :class:`AsyncClient` on a private loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar

from conveyor._client.async_client import DEFAULT_BASE_URL, AsyncClient
from conveyor._client.batching import BatchSettings
from conveyor._client.threaded import Publisher
from conveyor.model import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_PARTITIONS,
    DEFAULT_RETENTION_SECONDS,
    Control,
    DeliveryFormat,
    Priority,
    RetryPolicy,
    SchemaSettings,
    SchemaType,
    Subscription,
    Topic,
)
from conveyor.wire.dead_letters import DEFAULT_PAGE, DeadLetter, DeadLetterCount, DeadLetterPage
from conveyor.wire.registry import (
    Compatibility,
    CompatibilityView,
    Registered,
    SchemaView,
    SubjectView,
)
from conveyor.wire.releases import LambdaReleases, ReleasePolicy
from conveyor.wire.schemas import (
    BatchPublishResult,
    EndpointInfo,
    EventView,
    Health,
    LambdaInfo,
    PublishRequest,
    PublishResult,
    SubscriptionInfo,
)

__all__ = ["Client"]

T = TypeVar("T")


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Client:
    """The blocking form of :class:`AsyncClient`, for scripts and synchronous code.

    It owns an event loop of its own that runs one :class:`AsyncClient`; every method does
    what the :class:`AsyncClient` method of the same name does, and raises the same errors.
    Use it from one thread at a time, and never from inside a running event loop (use
    :class:`AsyncClient` there). Use it as a context manager, or call :meth:`close`.

    Args:
        base_url: the node's URL, optionally with a path prefix.
        timeout: seconds one request may take in all.

    Raises:
        ValueError: the URL is not absolute http(s), or the timeout is not positive.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0) -> None:
        self._client = AsyncClient(base_url, timeout=timeout)
        self._timeout = timeout
        self._runner = asyncio.Runner()
        self._closed = False

    def _run(self, call: Coroutine[object, object, T]) -> T:
        """Run one of the async client's calls to completion on the private loop."""
        if self._closed or _in_event_loop():
            call.close()  # never awaited: close it so that it does not warn
            if self._closed:
                raise RuntimeError("the Conveyor client is closed")
            raise RuntimeError("Client cannot run inside an event loop; use AsyncClient")
        return self._runner.run(call)

    @property
    def base_url(self) -> str:
        """The node's URL, as given."""
        return self._client.base_url

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and the private loop; calling it again does nothing."""
        if self._closed:
            return
        try:
            self._run(self._client.aclose())
        finally:
            self._closed = True
            self._runner.close()

    def health(self) -> Health:
        """See :meth:`AsyncClient.health`."""
        return self._run(self._client.health())

    def create_topic(
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
        """See :meth:`AsyncClient.create_topic`."""
        return self._run(
            self._client.create_topic(
                name,
                partitions=partitions,
                schema=schema,
                max_payload_bytes=max_payload_bytes,
                retention_seconds=retention_seconds,
                exist_ok=exist_ok,
                schema_settings=schema_settings,
            )
        )

    def put_topic(self, topic: Topic) -> Topic:
        """See :meth:`AsyncClient.put_topic`."""
        return self._run(self._client.put_topic(topic))

    def get_topic(self, name: str) -> Topic:
        """See :meth:`AsyncClient.get_topic`."""
        return self._run(self._client.get_topic(name))

    def list_topics(self) -> list[Topic]:
        """See :meth:`AsyncClient.list_topics`."""
        return self._run(self._client.list_topics())

    def create_subscription(
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
        """See :meth:`AsyncClient.create_subscription`."""
        return self._run(
            self._client.create_subscription(
                name,
                topic,
                lambda_name,
                ordered=ordered,
                max_concurrency=max_concurrency,
                min_concurrency=min_concurrency,
                adaptive=adaptive,
                max_batch=max_batch,
                max_batch_bytes=max_batch_bytes,
                max_wait=max_wait,
                push_timeout=push_timeout,
                retry=retry,
                dead_letter_topic=dead_letter_topic,
                control=control,
                format=format,
                filter=filter,
                locality=locality,
            )
        )

    def put_subscription(self, sub: Subscription) -> SubscriptionInfo:
        """See :meth:`AsyncClient.put_subscription`."""
        return self._run(self._client.put_subscription(sub))

    def get_subscription(self, name: str) -> SubscriptionInfo:
        """See :meth:`AsyncClient.get_subscription`."""
        return self._run(self._client.get_subscription(name))

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        """See :meth:`AsyncClient.list_subscriptions`."""
        return self._run(self._client.list_subscriptions())

    def delete_subscription(self, name: str) -> None:
        """See :meth:`AsyncClient.delete_subscription`."""
        return self._run(self._client.delete_subscription(name))

    def pause(self, name: str) -> SubscriptionInfo:
        """See :meth:`AsyncClient.pause`."""
        return self._run(self._client.pause(name))

    def resume(self, name: str) -> SubscriptionInfo:
        """See :meth:`AsyncClient.resume`."""
        return self._run(self._client.resume(name))

    def purge(self, name: str) -> SubscriptionInfo:
        """See :meth:`AsyncClient.purge`."""
        return self._run(self._client.purge(name))

    def set_rate_limit(self, name: str, per_second: float, *, burst: int = 1) -> SubscriptionInfo:
        """See :meth:`AsyncClient.set_rate_limit`."""
        return self._run(self._client.set_rate_limit(name, per_second, burst=burst))

    def clear_rate_limit(self, name: str) -> SubscriptionInfo:
        """See :meth:`AsyncClient.clear_rate_limit`."""
        return self._run(self._client.clear_rate_limit(name))

    def publish(
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
        """See :meth:`AsyncClient.publish`."""
        return self._run(
            self._client.publish(
                topic,
                payload,
                key=key,
                attributes=attributes,
                delay=delay,
                deliver_at=deliver_at,
                idempotency_key=idempotency_key,
                priority=priority,
                schema_version=schema_version,
            )
        )

    def publisher(
        self,
        *,
        linger: float = 0.005,
        max_events: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
        max_in_flight: int = 4,
        max_pending: int = 100_000,
    ) -> Publisher:
        """A publisher that gathers single publishes, from any thread, into batch requests.

        It runs on a thread of its own (this client stays one-thread-at-a-time); see
        :meth:`AsyncClient.publisher` for the settings::

            with client.publisher() as publisher:
                futures = [publisher.submit("orders", o) for o in orders]
                results = [f.result() for f in futures]

        Raises:
            ValueError: a setting is out of range.
        """
        settings = BatchSettings(linger, max_events, max_bytes, max_in_flight, max_pending)
        return Publisher(self._client.base_url, timeout=self._timeout, settings=settings)

    def publish_batch(
        self, topic: str, events: Sequence[PublishRequest | Mapping[str, object]]
    ) -> list[PublishResult]:
        """See :meth:`AsyncClient.publish_batch`."""
        return self._run(self._client.publish_batch(topic, events))

    def publish_batch_partial(
        self, topic: str, events: Sequence[PublishRequest | Mapping[str, object]]
    ) -> BatchPublishResult:
        """See :meth:`AsyncClient.publish_batch_partial`."""
        return self._run(self._client.publish_batch_partial(topic, events))

    def get_event(self, event_id: str) -> EventView:
        """See :meth:`AsyncClient.get_event`."""
        return self._run(self._client.get_event(event_id))

    def register_endpoint(
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
        """See :meth:`AsyncClient.register_endpoint`."""
        return self._run(
            self._client.register_endpoint(
                lambda_name,
                endpoint_id,
                url,
                ttl_seconds=ttl_seconds,
                concurrency=concurrency,
                locality=locality,
                version=version,
                static=static,
                health_url=health_url,
            )
        )

    def deregister_endpoint(self, lambda_name: str, endpoint_id: str) -> None:
        """See :meth:`AsyncClient.deregister_endpoint`."""
        return self._run(self._client.deregister_endpoint(lambda_name, endpoint_id))

    def list_lambdas(self) -> list[LambdaInfo]:
        """See :meth:`AsyncClient.list_lambdas`."""
        return self._run(self._client.list_lambdas())

    def dead_letters(
        self,
        subscription: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> DeadLetterPage:
        """See :meth:`AsyncClient.dead_letters`."""
        return self._run(
            self._client.dead_letters(
                subscription, since=since, until=until, error=error, after=after, limit=limit
            )
        )

    def dead_letter(self, subscription: str, event_id: str) -> DeadLetter:
        """See :meth:`AsyncClient.dead_letter`."""
        return self._run(self._client.dead_letter(subscription, event_id))

    def redrive(
        self,
        subscription: str,
        event_ids: Sequence[str] | None = None,
        *,
        all: bool = False,  # the wire's name (shadows the builtin in this method only)
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
    ) -> DeadLetterCount:
        """See :meth:`AsyncClient.redrive`."""
        return self._run(
            self._client.redrive(
                subscription, event_ids, all=all, since=since, until=until, error=error
            )
        )

    def purge_dead_letters(
        self,
        subscription: str,
        event_ids: Sequence[str] | None = None,
        *,
        all: bool = False,  # the wire's name (shadows the builtin in this method only)
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
    ) -> int:
        """See :meth:`AsyncClient.purge_dead_letters`."""
        return self._run(
            self._client.purge_dead_letters(
                subscription, event_ids, all=all, since=since, until=until, error=error
            )
        )

    # -- releases --------------------------------------------------------------------------
    def list_releases(self, lambda_name: str) -> LambdaReleases:
        """See :meth:`AsyncClient.list_releases`."""
        return self._run(self._client.list_releases(lambda_name))

    def promote_release(self, lambda_name: str, version: str) -> LambdaReleases:
        """See :meth:`AsyncClient.promote_release`."""
        return self._run(self._client.promote_release(lambda_name, version))

    def rollback_release(self, lambda_name: str, version: str) -> LambdaReleases:
        """See :meth:`AsyncClient.rollback_release`."""
        return self._run(self._client.rollback_release(lambda_name, version))

    def get_release_policy(self, lambda_name: str) -> ReleasePolicy:
        """See :meth:`AsyncClient.get_release_policy`."""
        return self._run(self._client.get_release_policy(lambda_name))

    def set_release_policy(self, lambda_name: str, policy: ReleasePolicy) -> ReleasePolicy:
        """See :meth:`AsyncClient.set_release_policy`."""
        return self._run(self._client.set_release_policy(lambda_name, policy))

    # -- schema registry -------------------------------------------------------------------
    def register_schema(
        self,
        subject: str,
        schema: str | Mapping[str, object],
        *,
        type: SchemaType | str = SchemaType.JSON,  # the wire's name
        message: str | None = None,
    ) -> Registered:
        """See :meth:`AsyncClient.register_schema`."""
        return self._run(self._client.register_schema(subject, schema, type=type, message=message))

    def check_schema(
        self,
        subject: str,
        schema: str | Mapping[str, object],
        *,
        type: SchemaType | str = SchemaType.JSON,  # the wire's name
        message: str | None = None,
    ) -> CompatibilityView:
        """See :meth:`AsyncClient.check_schema`."""
        return self._run(self._client.check_schema(subject, schema, type=type, message=message))

    def list_subjects(self) -> list[SubjectView]:
        """See :meth:`AsyncClient.list_subjects`."""
        return self._run(self._client.list_subjects())

    def get_schema(self, subject: str, version: int | str = "latest") -> SchemaView:
        """See :meth:`AsyncClient.get_schema`."""
        return self._run(self._client.get_schema(subject, version))

    def get_schema_by_id(self, schema_id: int) -> SchemaView:
        """See :meth:`AsyncClient.get_schema_by_id`."""
        return self._run(self._client.get_schema_by_id(schema_id))

    def set_compatibility(
        self, mode: Compatibility | str | None, *, subject: str | None = None
    ) -> Compatibility:
        """See :meth:`AsyncClient.set_compatibility`."""
        return self._run(self._client.set_compatibility(mode, subject=subject))

    def get_compatibility(self, *, subject: str | None = None) -> Compatibility:
        """See :meth:`AsyncClient.get_compatibility`."""
        return self._run(self._client.get_compatibility(subject=subject))

    # -- formats in ------------------------------------------------------------------------
    def publish_encoded(
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
        """See :meth:`AsyncClient.publish_encoded`."""
        return self._run(
            self._client.publish_encoded(
                topic,
                data,
                content_type,
                key=key,
                attributes=attributes,
                delay=delay,
                deliver_at=deliver_at,
                priority=priority,
                schema_version=schema_version,
                idempotency_key=idempotency_key,
            )
        )

    def publish_cloudevent(self, topic: str, event: Mapping[str, object]) -> PublishResult:
        """See :meth:`AsyncClient.publish_cloudevent`."""
        return self._run(self._client.publish_cloudevent(topic, event))
