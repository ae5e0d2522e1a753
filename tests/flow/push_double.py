"""A lambda's push endpoint on 127.0.0.1, speaking the protocol of conveyor.wire.push.

It answers every push with what a scripted ``Responder`` says, records every event it
received (with the FakeClock's time of arrival), and counts events in flight at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from conveyor._resource import AsyncResource
from conveyor.clock import FakeClock
from conveyor.model import Outcome
from conveyor.wire.push import (
    PUSH_PATH,
    PushEvent,
    PushRequest,
    PushResponse,
    PushResult,
    push_request_decoder,
)


@dataclass(frozen=True)
class Reply:
    """How the endpoint answers one push.

    Attributes:
        status: the HTTP status.
        results: for 200, the per-event results (``None``: success for every event).
        headers: extra response headers, e.g. ``Retry-After``.
        close: drop the connection without answering.
    """

    status: int = 200
    results: list[PushResult] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


Responder = Callable[[PushRequest, int], Reply]
"""Decides the answer to a push, given it and its number (1 for the first push)."""


def each(decide: Callable[[PushEvent], PushResult | None]) -> Responder:
    """A responder answering 200 with ``decide``'s result per event (``None``: left out)."""

    def respond(request: PushRequest, number: int) -> Reply:
        results = [r for r in map(decide, request.events) if r is not None]
        return Reply(results=results)

    return respond


def succeed(event: PushEvent) -> PushResult:
    return PushResult(event.id, Outcome.SUCCESS)


@dataclass(frozen=True)
class Received:
    """One event as the endpoint received it."""

    event: PushEvent
    subscription: str
    at: float  # the FakeClock's time of arrival

    @property
    def payload(self) -> object:
        return msgspec.json.decode(self.event.payload)


class PushEndpoint(AsyncResource):
    """The endpoint; an async context manager serving on a free port.

    Args:
        clock: the node's FakeClock, read to stamp arrivals.
        respond: the script; every event succeeds by default.
        hold: real seconds each push is held before it is answered.
    """

    def __init__(
        self, clock: FakeClock, respond: Responder | None = None, *, hold: float = 0.0
    ) -> None:
        self.clock = clock
        self.respond: Responder = respond or each(succeed)
        self.hold = hold
        self.received: list[Received] = []
        self.requests: list[PushRequest] = []  # every push, as received
        self.pushes = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.key_in_flight: dict[str, int] = {}
        self.max_key_in_flight = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    def payloads(self) -> list[object]:
        return [r.payload for r in self.received]

    async def _enter(self) -> None:
        app = web.Application()
        app.router.add_post(PUSH_PATH, self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{PUSH_PATH}"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _push(self, request: web.Request) -> web.Response:
        push = push_request_decoder.decode(await request.read())
        self.requests.append(push)
        self.pushes += 1
        number = self.pushes
        now = self.clock.now()
        keys = [e.key for e in push.events if e.key is not None]
        for event in push.events:
            self.received.append(Received(event, push.subscription, now))
        self._arrive(len(push.events), keys)
        try:
            if self.hold:
                await asyncio.sleep(self.hold)
            reply = self.respond(push, number)
        finally:
            self._leave(len(push.events), keys)
        if reply.close:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if reply.status != 200:
            return web.Response(status=reply.status, headers=reply.headers, text="scripted")
        results = reply.results
        if results is None:
            results = [succeed(e) for e in push.events]
        body = msgspec.json.encode(PushResponse(results))
        return web.Response(body=body, content_type="application/json", headers=reply.headers)

    def _arrive(self, events: int, keys: list[str]) -> None:
        self.in_flight += events
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for key in keys:
            self.key_in_flight[key] = self.key_in_flight.get(key, 0) + 1
            self.max_key_in_flight = max(self.max_key_in_flight, self.key_in_flight[key])

    def _leave(self, events: int, keys: list[str]) -> None:
        self.in_flight -= events
        for key in keys:
            self.key_in_flight[key] -= 1
