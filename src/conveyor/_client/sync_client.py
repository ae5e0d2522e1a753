"""The blocking client: a thin wrapper that runs :class:`AsyncClient` on a private loop.

Invariant: no method body is restated here. Each blocking method is made by
:func:`_blocking` from the :class:`AsyncClient` method of the same name; it keeps that
method's parameters, types, defaults and docstring (``functools.wraps``), so a change to
the async client reaches the blocking one by itself. Only what has no async twin is written
out: the context manager, :meth:`Client.close` and :meth:`Client.publisher` (a publisher
on a thread of its own).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Concatenate, ParamSpec, TypeVar

from conveyor._client.async_client import DEFAULT_BASE_URL, AsyncClient
from conveyor._client.batching import BatchSettings
from conveyor._client.threaded import Publisher
from conveyor._resource import Resource

__all__ = ["Client"]

P = ParamSpec("P")
T = TypeVar("T")
_DEFAULT_BATCH = BatchSettings()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[object, object, T]],
) -> Callable[Concatenate[Client, P], T]:
    """The blocking form of an :class:`AsyncClient` method: same parameters, same answer."""

    @functools.wraps(method)
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self._client, *args, **kwargs))

    return call


class Client(Resource):
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

    def close(self) -> None:
        """Close the HTTP session and the private loop; calling it again does nothing."""
        if self._closed:
            return
        try:
            self._run(self._client.aclose())
        finally:
            self._closed = True
            self._runner.close()

    def publisher(
        self,
        *,
        linger: float = _DEFAULT_BATCH.linger,
        max_events: int = _DEFAULT_BATCH.max_events,
        max_bytes: int = _DEFAULT_BATCH.max_bytes,
        max_in_flight: int = _DEFAULT_BATCH.max_in_flight,
        max_pending: int = _DEFAULT_BATCH.max_pending,
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

    health = _blocking(AsyncClient.health)
    # topics
    create_topic = _blocking(AsyncClient.create_topic)
    put_topic = _blocking(AsyncClient.put_topic)
    get_topic = _blocking(AsyncClient.get_topic)
    list_topics = _blocking(AsyncClient.list_topics)
    # subscriptions and their run-time gates
    create_subscription = _blocking(AsyncClient.create_subscription)
    put_subscription = _blocking(AsyncClient.put_subscription)
    get_subscription = _blocking(AsyncClient.get_subscription)
    list_subscriptions = _blocking(AsyncClient.list_subscriptions)
    delete_subscription = _blocking(AsyncClient.delete_subscription)
    pause = _blocking(AsyncClient.pause)
    resume = _blocking(AsyncClient.resume)
    purge = _blocking(AsyncClient.purge)
    set_rate_limit = _blocking(AsyncClient.set_rate_limit)
    clear_rate_limit = _blocking(AsyncClient.clear_rate_limit)
    # events
    publish = _blocking(AsyncClient.publish)
    publish_batch = _blocking(AsyncClient.publish_batch)
    publish_batch_partial = _blocking(AsyncClient.publish_batch_partial)
    publish_encoded = _blocking(AsyncClient.publish_encoded)
    publish_cloudevent = _blocking(AsyncClient.publish_cloudevent)
    get_event = _blocking(AsyncClient.get_event)
    # lambdas and endpoints
    register_endpoint = _blocking(AsyncClient.register_endpoint)
    deregister_endpoint = _blocking(AsyncClient.deregister_endpoint)
    list_lambdas = _blocking(AsyncClient.list_lambdas)
    # dead letters
    dead_letters = _blocking(AsyncClient.dead_letters)
    dead_letter = _blocking(AsyncClient.dead_letter)
    redrive = _blocking(AsyncClient.redrive)
    purge_dead_letters = _blocking(AsyncClient.purge_dead_letters)
    # releases
    list_releases = _blocking(AsyncClient.list_releases)
    promote_release = _blocking(AsyncClient.promote_release)
    rollback_release = _blocking(AsyncClient.rollback_release)
    get_release_policy = _blocking(AsyncClient.get_release_policy)
    set_release_policy = _blocking(AsyncClient.set_release_policy)
    # the schema registry
    register_schema = _blocking(AsyncClient.register_schema)
    check_schema = _blocking(AsyncClient.check_schema)
    list_subjects = _blocking(AsyncClient.list_subjects)
    get_schema = _blocking(AsyncClient.get_schema)
    get_schema_by_id = _blocking(AsyncClient.get_schema_by_id)
    set_compatibility = _blocking(AsyncClient.set_compatibility)
    get_compatibility = _blocking(AsyncClient.get_compatibility)
