"""The asynchronous client of Conveyor's HTTP API.

:class:`AsyncClient` is assembled from one part per resource, each a mixin over the
client's :class:`~conveyor._client.http.HttpSession` in a module of its own: topics,
subscriptions, events (JSON, and encoded data or CloudEvents), lambdas and endpoints, dead
letters, releases and the schema registry. This module holds what is not a resource: the
session's life, health, and the batching publisher.
"""

from __future__ import annotations

import msgspec

from conveyor._client.batching import AsyncPublisher, BatchSettings
from conveyor._client.dead_letters import DeadLetterMethods
from conveyor._client.encoded import EncodedPublishMethods
from conveyor._client.http import HttpSession
from conveyor._client.lambdas import LambdaMethods
from conveyor._client.releases import ReleaseMethods
from conveyor._client.schemas import SchemaMethods
from conveyor._client.subscriptions import SubscriptionMethods
from conveyor._client.topics import TopicMethods
from conveyor._resource import AsyncResource
from conveyor.wire.schemas import (
    Health,
)

__all__ = ["DEFAULT_BASE_URL", "AsyncClient"]

DEFAULT_BASE_URL = "http://127.0.0.1:8400"
_DEFAULT_BATCH = BatchSettings()

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_HEALTH = msgspec.json.Decoder(Health)


class AsyncClient(
    TopicMethods,
    SubscriptionMethods,
    EncodedPublishMethods,
    LambdaMethods,
    DeadLetterMethods,
    ReleaseMethods,
    SchemaMethods,
    AsyncResource,
):
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

    def publisher(
        self,
        *,
        linger: float = _DEFAULT_BATCH.linger,
        max_events: int = _DEFAULT_BATCH.max_events,
        max_bytes: int = _DEFAULT_BATCH.max_bytes,
        max_in_flight: int = _DEFAULT_BATCH.max_in_flight,
        max_pending: int = _DEFAULT_BATCH.max_pending,
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
