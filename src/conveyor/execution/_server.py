"""The worker: an HTTP server that runs pushed batches through a lambda's handlers.

Lifecycle::

    start ─► serve + register ─► (heartbeat every ttl/3) ─► drain ─► closed
                                                             │
           deregister, then answer new pushes 503 ◄──────────┘
           wait for in-flight pushes, close

A push that carries its timeout (``Conveyor-Timeout``) is answered by its deadline: handler
calls still running then are cancelled, or (sync handlers) no longer waited for, and their
events answer ``retry`` (``wire/push.py``).

Invariant: a push accepted before the drain began is answered (unless ``drain_timeout``
passes first); a push that arrives after it is refused with 503 and ``Retry-After``, which the
platform treats as a throttle, so nothing is lost and nothing counts as a failure.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from types import TracebackType

import aiohttp
import msgspec
from aiohttp import web

from conveyor._resource import AsyncResource
from conveyor.clock import Clock, SystemClock
from conveyor.errors import SignatureError
from conveyor.execution._registration import REQUEST_TIMEOUT, Registrar
from conveyor.execution._schemas import SchemaCache
from conveyor.execution.app import Lambda
from conveyor.wire.connections import ConnectionLimits, LimitedSite
from conveyor.wire.push import (
    PUSH_PATH,
    TIMEOUT_HEADER,
    handler_budget,
    parse_timeout,
    push_request_decoder,
)
from conveyor.wire.schemas import EndpointRegistration, ErrorBody, ErrorResponse
from conveyor.wire.signing import Verifier

logger = logging.getLogger("conveyor.execution.worker")

HEALTH_PATH = "/conveyor/health"
DEFAULT_CONCURRENCY = 64
"""Handler calls a worker runs at once, over all its subscriptions."""
ENDPOINT_TTL = 15.0
"""Seconds an endpoint registration lives unless renewed (renewed every third of it)."""
CONNECT_TIMEOUT = 30.0
DRAIN_TIMEOUT = 60.0
FLUSH_TIMEOUT = 5.0
"""Seconds the server waits, once drained, for answers to reach their sockets."""
MAX_PUSH_BYTES = 64 * 1024 * 1024
"""The largest push body accepted."""
DRAINING_RETRY_AFTER = "1"

_encoder = msgspec.json.Encoder()


class WorkerHealth(msgspec.Struct):
    """The body of ``GET /conveyor/health`` (200 while serving, 503 while draining).

    Attributes:
        status: ``ok`` or ``draining``.
        lambda_name: the lambda served (``lambda`` on the wire).
        in_flight: handler calls running now.
        handled: handler calls finished since start.
    """

    status: str
    lambda_name: str = msgspec.field(name="lambda")
    in_flight: int = 0
    handled: int = 0


class _Gate:
    """Admits at most ``size`` handler calls at once, and counts them."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)
        self.running = 0
        self.handled = 0

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        self.running += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.running -= 1
        self.handled += 1
        self._slots.release()


class Worker(AsyncResource):
    """Serves a :class:`Lambda` over HTTP and keeps it registered with the platform.

    Use it as an async context manager: entering starts the server and registers;
    :meth:`drain` (or leaving the block) stops gracefully.

    Args:
        app: the lambda to serve.
        server: the platform's base URL (defaults to ``app.server``).
        host: the address to listen on.
        port: the port to listen on (0 picks a free one; see :attr:`port`).
        concurrency: handler calls run at once; pushes beyond it wait (backpressure).
        advertise_host: the host the platform should push to (defaults to ``host``, or
            127.0.0.1 when ``host`` is a wildcard address).
        clock: times heartbeats, backoff and the drain bound.
        register: register with the platform (off to serve pushes only, e.g. in tests).
        connect_timeout: seconds to keep trying an unreachable platform at start.
        drain_timeout: seconds :meth:`drain` waits for in-flight pushes.
        ttl_seconds: the endpoint registration's time to live.
        signing_secrets: accept only pushes signed with one of these (``whsec_…``, one or
            two while rotating); ``None`` accepts unsigned pushes.
        locality: where this worker runs, ``cloud/region/zone`` (for locality-aware routing).
        version: the version of the lambda it runs (a new one starts a release).
        connections: idle and header timeouts and the most connections of the push server.

    Raises:
        ValueError: an argument is out of range.
    """

    def __init__(
        self,
        app: Lambda,
        *,
        server: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        concurrency: int = DEFAULT_CONCURRENCY,
        advertise_host: str | None = None,
        clock: Clock | None = None,
        register: bool = True,
        connect_timeout: float = CONNECT_TIMEOUT,
        drain_timeout: float = DRAIN_TIMEOUT,
        ttl_seconds: float = ENDPOINT_TTL,
        signing_secrets: Sequence[str] | None = None,
        locality: str = "",
        version: str = "",
        connections: ConnectionLimits | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.app = app
        self.server = server or app.server
        self.endpoint_id = secrets.token_hex(8)
        self._host = host
        self._requested_port = port
        self._advertise_host = _advertisable(advertise_host or host)
        self._concurrency = concurrency
        self._clock: Clock = clock or SystemClock()
        self._register = register
        self._connect_timeout = connect_timeout
        self._drain_timeout = drain_timeout
        self._ttl = ttl_seconds
        self._locality = locality
        self._version = version
        self._connections = connections or ConnectionLimits()
        self._gate = _Gate(concurrency)
        self._verifier = None if not signing_secrets else Verifier(signing_secrets)
        self._port: int | None = None
        # Invariant: _stack is not None exactly while the worker holds resources.
        self._stack: AsyncExitStack | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._registrar: Registrar | None = None
        self._schemas: SchemaCache | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._draining = False
        self._drain_lock = asyncio.Lock()
        # Invariant: _pushes counts pushes accepted (not refused) and not yet answered.
        self._pushes = 0
        self._idle_waiters: list[asyncio.Event] = []

    @property
    def port(self) -> int:
        """The port the server listens on (known once started).

        Raises:
            RuntimeError: the worker has not started.
        """
        if self._port is None:
            raise RuntimeError("the worker has not started")
        return self._port

    @property
    def url(self) -> str:
        """The push URL registered with the platform."""
        return f"http://{self._advertise_host}:{self.port}{PUSH_PATH}"

    @property
    def draining(self) -> bool:
        """Whether the worker has begun to stop (new pushes get 503)."""
        return self._draining

    @property
    def in_flight(self) -> int:
        """Handler calls running now."""
        return self._gate.running

    @property
    def handled(self) -> int:
        """Handler calls finished since start."""
        return self._gate.handled

    async def _enter(self) -> None:
        await self.start()

    async def start(self) -> None:
        """Start serving, then register the subscriptions and the endpoint.

        Raises:
            RuntimeError: the worker was started before.
            RegistrationError: the platform refused the registration or stayed unreachable.
            OSError: the address cannot be bound.
        """
        if self._stack is not None or self._port is not None:
            raise RuntimeError("a Worker can be started once")
        async with AsyncExitStack() as stack:
            # Unwound in reverse: session, server, schema cache, thread pool, then the task group.
            tasks = asyncio.TaskGroup()
            await tasks.__aenter__()
            # Exited without the unwinding exception, which a TaskGroup would wrap in an
            # ExceptionGroup; by then drain() has stopped its only task, the heartbeat.
            stack.push_async_callback(tasks.__aexit__, None, None, None)
            self._executor = ThreadPoolExecutor(
                self._concurrency, thread_name_prefix=f"conveyor-{self.app.name}"
            )
            stack.callback(self._executor.shutdown, wait=False, cancel_futures=True)
            self._schemas = await stack.enter_async_context(SchemaCache(self.server))
            await self._serve(stack)
            if self._register:
                await self._start_registration(stack, tasks)
            self._stack = stack.pop_all()
        logger.info("lambda %s serving %s", self.app.name, self.url)

    async def drain(self) -> None:
        """Stop gracefully, then release everything; idempotent.

        Deregisters the endpoint, then refuses new pushes with 503, waits (up to
        ``drain_timeout``) for every accepted push to be answered, then closes the server.
        """
        async with self._drain_lock:
            if self._stack is None:
                return
            try:
                # Deregister first, still accepting pushes, so the platform stops choosing
                # this endpoint before any push is refused: a refusal (a throttle) would pause
                # the whole subscription for a second, on every endpoint.
                await self._stop_heartbeat()
                if self._registrar is not None:
                    await self._registrar.deregister()
                self._draining = True
                if not await self._wait_idle(self._drain_timeout):
                    logger.warning(
                        "drain timed out after %gs with %d pushes unanswered",
                        self._drain_timeout,
                        self._pushes,
                    )
            finally:
                stack, self._stack = self._stack, None
                await stack.aclose()

    async def aclose(self) -> None:
        """Drain (see :meth:`drain`) and release every resource; idempotent."""
        await self.drain()

    async def _serve(self, stack: AsyncExitStack) -> None:
        web_app = web.Application(client_max_size=MAX_PUSH_BYTES)
        web_app.router.add_post(PUSH_PATH, self._on_push)
        web_app.router.add_get(HEALTH_PATH, self._on_health)
        # A push whose connection the platform closed (it gave the push up: a timeout) has its
        # handler calls cancelled, even one that waited in the socket while this process was
        # stopped: its deadline, counted from when it was read, would come too late.
        runner = web.AppRunner(
            web_app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=FLUSH_TIMEOUT,
            handler_cancellation=True,
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = LimitedSite(runner, self._host, self._requested_port, self._connections)
        await site.start()
        self._port = _bound_port(runner)

    async def _start_registration(self, stack: AsyncExitStack, tasks: asyncio.TaskGroup) -> None:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        )
        self._registrar = Registrar(
            session,
            self.server,
            lambda_name=self.app.name,
            endpoint_id=self.endpoint_id,
            registration=EndpointRegistration(
                url=self.url,
                ttl_seconds=self._ttl,
                concurrency=self._concurrency,
                locality=self._locality,
                version=self._version,
                health_url=f"http://{self._advertise_host}:{self.port}{HEALTH_PATH}",
            ),
            clock=self._clock,
            connect_timeout=self._connect_timeout,
        )
        await self._registrar.register(self.app.subscriptions())
        self._heartbeat = tasks.create_task(self._registrar.renew_forever())

    async def _stop_heartbeat(self) -> None:
        # Wait for the renewal loop to end, so no late PUT re-registers after the DELETE.
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _wait_idle(self, limit: float) -> bool:
        if self._pushes == 0:
            return True
        wake = asyncio.Event()
        self._idle_waiters.append(wake)
        deadline = self._clock.call_at(self._clock.now() + limit, wake.set)
        try:
            await wake.wait()
        finally:
            deadline.cancel()
            self._idle_waiters.remove(wake)
        return self._pushes == 0

    async def _on_push(self, request: web.Request) -> web.Response:
        if self._draining:
            return _error(503, "draining", "the worker is stopping", DRAINING_RETRY_AFTER)
        self._pushes += 1
        # Counted from the arrival, on this host's clock: the header is relative (no skew).
        timeout = parse_timeout(request.headers.get(TIMEOUT_HEADER))
        deadline = None if timeout is None else self._clock.now() + handler_budget(timeout)
        try:
            body = await request.read()
            if self._verifier is not None:
                try:
                    self._verifier.verify(request.headers, body, self._clock.now())
                except SignatureError as e:
                    logger.warning("push refused (%s): %s", e.reason, e.message)
                    return _error(e.status, e.code, e.message)
            try:
                push = push_request_decoder.decode(body)
            except msgspec.DecodeError as e:
                return _error(400, "invalid_request", f"not a push request: {e}")
            schemas = None if self._schemas is None else self._schemas.decoder
            response = await self.app.run_batch(
                push,
                limiter=self._gate,
                executor=self._executor,
                schemas=schemas,
                deadline=deadline,
                clock=self._clock,
            )
            return web.Response(body=_encoder.encode(response), content_type="application/json")
        except asyncio.CancelledError:
            logger.info("push given up by the platform (connection closed): handlers cancelled")
            raise
        finally:
            self._pushes -= 1
            if self._pushes == 0:
                for waiter in self._idle_waiters:
                    waiter.set()

    async def _on_health(self, request: web.Request) -> web.Response:
        health = WorkerHealth(
            status="draining" if self._draining else "ok",
            lambda_name=self.app.name,
            in_flight=self._gate.running,
            handled=self._gate.handled,
        )
        return web.Response(
            body=_encoder.encode(health),
            status=503 if self._draining else 200,
            content_type="application/json",
        )


def _error(status: int, code: str, message: str, retry_after: str | None = None) -> web.Response:
    body = ErrorResponse(ErrorBody(code=code, message=message))
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return web.Response(
        body=_encoder.encode(body), status=status, content_type="application/json", headers=headers
    )


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


def _advertisable(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising a wildcard, not binding one
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
