"""The Lambda SDK: declare handlers for topics, and run pushed batches through them.

Example::

    app = Lambda("billing")

    @app.handler("orders", max_concurrency=64)
    async def charge(order: Order, ctx: EventContext) -> None:
        if not order.card:
            raise Fatal("no card on file")
        await payments.charge(order, idempotency_key=ctx.id)

``conveyor worker billing_module:app`` then serves it (see :mod:`conveyor.execution.worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import typing
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from typing import Literal, TypeAlias, TypeVar, Unpack

import msgspec

from conveyor.clock import Clock, SystemClock
from conveyor.execution._handler import Handler, HandlerFunc, build_handler
from conveyor.execution._lanes import run_all
from conveyor.execution._payload import PayloadError, SchemaLookup, decode_push
from conveyor.execution._schemas import SchemaFetchError
from conveyor.execution.context import EventContext
from conveyor.execution.results import Fatal, Retry
from conveyor.model import DeliveryFormat, Outcome, Subscription, is_valid_name
from conveyor.options import HandlerOptions, build_subscription
from conveyor.wire.connections import DEFAULT_URL
from conveyor.wire.push import PushEvent, PushRequest, PushResponse, PushResult

logger = logging.getLogger("conveyor.execution")

MAX_ERROR_CHARS = 2000

Limiter: TypeAlias = AbstractAsyncContextManager[object]
"""Held around each handler call; the worker's bounds how many run at once."""

F = TypeVar("F", bound=HandlerFunc)

# nullcontext is reentrant, so one instance serves every unlimited call.
_UNLIMITED: Limiter = contextlib.nullcontext()


class Lambda:
    """A named set of handlers, one per subscription, served by workers.

    Args:
        name: the lambda's name; the platform routes pushes to its registered endpoints.
        server: the platform's base URL, where workers register.

    Raises:
        ValueError: ``name`` is not a valid name.
    """

    def __init__(self, name: str, *, server: str = DEFAULT_URL) -> None:
        if not is_valid_name(name):
            raise ValueError(
                f"invalid lambda name {name!r}: use 1-200 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        self.name = name
        self.server = server
        # Invariant: keys are subscription names, in registration order.
        self._handlers: dict[str, Handler] = {}

    def __repr__(self) -> str:
        return f"Lambda({self.name!r}, handlers={list(self._handlers)!r})"

    def handler(
        self,
        topic: str,
        *,
        subscription: str | None = None,
        encoding: Literal["json", "avro", "protobuf"] = "json",
        cloudevents: bool = False,
        schema_version: int | None = None,
        **options: Unpack[HandlerOptions],
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of a subscription to ``topic``.

        The function takes the payload, typed by its annotation, and optionally an
        :class:`EventContext`. It succeeds by returning, and fails by raising
        :class:`~conveyor.execution.results.Retry`, :class:`~conveyor.execution.results.Fatal`
        or any other exception (a retry).

        Args:
            topic: the topic whose events it handles.
            subscription: the subscription's name; defaults to ``"<lambda>.<function name>"``.
            encoding: how the platform encodes the events for this handler: ``json`` (as
                stored), ``avro`` or ``protobuf`` (binary, for a topic bound to a registry
                subject of that type); the payload is decoded into the declared type either
                way (``bytes`` receives the data undecoded).
            cloudevents: deliver each event as a CloudEvent; its attributes are in
                :attr:`EventContext.cloudevent`.
            schema_version: the version of the topic's subject to receive events in (Avro
                resolution, or Protobuf's unknown fields dropped); ``None``: each event's own.
            options: the subscription's other options, each optional (its default when left
                out): ``ordered``, ``max_concurrency``, ``min_concurrency``, ``adaptive``,
                ``max_batch``, ``max_batch_bytes``, ``max_wait``, ``push_timeout``,
                ``retry``, ``dead_letter_topic``, ``filter`` and ``locality``, as
                :class:`~conveyor.options.SubscriptionOptions` describes them.

        Returns:
            A decorator that registers the function and returns it unchanged.

        Raises:
            ValueError: a name or setting is invalid, or the subscription is taken.
            TypeError: the function's signature or payload type is unusable.
        """
        if not is_valid_name(topic):
            raise ValueError(f"invalid topic name {topic!r}")

        def register(func: F) -> F:
            name = subscription or f"{self.name}.{getattr(func, '__name__', '')}"
            if name in self._handlers:
                raise ValueError(f"lambda {self.name!r} already has a subscription {name!r}")
            spec = _validated(
                build_subscription(
                    name,
                    topic,
                    self.name,
                    format=DeliveryFormat(encoding, cloudevents, schema_version),
                    **options,
                )
            )
            self._handlers[name] = build_handler(func, spec)
            return func

        return register

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions of every handler, in registration order."""
        return [h.subscription for h in self._handlers.values()]

    async def run_batch(
        self,
        request: PushRequest,
        *,
        limiter: Limiter | None = None,
        executor: Executor | None = None,
        schemas: SchemaLookup | None = None,
        deadline: float | None = None,
        clock: Clock | None = None,
    ) -> PushResponse:
        """Run every event of a push through its subscription's handler, concurrently.

        Never raises for a handler's failure: each event gets its result.

        At ``deadline`` the platform is about to give the push up: the handler calls still
        running are cancelled (``async`` handlers) or no longer waited for (sync handlers in
        threads, which cannot be stopped: what they return later is ignored), their events
        answer ``retry``, and the answer says ``deadline_exceeded``.

        Args:
            request: the push.
            limiter: held around each handler call (the worker's concurrency limit);
                ``None`` runs every event at once.
            executor: the thread pool for sync handlers; ``None`` uses the loop's default.
            schemas: finds the registry schemas of binary data (the worker's cache of the
                platform's); ``None``: binary data decodes only into ``bytes`` or a Protobuf
                message class.
            deadline: the time (of ``clock``) by which to answer; ``None``: no deadline.
            clock: the clock of ``deadline`` (the system's when ``None``).

        Returns:
            One result per event, in the request's order.
        """
        handler = self._handlers.get(request.subscription)
        if handler is None:
            # Retry, not fatal: during a rolling release an old worker may receive a new
            # subscription's events; another endpoint (or a later attempt) will have it.
            error = f"lambda {self.name!r} has no handler for subscription {request.subscription!r}"
            return PushResponse(
                [PushResult(e.id, Outcome.RETRY, error=error) for e in request.events]
            )
        run = _Run(handler, request.subscription, _UNLIMITED if limiter is None else limiter)
        run.executor, run.schemas = executor, schemas
        if deadline is not None:
            return await _run_by(run, request.events, deadline, clock or SystemClock())
        if len(request.events) == 1:
            # The common case at low rates: no task per event.
            return PushResponse([await _run_one(run, request.events[0])])
        # Concurrently, but a Task only for the handler calls that suspend (_lanes).
        return PushResponse(await run_all(request.events, functools.partial(_run_one, run)))


class _Run:
    """What every event of one push is run with."""

    __slots__ = ("executor", "gate", "handler", "schemas", "sub")

    def __init__(self, handler: Handler, sub: str, gate: Limiter) -> None:
        self.handler = handler
        self.sub = sub
        self.gate = gate
        self.executor: Executor | None = None
        self.schemas: SchemaLookup | None = None


async def _run_by(
    run: _Run, events: list[PushEvent], deadline: float, clock: Clock
) -> PushResponse:
    """Run a push's events, answering by ``deadline`` (``clock`` time) whatever still runs."""
    results: list[PushResult | None] = [None] * len(events)
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = clock.call_at(deadline, expire)
    try:
        if len(events) == 1:
            results[0] = await _run_one(run, events[0])
        else:
            await run_all(events, functools.partial(_run_one, run), results)
    except asyncio.CancelledError:
        if not expired:
            raise  # cancelled from outside, not by the deadline
        task.uncancel()
        return _cut_off(run, events, results)
    finally:
        timer.cancel()
    if expired:
        task.uncancel()  # a handler swallowed the cancellation: every event has its result
    # Invariant: finished without the deadline's cancellation, every slot holds a result.
    return PushResponse(typing.cast("list[PushResult]", results))


def _cut_off(run: _Run, events: list[PushEvent], results: list[PushResult | None]) -> PushResponse:
    """The answer of a push whose deadline struck: results so far, ``retry`` for the rest."""
    late = sum(1 for r in results if r is None)
    what = "cancelled" if run.handler.is_async else "still running in its thread, ignored"
    error = f"the handler did not finish by the push's deadline ({what})"
    logger.warning(
        "%d of %d events of %s missed the push's deadline (%s)", late, len(events), run.sub, what
    )
    return PushResponse(
        [
            PushResult(e.id, Outcome.RETRY, error=error) if r is None else r
            for e, r in zip(events, results, strict=True)
        ],
        deadline_exceeded=late > 0,
    )


async def _decode_other(run: _Run, event: PushEvent) -> tuple[object, EventContext | None]:
    """The payload and (when the handler takes it) the context of an event that is not plain
    JSON; raises ``PayloadError`` or ``SchemaFetchError``."""
    handler = run.handler
    delivered = await decode_push(handler.decode, event, run.schemas)
    if not handler.wants_context:
        return delivered.payload, None
    context = EventContext.from_push(
        event, run.sub, content_type=delivered.content_type, cloudevent=delivered.cloudevent
    )
    return delivered.payload, context


async def _run_one(run: _Run, event: PushEvent) -> PushResult:
    # Invariant: returns a result for every exception a handler raises (never raises itself),
    # so one event's failure cannot cancel its batch-mates in the gather.
    handler, sub = run.handler, run.sub
    try:
        if event.content_type is None:  # JSON: the common case, decoded without a detour
            payload = handler.decode.json(event.payload)
            context = EventContext.from_push(event, sub) if handler.wants_context else None
        else:
            payload, context = await _decode_other(run, event)
    except PayloadError as e:
        # Decoding is deterministic: a retry would fail the same way.
        return PushResult(event.id, Outcome.FATAL, error=_truncate(str(e)))
    except SchemaFetchError as e:
        outcome = Outcome.RETRY if e.retry else Outcome.FATAL
        return PushResult(event.id, outcome, error=_truncate(str(e)))
    gate, executor = run.gate, run.executor
    try:
        async with gate:
            await handler.call(payload, context, executor)
    except Retry as e:
        return PushResult(event.id, Outcome.RETRY, after=e.after, error=_reason(e.reason))
    except Fatal as e:
        return PushResult(event.id, Outcome.FATAL, error=_reason(e.reason))
    except Exception as e:  # noqa: BLE001 - a handler's failure is its event's result
        logger.warning(
            "handler of %s failed on event %s (attempt %d): %r", sub, event.id, event.attempt, e
        )
        return PushResult(event.id, Outcome.RETRY, error=_truncate(f"{type(e).__name__}: {e}"))
    return PushResult(event.id, Outcome.SUCCESS)


def _validated(subscription: Subscription) -> Subscription:
    # A Struct checks its constraints (name pattern, ranges) on decode only, so round-trip.
    try:
        return msgspec.convert(msgspec.to_builtins(subscription), Subscription)
    except msgspec.ValidationError as e:
        raise ValueError(f"invalid subscription {subscription.name!r}: {e}") from e


def _reason(reason: str) -> str | None:
    return _truncate(reason) if reason else None


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


__all__ = ["EventContext", "Lambda", "Limiter"]
