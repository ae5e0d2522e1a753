"""The blocking form of the batching publisher, for threads and synchronous code.

:class:`Publisher` runs an :class:`AsyncClient` and an :class:`AsyncPublisher` on an event
loop in a daemon thread of its own. Any number of threads may call :meth:`Publisher.publish`
(blocks until the event is durable) or :meth:`Publisher.submit` (returns a
:class:`concurrent.futures.Future` at once) at the same time: their events share batches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar, Unpack

from conveyor._client.async_client import AsyncClient
from conveyor._client.batching import AsyncPublisher, BatchSettings
from conveyor._client.publish import PublishOptions, build_request
from conveyor._resource import Resource
from conveyor.wire.schemas import PublishRequest, PublishResult

__all__ = ["Publisher"]

T = TypeVar("T")


class Publisher(Resource):
    """Batches single publishes from any thread into batch requests.

    Get one from :meth:`Client.publisher`; use it as a context manager, or call
    :meth:`close`, which sends what is buffered and waits for every answer.

    Args:
        base_url: the node's URL.
        timeout: seconds one batch request may take in all.
        settings: how it batches (see :class:`BatchSettings`).
    """

    def __init__(self, base_url: str, *, timeout: float, settings: BatchSettings) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = AsyncClient(base_url, timeout=timeout)
        self._publisher = AsyncPublisher(self._client, settings)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="conveyor-publisher", daemon=True
        )
        self._thread.start()
        self._closed = False
        self._lock = threading.Lock()

    @property
    def settings(self) -> BatchSettings:
        """How it batches."""
        return self._publisher.settings

    def publish(
        self,
        topic: str,
        payload: object,
        **options: Unpack[PublishOptions],
    ) -> PublishResult:
        """Publish one event through the next batch; it is durable when this returns.

        Takes and raises what :meth:`Client.publish` does; waits first while
        ``max_pending`` events are pending.

        Raises:
            RuntimeError: the publisher is closed.
        """
        request = build_request(payload, **options)
        return self._call(self._publisher.publish_request(topic, request)).result()

    def submit(
        self,
        topic: str,
        payload: object,
        **options: Unpack[PublishOptions],
    ) -> concurrent.futures.Future[PublishResult]:
        """Queue one event; the future resolves (or raises) as :meth:`publish` would.

        The future raises :class:`~conveyor.errors.PublisherFull` when ``max_pending``
        events were already pending.

        Raises:
            RuntimeError: the publisher is closed.
            TypeError, ValueError: as :meth:`Client.publish`, at once.
        """
        request = build_request(payload, **options)
        out: concurrent.futures.Future[PublishResult] = concurrent.futures.Future()
        with self._lock:
            self._check_open()
            self._loop.call_soon_threadsafe(self._submit, topic, request, out)
        return out

    def flush(self) -> None:
        """Send every buffered event now and wait until every pending one has its answer."""
        self._call(self._publisher.flush()).result()

    def close(self) -> None:
        """Flush, close the HTTP session and stop the thread; calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    async def _shut(self) -> None:
        try:
            await self._publisher.aclose()
        finally:
            await self._client.aclose()

    def _call(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._closed:
                coro.close()  # never awaited: close it so that it does not warn
                self._check_open()
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the publisher is closed")

    def _submit(
        self, topic: str, request: PublishRequest, out: concurrent.futures.Future[PublishResult]
    ) -> None:
        # On the loop's thread: queue the event and copy its outcome into ``out``.
        try:
            future = self._publisher.submit_request(topic, request)
        except Exception as e:  # noqa: BLE001 - PublisherFull or closed: the caller's to see
            out.set_exception(e)
            return

        def copy(done: asyncio.Future[PublishResult]) -> None:
            if done.cancelled():
                out.cancel()
            elif (error := done.exception()) is not None:
                out.set_exception(error)
            else:
                out.set_result(done.result())

        future.add_done_callback(copy)
