"""The push transport: one batch of events to one endpoint over pooled keep-alive HTTP.

Every push ends in per-event outcomes, never in an exception: an answer of 200 carries the
results; 429/503 with ``Retry-After`` is a throttle (no attempt counted); any other status, a
timeout or a broken connection is ``retry`` for every event of the batch. Every push carries
its timeout (``Conveyor-Timeout``), by which the worker stops its handlers.

A subscription whose format asks for it has its events transcoded first (see
:mod:`conveyor.delivery.transcode`); an event that cannot be encoded is left out of the push
and gets its own result (``fatal``, or ``retry`` when the registry could not be read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import msgspec

from conveyor._resource import AsyncResource
from conveyor.clock import Clock, SystemClock
from conveyor.delivery.endpoints import EndpointState
from conveyor.delivery.transcode import Transcoder, Unencodable
from conveyor.model import Event, Outcome
from conveyor.wire.push import (
    SUBSCRIPTION_HEADER,
    TIMEOUT_HEADER,
    PushEvent,
    PushRequest,
    header_seconds,
    push_request_encoder,
    push_response_decoder,
)
from conveyor.wire.signing import Signer, new_message_id

MAX_ERROR_LENGTH = 2000
_HEADERS = {"Content-Type": "application/json"}


@dataclass(slots=True)
class Result:
    """One event's outcome of a push."""

    outcome: Outcome
    after: float | None = None
    error: str | None = None


@dataclass(slots=True)
class PushOutcome:
    """The outcome of one push.

    Attributes:
        results: one per event, in the batch's order (empty for a throttle).
        throttle: seconds the lambda asked the subscription to pause, for a throttle.
        connect_failed: the endpoint could not be reached at all.
        failed: the push itself failed (no answer in time, an HTTP error, a broken or
            refused connection): a signal of overload for the concurrency limiter, unlike
            the lambda's own retry results.
    """

    results: list[Result]
    throttle: float | None = None
    connect_failed: bool = False
    failed: bool = False


def _retry_after(value: str | None) -> float | None:
    seconds = header_seconds(value)
    return seconds if seconds is not None and seconds >= 0 else None


def _all(events: Sequence[Event], error: str) -> list[Result]:
    result = Result(Outcome.RETRY, None, error[:MAX_ERROR_LENGTH])
    return [result] * len(events)


def _unencodable(problem: Unencodable) -> Result:
    outcome = Outcome.RETRY if problem.retry else Outcome.FATAL
    return Result(outcome, None, problem.error[:MAX_ERROR_LENGTH])


# A placeholder, replaced by the lambda's result before the outcome is returned.
_PENDING = Result(Outcome.RETRY)


class Pusher(AsyncResource):
    """Pushes batches; owns the pooled HTTP connections.

    Args:
        max_connections: open connections at most, over all endpoints.
        transcoder: puts events in their subscription's delivery format; without one,
            every event goes as stored.
        signer: signs every push (Standard Webhooks headers); without one, pushes go unsigned.
        clock: the source of each push's signing timestamp.
    """

    def __init__(
        self,
        *,
        max_connections: int = 256,
        transcoder: Transcoder | None = None,
        signer: Signer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._transcoder = transcoder
        self._signer = signer
        self._clock: Clock = clock or SystemClock()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=60, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def aclose(self) -> None:
        """Close every connection; idempotent."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def push(
        self,
        endpoint: EndpointState,
        subscription: str,
        events: Sequence[Event],
        attempts: Sequence[int],
        push_timeout: float,
    ) -> PushOutcome:
        """Push ``events`` to ``endpoint`` and return every event's outcome."""
        transcoder = self._transcoder
        fmt = None if transcoder is None else transcoder.format_for(subscription)
        if fmt is not None and transcoder is not None:
            prepared = await transcoder.prepare(fmt, events, attempts)
            return await self._push_prepared(
                endpoint, subscription, prepared, events, push_timeout=push_timeout
            )
        # The events as stored: the hot path, with no per-event work beyond the wire form.
        body = push_request_encoder.encode(
            PushRequest(
                subscription,
                [
                    PushEvent(
                        e.id,
                        e.topic,
                        e.partition,
                        e.offset,
                        msgspec.Raw(e.payload),
                        e.publish_ms,
                        a,
                        e.key,
                        e.attributes,
                        e.deliver_at_ms,
                    )
                    for e, a in zip(events, attempts, strict=True)
                ],
            )
        )
        return await self._post(endpoint, subscription, body, events, push_timeout)

    async def _push_prepared(
        self,
        endpoint: EndpointState,
        subscription: str,
        prepared: list[PushEvent | Unencodable],
        events: Sequence[Event],
        *,
        push_timeout: float,
    ) -> PushOutcome:
        sent = [(i, p) for i, p in enumerate(prepared) if isinstance(p, PushEvent)]
        if len(sent) == len(events):
            body = push_request_encoder.encode(PushRequest(subscription, [p for _, p in sent]))
            return await self._post(endpoint, subscription, body, events, push_timeout)
        results = [_unencodable(p) if isinstance(p, Unencodable) else _PENDING for p in prepared]
        if not sent:
            return PushOutcome(results)
        body = push_request_encoder.encode(PushRequest(subscription, [p for _, p in sent]))
        outcome = await self._post(
            endpoint, subscription, body, [events[i] for i, _ in sent], push_timeout
        )
        if outcome.throttle is not None:
            return outcome  # the whole batch waits, unencodable events included
        for (i, _), result in zip(sent, outcome.results, strict=True):
            results[i] = result
        outcome.results = results
        return outcome

    async def _post(
        self,
        endpoint: EndpointState,
        subscription: str,
        body: bytes,
        events: Sequence[Event],
        push_timeout: float,
    ) -> PushOutcome:
        # The deadline travels as the timeout itself: relative, so host clocks may differ.
        headers = {
            **_HEADERS,
            SUBSCRIPTION_HEADER: subscription,
            TIMEOUT_HEADER: str(push_timeout),
        }
        if self._signer is not None:
            # Signed as sent: a fresh id and timestamp for every HTTP push, retries included.
            headers.update(self._signer.headers(new_message_id(), body, int(self._clock.now())))
        try:
            async with self._client().post(
                endpoint.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=push_timeout),
            ) as resp:
                data = await resp.read()
                if resp.status == 200:
                    return self._results(events, data)
                after = _retry_after(resp.headers.get("Retry-After"))
                if resp.status in (429, 503) and after is not None:
                    return PushOutcome([], throttle=after)
                text = data[:300].decode("utf-8", "replace")
                return PushOutcome(
                    _all(events, f"lambda answered HTTP {resp.status}: {text}"), failed=True
                )
        except TimeoutError:
            return PushOutcome(
                _all(events, f"no answer within the push timeout ({push_timeout:g} s)"),
                failed=True,
            )
        except aiohttp.ClientConnectorError as e:
            return PushOutcome(
                _all(events, f"cannot connect: {e}"), connect_failed=True, failed=True
            )
        except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError) as e:
            return PushOutcome(
                _all(events, f"connection broken: {type(e).__name__}: {e}"), failed=True
            )

    @staticmethod
    def _results(events: Sequence[Event], data: bytes) -> PushOutcome:
        try:
            answer = push_response_decoder.decode(data)
        except msgspec.DecodeError as e:
            return PushOutcome(_all(events, f"lambda answered an unreadable body: {e}"))
        by_id = {r.id: r for r in answer.results}
        missing = Result(Outcome.RETRY, None, "the lambda's answer has no result for this event")
        out: list[Result] = []
        for event in events:
            r = by_id.get(event.id)
            if r is None:
                out.append(missing)
            else:
                error = None if r.error is None else r.error[:MAX_ERROR_LENGTH]
                out.append(Result(r.status, r.after, error))
        # Handlers cut off at the push's deadline: a failed push, as the timeout would be.
        return PushOutcome(out, failed=answer.deadline_exceeded)
