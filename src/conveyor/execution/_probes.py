"""What the supervisor measures: a lambda's load on the platform (through the SDK) and its
workers' health endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import msgspec

from conveyor._client.async_client import AsyncClient
from conveyor._resource import AsyncResource
from conveyor.errors import ConveyorError
from conveyor.execution._server import HEALTH_PATH, WorkerHealth
from conveyor.wire.push import PUSH_PATH

PLATFORM_TIMEOUT = 5.0
HEALTH_TIMEOUT = 2.0
"""Seconds one call to the platform, or to a worker's health endpoint, may take."""

_health_decoder = msgspec.json.Decoder(WorkerHealth)


@dataclass(frozen=True)
class LambdaLoad:
    """A lambda's load as the platform reports it.

    Attributes:
        backlog: unfinished events of its unpaused subscriptions (retrying ones included).
        oldest_age: seconds the oldest of them has waited, if any.
        endpoints: push URLs of its registered endpoints (when asked for).
    """

    backlog: int
    oldest_age: float | None
    endpoints: list[str]


class PlatformProbe(AsyncResource):
    """Reads a lambda's load through the SDK, from the first node of ``server`` that answers.

    Args:
        server: the platform's URL, or several separated by commas.
        lambda_name: the lambda.
    """

    def __init__(self, server: str, lambda_name: str) -> None:
        urls = [u.strip() for u in server.split(",") if u.strip()]
        if not urls:
            raise ValueError("server must name at least one platform URL")
        self._clients = [AsyncClient(u, timeout=PLATFORM_TIMEOUT) for u in urls]
        self._current = 0
        self._lambda = lambda_name

    async def load(self, *, endpoints: bool = False) -> LambdaLoad:
        """The lambda's backlog, oldest age and (with ``endpoints``) endpoint URLs.

        Raises:
            ConveyorError: no node answered.
        """
        for tried in range(1, len(self._clients) + 1):
            client = self._clients[self._current]
            try:
                return await self._read(client, endpoints=endpoints)
            except ConveyorError:
                if tried == len(self._clients):
                    raise
                self._current = (self._current + 1) % len(self._clients)
        raise AssertionError("unreachable: the last failure is raised")

    async def _read(self, client: AsyncClient, *, endpoints: bool) -> LambdaLoad:
        infos = [
            info
            for info in await client.list_subscriptions()
            if info.subscription.lambda_name == self._lambda and not info.stats.paused
        ]
        ages = [i.stats.oldest_pending_age for i in infos if i.stats.oldest_pending_age]
        urls: list[str] = []
        if endpoints:
            for found in await client.list_lambdas():
                if found.name == self._lambda:
                    urls = [e.url for e in found.endpoints]
        return LambdaLoad(
            backlog=sum(i.stats.backlog for i in infos),
            oldest_age=max(ages, default=None),
            endpoints=urls,
        )

    async def aclose(self) -> None:
        """Close every client; idempotent."""
        for client in self._clients:
            await client.aclose()


@dataclass(frozen=True)
class FleetHealth:
    """What the workers' health endpoints said.

    Attributes:
        serving: workers that answered ``ok``.
        running: handler calls running in them.
    """

    serving: int
    running: int


class HealthProbe(AsyncResource):
    """Reads workers' ``GET /conveyor/health``; counts the handler calls they finish.

    A worker's ``handled`` is counted from the first time it is read, so :attr:`completed`
    never decreases as workers come and go.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._handled: dict[str, int] = {}
        self.completed = 0
        """Handler calls finished by the workers read, since counting began."""

    async def _enter(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT))

    async def aclose(self) -> None:
        """Close the HTTP session; idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def poll(self, push_urls: Sequence[str]) -> FleetHealth:
        """Read the health of the workers at ``push_urls`` (their registered push URLs)."""
        async with asyncio.TaskGroup() as tasks:
            reads = [tasks.create_task(self._read(url)) for url in push_urls]
        handled: dict[str, int] = {}
        serving = running = 0
        for url, read in zip(push_urls, reads, strict=True):
            health = read.result()
            if health is None:
                continue
            before = self._handled.get(url)
            if before is not None and health.handled >= before:
                self.completed += health.handled - before
            handled[url] = health.handled
            running += health.in_flight
            if health.status == "ok":
                serving += 1
        self._handled = handled
        return FleetHealth(serving=serving, running=running)

    async def _read(self, push_url: str) -> WorkerHealth | None:
        if self._session is None:
            raise RuntimeError("the health probe is closed")
        url = push_url.removesuffix(PUSH_PATH) + HEALTH_PATH
        try:
            async with self._session.get(url) as response:
                if response.status not in (200, 503):  # 503: draining, still counted
                    return None
                return _health_decoder.decode(await response.read())
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError):
            return None


__all__ = ["FleetHealth", "HealthProbe", "LambdaLoad", "PlatformProbe"]
