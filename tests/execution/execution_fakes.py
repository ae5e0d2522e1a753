"""Test doubles and helpers shared by the execution tests.

:class:`FakePlatform` is a stand-in for the platform's HTTP API (only the calls a worker
makes), served by aiohttp on 127.0.0.1 so that workers talk real HTTP to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from conveyor._resource import AsyncResource
from conveyor.model import Subscription, Topic
from conveyor.wire.push import PushEvent, PushRequest
from conveyor.wire.schemas import ErrorBody, ErrorResponse

PUBLISHED_MS = 1_700_000_000_000


def push(subscription: str, *payloads: object, attempt: int = 1) -> PushRequest:
    """A push of one event per payload, with ids ``e0``, ``e1`` …"""
    return PushRequest(
        subscription=subscription,
        events=[
            PushEvent(
                id=f"e{i}",
                topic="orders",
                partition=0,
                offset=i,
                payload=msgspec.Raw(msgspec.json.encode(p)),
                published_ms=PUBLISHED_MS,
                attempt=attempt,
            )
            for i, p in enumerate(payloads)
        ],
    )


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Wait (in real time, polling) until ``condition()`` holds; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.005)


@dataclass(frozen=True)
class Call:
    """One request the fake platform received."""

    method: str
    path: str
    body: bytes


@dataclass
class FakePlatform(AsyncResource):
    """The platform's registration API, recording every call.

    Attributes:
        topics: topics that exist; a subscription to another topic is answered 404.
        refuse_subscriptions: when set, every subscription PUT is answered with it.
        unavailable: the first this-many calls are answered 503.
        calls: every request received, in order.
    """

    topics: set[str] = field(default_factory=set)
    refuse_subscriptions: tuple[int, ErrorBody] | None = None
    unavailable: int = 0
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def calls_to(self, method: str, prefix: str) -> list[Call]:
        """The calls with ``method`` whose path starts with ``prefix``."""
        return [c for c in self.calls if c.method == method and c.path.startswith(prefix)]

    async def _enter(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/topics", self._create_topic)
        app.router.add_put("/v1/subscriptions/{name}", self._put_subscription)
        app.router.add_put("/v1/lambdas/{name}/endpoints/{id}", self._endpoint)
        app.router.add_delete("/v1/lambdas/{name}/endpoints/{id}", self._endpoint)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _begin(self, request: web.Request) -> web.Response | None:
        self.calls.append(Call(request.method, request.path, await request.read()))
        if self.unavailable > 0:
            self.unavailable -= 1
            return web.Response(status=503)
        return None

    async def _create_topic(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request)) is not None:
            return early
        name = msgspec.json.decode(self.calls[-1].body, type=Topic).name
        if name in self.topics:
            return web.Response(status=200)
        self.topics.add(name)
        return web.Response(status=201)

    async def _put_subscription(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request)) is not None:
            return early
        subscription = msgspec.json.decode(self.calls[-1].body, type=Subscription)
        if self.refuse_subscriptions is not None:
            status, error = self.refuse_subscriptions
            return _error(status, error)
        if subscription.topic not in self.topics:
            message = f"topic {subscription.topic!r} does not exist"
            return _error(404, ErrorBody(code="not_found", message=message))
        return web.Response(status=201)

    async def _endpoint(self, request: web.Request) -> web.Response:
        if (early := await self._begin(request)) is not None:
            return early
        return web.Response(status=204 if request.method == "DELETE" else 200)


def _error(status: int, error: ErrorBody) -> web.Response:
    body = msgspec.json.encode(ErrorResponse(error))
    return web.Response(status=status, body=body, content_type="application/json")
