"""A publisher that gathers single publishes into batch requests (the SDK's hop, batched).

Every :meth:`AsyncClient.publish` is one HTTP request, one transaction, one answer: at a few
thousand events a second from many coroutines that fixed cost is most of the work
(``docs/performance.md``). :class:`AsyncPublisher` takes the same calls and sends them as
``POST /v1/topics/{topic}/events/batch?partial=true``, one request per topic per *linger*
(or sooner, once ``max_events`` or ``max_bytes`` are waiting), with up to ``max_in_flight``
requests at once — what Kafka's producer calls ``linger.ms`` and Pub/Sub's client its batch
settings.

Invariants:

* **Each call gets its own answer.** A call's future resolves with its event's
  :class:`PublishResult` only after the batch holding it was acknowledged, i.e. stored
  durably; an invalid event fails its own call (with the field and rule), never its
  batch-mates. A batch refused as a whole for an idempotency conflict is sent again one
  event at a time, so that only the conflicting call fails; any other failure of a request
  (the node unreachable, the store unavailable) fails every call of that batch, since
  whether it was stored is unknown only for a lost answer — use idempotency keys to retry.
* **Per-key order.** Events of one key published through one publisher are stored in call
  order: a batch waits to be sent until no earlier batch of the same topic holding one of its
  keys is still in flight.
* **Bounded memory.** At most ``max_pending`` events are buffered or in flight;
  :meth:`AsyncPublisher.publish` waits for room, :meth:`AsyncPublisher.submit` raises
  :class:`~conveyor.errors.PublisherFull`.
* **Nothing left behind.** :meth:`AsyncPublisher.aclose` (or leaving ``async with``) sends
  what is buffered and waits for every answer.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Unpack

from conveyor._client.publish import PublishOptions, build_request
from conveyor._resource import AsyncResource
from conveyor.clock import Clock, SystemClock, TimerHandle
from conveyor.errors import (
    Conflict,
    ConveyorError,
    InvalidRequest,
    PublisherFull,
    SchemaViolation,
)
from conveyor.wire.schemas import ErrorDetail, PublishRequest, PublishResult

if TYPE_CHECKING:
    from conveyor._client.async_client import AsyncClient

__all__ = ["AsyncPublisher", "BatchSettings"]

# What one event adds to a batch's body besides its payload, key and attributes (the JSON
# keys, quotes and commas), so that max_bytes bounds the request body, not only payloads.
_EVENT_OVERHEAD = 64
_IN_BATCH = re.compile(r"^/events/\d+")


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How an :class:`AsyncPublisher` batches.

    Attributes:
        linger: seconds the first event of a batch waits for others (0 sends at the next
            turn of the event loop, still batching what was published in the same turn).
        max_events: events in one request, at most (the API takes up to 10,000).
        max_bytes: bytes of events in one request, about (the node takes 32 MiB by default).
        max_in_flight: batch requests awaiting their answer at once, across topics.
        max_pending: events buffered or in flight, at most.
    """

    linger: float = 0.005
    max_events: int = 1000
    max_bytes: int = 4 * 1024 * 1024
    max_in_flight: int = 4
    max_pending: int = 100_000

    def __post_init__(self) -> None:
        if not 0 <= self.linger <= 60:
            raise ValueError(f"linger must be between 0 and 60 seconds, not {self.linger}")
        if not 1 <= self.max_events <= 10_000:
            raise ValueError(f"max_events must be between 1 and 10,000, not {self.max_events}")
        if self.max_bytes < 1024:
            raise ValueError(f"max_bytes must be at least 1024, not {self.max_bytes}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {self.max_in_flight}")
        if self.max_pending < self.max_events:
            raise ValueError(
                f"max_pending ({self.max_pending}) must be at least max_events ({self.max_events})"
            )


@dataclass(slots=True)
class _Waiting:
    """One call's event, and the future its caller awaits."""

    request: PublishRequest
    future: asyncio.Future[PublishResult]


@dataclass(slots=True)
class _Buffer:
    """A topic's events not yet sent."""

    events: list[_Waiting] = field(default_factory=list)
    size: int = 0
    timer: TimerHandle | None = None


@dataclass(slots=True)
class _Sent:
    """A batch on its way: the keys it holds, and whether it has its answer."""

    keys: frozenset[str]
    answered: asyncio.Event = field(default_factory=asyncio.Event)


class AsyncPublisher(AsyncResource):
    """Batches single publishes into batch requests; see the module's invariants.

    Get one from :meth:`AsyncClient.publisher` and use it as an async context manager::

        async with client.publisher(linger=0.005) as publisher:
            result = await publisher.publish("orders", {"id": 42}, key="customer-7")

    Args:
        client: the client whose node it publishes to.
        settings: how it batches.
        clock: times the linger (injected in tests).
    """

    def __init__(
        self,
        client: AsyncClient,
        settings: BatchSettings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self.settings = settings or BatchSettings()
        self._clock = clock or SystemClock()
        self._buffers: dict[str, _Buffer] = {}
        self._sent: dict[str, list[_Sent]] = {}
        self._slots = asyncio.Semaphore(self.settings.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._room = asyncio.Condition()
        self._closed = False
        self.requests = 0
        """Batch requests sent so far (the one-by-one resends of a conflict not counted)."""

    @property
    def pending(self) -> int:
        """Events buffered or in flight."""
        return self._pending

    async def publish(
        self,
        topic: str,
        payload: object,
        **options: Unpack[PublishOptions],
    ) -> PublishResult:
        """Publish one event through the next batch; it is durable when this returns.

        Takes what :meth:`AsyncClient.publish` takes and raises what it raises (for this
        event alone); waits first while ``max_pending`` events are already pending.

        Raises:
            RuntimeError: the publisher is closed.
        """
        request = build_request(payload, **options)
        return await self.publish_request(topic, request)

    async def publish_request(self, topic: str, request: PublishRequest) -> PublishResult:
        """:meth:`publish` for an event already built as a :class:`PublishRequest`."""
        await self.room()
        return await self._add(topic, request)

    async def room(self) -> None:
        r"""Return once fewer than ``max_pending`` events are pending (at once if so now):
        what a producer that :meth:`submit`\s without awaiting each answer waits on."""
        if self._pending >= self.settings.max_pending:
            async with self._room:
                await self._room.wait_for(lambda: self._pending < self.settings.max_pending)

    def submit(
        self,
        topic: str,
        payload: object,
        **options: Unpack[PublishOptions],
    ) -> asyncio.Future[PublishResult]:
        """Queue one event without waiting; the future resolves as :meth:`publish` returns.

        Raises:
            PublisherFull: ``max_pending`` events are already pending.
            RuntimeError: the publisher is closed.
            TypeError, ValueError: as :meth:`AsyncClient.publish`, at once.
        """
        request = build_request(payload, **options)
        return self.submit_request(topic, request)

    def submit_request(self, topic: str, request: PublishRequest) -> asyncio.Future[PublishResult]:
        """:meth:`submit` for an event already built as a :class:`PublishRequest`."""
        if self._pending >= self.settings.max_pending:
            raise PublisherFull(self.settings.max_pending)
        return self._add(topic, request)

    async def flush(self) -> None:
        """Send every buffered event now and wait until every pending one has its answer."""
        # Until nothing is left: a publish that waited for room may add while this waits.
        while self._buffers or self._tasks:
            for topic in list(self._buffers):
                self._send(topic)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Flush, then refuse further publishes; calling it again does nothing."""
        if self._closed:
            return
        await self.flush()
        self._closed = True

    # -- buffering ------------------------------------------------------------------------------
    def _add(self, topic: str, request: PublishRequest) -> asyncio.Future[PublishResult]:
        if self._closed:
            raise RuntimeError("the publisher is closed")
        settings = self.settings
        size = _size_of(request)
        buffer = self._buffers.get(topic)
        if buffer is None:
            buffer = self._buffers[topic] = _Buffer()
        elif buffer.size + size > settings.max_bytes:
            self._send(topic)
            buffer = self._buffers[topic] = _Buffer()
        future: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        buffer.events.append(_Waiting(request, future))
        buffer.size += size
        self._pending += 1
        if len(buffer.events) >= settings.max_events or buffer.size >= settings.max_bytes:
            self._send(topic)
        elif buffer.timer is None:
            buffer.timer = self._clock.call_at(
                self._clock.now() + settings.linger, lambda: self._send(topic)
            )
        return future

    def _send(self, topic: str) -> None:
        # Takes the topic's buffer and starts its request; the order of calls is the order of
        # _Sent entries, which is what per-key order rests on.
        buffer = self._buffers.pop(topic, None)
        if buffer is None or not buffer.events:
            return
        if buffer.timer is not None:
            buffer.timer.cancel()
        keys = frozenset(w.request.key for w in buffer.events if w.request.key is not None)
        sent = _Sent(keys)
        earlier = [s for s in self._sent.get(topic, ()) if s.keys & keys]
        self._sent.setdefault(topic, []).append(sent)
        task = asyncio.get_running_loop().create_task(
            self._request(topic, buffer.events, sent, earlier)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requests -------------------------------------------------------------------------------
    async def _request(
        self, topic: str, events: list[_Waiting], sent: _Sent, earlier: list[_Sent]
    ) -> None:
        try:
            for before in earlier:
                await before.answered.wait()
            async with self._slots:
                await self._answer(topic, events)
        except asyncio.CancelledError:  # the loop is going away: so are the calls' waits
            for waiting in events:
                waiting.future.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - a bug here must still answer every call
            for waiting in events:
                _settle(waiting.future, error=e)
        finally:
            sent.answered.set()
            self._sent[topic].remove(sent)
            if not self._sent[topic]:
                del self._sent[topic]
            await self._released(len(events))

    async def _answer(self, topic: str, events: list[_Waiting]) -> None:
        requests = [w.request for w in events]
        self.requests += 1
        try:
            answer = await self._client.publish_batch_partial(topic, requests)
        except Conflict:
            # One idempotency key was reused for another event, and nothing was stored: send
            # them one by one so that only that call fails.
            await self._one_by_one(topic, events)
            return
        except ConveyorError as e:
            for waiting in events:
                _settle(waiting.future, error=e)
            return
        for result in answer.results:
            if result.index is not None:
                _settle(events[result.index].future, result=result)
        for problem in answer.rejected:
            if problem.index is not None:
                _settle(events[problem.index].future, error=_rejection(problem))
        for waiting in events:  # an answer that forgot an event must not hang its caller
            _settle(waiting.future, error=ConveyorError("the node's answer left out this event"))

    async def _one_by_one(self, topic: str, events: list[_Waiting]) -> None:
        for waiting in events:
            try:
                result = await self._client.publish_request(topic, waiting.request)
            except ConveyorError as e:
                _settle(waiting.future, error=e)
            else:
                _settle(waiting.future, result=result)

    async def _released(self, count: int) -> None:
        self._pending -= count
        async with self._room:
            self._room.notify_all()


def _settle(
    future: asyncio.Future[PublishResult],
    *,
    result: PublishResult | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    elif result is not None:
        future.set_result(result)


def _rejection(problem: ErrorDetail) -> InvalidRequest:
    """The error of one event a partial batch refused, as its own publish would raise it: the
    field is the event's own (``/payload/...``), not the batch's (``/events/7/payload/...``)."""
    where = None if problem.field is None else _IN_BATCH.sub("", problem.field, count=1)
    if problem.code == SchemaViolation.code:
        return SchemaViolation(problem.message, field=where or "", rule=problem.rule or "")
    status = 413 if problem.rule == "max_size" else 400
    return InvalidRequest(problem.message, field=where, rule=problem.rule, status=status)


def _size_of(request: PublishRequest) -> int:
    size = len(request.payload) + _EVENT_OVERHEAD
    if request.key is not None:
        size += len(request.key)
    if request.attributes:
        size += sum(len(k) + len(v) + 6 for k, v in request.attributes.items())
    return size
