"""Real dead letters for the API, SDK and CLI tests: a node whose lambda kills chosen events.

The lambda (an aiohttp server on 127.0.0.1 speaking the push protocol) answers ``fatal`` for
an event whose payload has ``"fail": "<error>"`` and ``success`` for any other, so an event
goes dead on its first attempt with that error. The node runs on a FakeClock: an event's
``dead_at`` is the clock's time when its result came back.

:class:`ThreadedPlatform` runs the same node behind the HTTP API on an event loop in a thread
of its own, for the blocking client and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from aiohttp import web

from conveyor._resource import AsyncResource
from conveyor.api.app import build_app
from conveyor.clock import FakeClock
from conveyor.flow.dead_letters import DeadLetters
from conveyor.model import Outcome, Subscription, Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.push import (
    PUSH_PATH,
    PushResponse,
    PushResult,
    push_request_decoder,
)
from conveyor.wire.schemas import PublishRequest

T = TypeVar("T")

TOPIC = "orders"
OTHER_TOPIC = "refunds"
SUB = "billing"
LAMBDA = "worker"


class KillingLambda(AsyncResource):
    """A lambda's endpoint: fatal for payloads with ``fail``, success for the others.

    Attributes:
        received: (event id, attempt) of every event pushed, in order of arrival.
        forgiven: ids of events that succeed from now on, ``fail`` or not (the bug is fixed).
    """

    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []
        self.forgiven: set[str] = set()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _enter(self) -> None:
        app = web.Application()
        app.router.add_post(PUSH_PATH, self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{PUSH_PATH}"

    async def aclose(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _push(self, request: web.Request) -> web.Response:
        push = push_request_decoder.decode(await request.read())
        results = []
        for event in push.events:
            self.received.append((event.id, event.attempt))
            payload = msgspec.json.decode(event.payload)
            fail = payload.get("fail") if isinstance(payload, dict) else None
            if fail is None or event.id in self.forgiven:
                results.append(PushResult(event.id, Outcome.SUCCESS))
            else:
                results.append(PushResult(event.id, Outcome.FATAL, error=str(fail)))
        body = msgspec.json.encode(PushResponse(results))
        return web.Response(body=body, content_type="application/json")


@dataclass
class Rig:
    """A started node and its killing lambda."""

    node: Node
    clock: FakeClock
    lam: KillingLambda

    @property
    def dead_letters(self) -> DeadLetters:
        return self.node.dead_letters

    async def publish(self, *payloads: object, key: str | None = None) -> list[str]:
        """Publish payloads to ``orders``; return their ids."""
        requests = [
            PublishRequest(payload=msgspec.Raw(msgspec.json.encode(p)), key=key) for p in payloads
        ]
        results = await self.node.publisher.publish(TOPIC, requests, batch=True)
        return [r.id for r in results]

    async def kill(self, *errors: str, key: str | None = None) -> list[str]:
        """Publish one event per error, each killed with that error; return their ids once
        every one is dead, durably."""
        before = (await self.node.store.count_rows(SUB)).get("dead", 0)
        payloads = [{"fail": e, "n": n} for n, e in enumerate(errors)]
        ids = await self.publish(*payloads, key=key)
        await _until(
            lambda: self._dead_at_least(before + len(errors)), f"{len(errors)} events dead"
        )
        return ids

    async def succeed(self, *payloads: object) -> list[str]:
        """Publish events the lambda accepts; return their ids once all were pushed."""
        ids = await self.publish(*payloads)

        async def pushed() -> bool:
            return set(ids) <= {event_id for event_id, _ in self.lam.received}

        await _until(pushed, "events pushed")
        return ids

    async def _dead_at_least(self, count: int) -> bool:
        return (await self.node.store.count_rows(SUB)).get("dead", 0) >= count


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 10
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within 10 s: {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def dead_letter_rig(store_url: str, clock: FakeClock | None = None) -> AsyncIterator[Rig]:
    """A started node (no leases: the tests move the clock) with the topics ``orders`` and
    ``refunds``, and the subscription ``billing`` of ``orders`` pushed to a KillingLambda."""
    clock = clock or FakeClock()
    async with KillingLambda() as lam:
        node = Node(NodeSettings(store=store_url, cluster=False), clock=clock)
        async with node:
            await node.register_endpoint(LAMBDA, "e1", lam.url, ttl=86400, concurrency=64)
            await node.catalog.put_topic(Topic(name=TOPIC, partitions=2))
            await node.catalog.put_topic(Topic(name=OTHER_TOPIC, partitions=1))
            await node.catalog.put_subscription(
                Subscription(name=SUB, topic=TOPIC, lambda_name=LAMBDA)
            )
            yield Rig(node, clock, lam)


class ThreadedPlatform:
    """A dead-letter node behind the HTTP API, on an event loop in a thread of its own.

    Args:
        store_url: the store (the ``store_url`` fixture).
    """

    def __init__(self, store_url: str) -> None:
        self.clock = FakeClock()
        self.url = ""
        self._store_url = store_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self._rig: Rig | None = None

    @property
    def rig(self) -> Rig:
        assert self._rig is not None
        return self._rig

    def call(self, work: Coroutine[object, object, T]) -> T:
        """Run a coroutine on the platform's loop; return its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)

    def start(self) -> None:
        self._thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        self._rig = await self._stack.enter_async_context(
            dead_letter_rig(self._store_url, self.clock)
        )
        runner = web.AppRunner(build_app(self._rig.node), access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    def stop(self) -> None:
        try:
            self.call(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
