"""Connection limits of the HTTP servers, over real sockets on 127.0.0.1: the API's
:class:`~conveyor.api.app.Server` (as ``conveyor serve`` runs it) and the worker's push server.

The configured timeouts are small (tenths of a second); each test waits for what must
happen with a bound many times longer, and fails when it does not happen at all (aiohttp
alone keeps an idle connection for an hour).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from conveyor.api.app import Server
from conveyor.clock import FakeClock
from conveyor.execution import Lambda, Worker
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.connections import ConnectionLimits, LimitedSite
from conveyor.wire.schemas import ErrorResponse

BOUND = 10.0  # seconds: what a 0.3 s timeout must do well within
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Answer = tuple[int, dict[str, str], bytes]
Serve = Callable[[ConnectionLimits], Awaitable[int]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start the API with the given limits on a free port; the port."""
    servers: list[Server] = []

    async def start(limits: ConnectionLimits) -> int:
        settings = NodeSettings(
            store=str(tmp_path / f"c{len(servers)}.db"), port=0, connections=limits
        )
        server = Server(settings, Node(settings, clock=FakeClock()))
        await server.start()
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        await server.aclose()


Connect = Callable[[int], Awaitable[Conn]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open raw connections to 127.0.0.1; each is closed after the test."""
    opened: list[asyncio.StreamWriter] = []

    async def open_one(port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened.append(writer)
        return reader, writer

    yield open_one
    for writer in opened:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed(conn: Conn, within: float = BOUND) -> bytes | None:
    """What the server sent until it closed the connection, or ``None`` if it kept it open."""
    reader, _ = conn
    try:
        return await asyncio.wait_for(reader.read(), within)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""


async def answer(conn: Conn) -> Answer:
    """Read one HTTP answer (with a Content-Length body)."""
    reader, _ = conn
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def get(conn: Conn, path: str = "/v1/health", extra: bytes = b"") -> Answer:
    _, writer = conn
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")
    return await answer(conn)


def hang_up(conn: Conn) -> None:
    conn[1].close()


# -- idle and header timeouts -------------------------------------------------------------------
async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    serve: Serve, connect: Connect
) -> None:
    # Given the API with an idle timeout of 0.3 s
    port = await serve(ConnectionLimits(idle_timeout=0.3))

    # When a client connects and sends nothing, and another idles after an answer
    silent = await connect(port)
    kept = await connect(port)
    status, _, _ = await get(kept)

    # Then the server closes both, without an answer to the silent one
    assert status == 200
    assert await closed(silent) == b""
    assert await closed(kept) == b""


async def test_a_request_whose_headers_drip_in_is_cut_off_by_the_header_timeout(
    serve: Serve, connect: Connect
) -> None:
    # Given the API with a header timeout of 0.3 s (and a long idle timeout)
    port = await serve(ConnectionLimits(idle_timeout=60, header_timeout=0.3))
    conn = await connect(port)
    _, writer = conn

    finished = False

    async def drip() -> None:
        nonlocal finished
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n")
        with contextlib.suppress(ConnectionError):
            for n in range(60):  # a header every 0.1 s: 6 s in all
                await asyncio.sleep(0.1)
                writer.write(b"X-Drip-%d: 1\r\n" % n)
                await writer.drain()
            writer.write(b"\r\n")
            finished = True

    # When its headers arrive one every 0.1 s
    dripping = asyncio.create_task(drip())
    sent = await closed(conn)
    dripping.cancel()

    # Then the connection is closed unanswered before the headers end
    assert sent == b""
    assert not finished


async def test_slow_but_timely_headers_and_a_second_request_are_served(
    serve: Serve, connect: Connect
) -> None:
    # Given the API with a header timeout of 1 s
    port = await serve(ConnectionLimits(idle_timeout=60, header_timeout=1.0))
    conn = await connect(port)
    _, writer = conn

    # When a request's headers come in two parts 0.2 s apart, and after its answer the
    # connection waits, then carries a second request
    writer.write(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n")
    await asyncio.sleep(0.2)
    writer.write(b"X-Late: 1\r\n\r\n")
    first_status, _, _ = await answer(conn)
    await asyncio.sleep(1.5)  # longer than the header timeout, between requests
    second_status, _, _ = await get(conn)

    # Then both are served on the same connection
    assert (first_status, second_status) == (200, 200)


# -- the connection cap ---------------------------------------------------------------------------
async def test_a_connection_beyond_the_cap_gets_503_in_the_envelope_until_one_closes(
    serve: Serve, connect: Connect
) -> None:
    # Given the API with at most 2 connections, both open and served
    port = await serve(ConnectionLimits(max_connections=2))
    first, second = await connect(port), await connect(port)
    assert (await get(first))[0] == (await get(second))[0] == 200

    # When a third connects
    third = await connect(port)
    status, headers, body = await answer(third)

    # Then it is answered 503 with Retry-After in the JSON envelope, and closed
    error = msgspec.json.decode(body, type=ErrorResponse).error
    assert (status, error.code) == (503, "too_many_connections")
    assert headers["retry-after"] == "1"
    assert await closed(third) == b""

    # And once one of the two hangs up, a new connection is served
    hang_up(first)
    for _ in range(100):
        fourth = await connect(port)
        status, _, _ = await get(fourth)
        if status == 200:
            break
        await asyncio.sleep(0.05)
    assert status == 200


# -- malformed requests ---------------------------------------------------------------------------
async def test_a_header_over_the_parser_limit_gets_400_in_the_envelope_and_one_log_line(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the API
    port = await serve(ConnectionLimits())
    caplog.set_level(logging.INFO)

    # When a request carries a header of 9,000 bytes (aiohttp's limit is 8,190)
    status, headers, body = await get(await connect(port), extra=b"X-Big: " + b"a" * 9000 + b"\r\n")

    # Then it is a 400 in the JSON envelope naming the rule
    error = msgspec.json.decode(body, type=ErrorResponse).error
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert (error.code, error.rule) == ("invalid_request", "max_length")

    # And the log has one line for it, without a traceback, and no error
    mine = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in mine] == [(logging.WARNING, None)]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_handler_that_fails_is_a_500_in_the_envelope_with_its_traceback_logged(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a site over an app whose handler fails
    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application()
    app.router.add_get("/", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = LimitedSite(runner, "127.0.0.1", 0, ConnectionLimits())
    await site.start()
    port = runner.addresses[0][1]
    try:
        # When it is called
        status, _, body = await get(await connect(port), "/")
    finally:
        await runner.cleanup()

    # Then the answer is a 500 in the envelope, and the bug's traceback is in the log
    assert (status, msgspec.json.decode(body, type=ErrorResponse).error.code) == (
        500,
        "internal_error",
    )
    assert any(r.exc_info and r.levelno == logging.ERROR for r in caplog.records)


# -- the worker's push server ---------------------------------------------------------------------
async def test_the_workers_push_server_keeps_the_same_limits(connect: Connect) -> None:
    # Given a worker whose push server closes idle connections after 0.3 s and takes 1
    limits = ConnectionLimits(idle_timeout=0.3, max_connections=1)
    async with Worker(Lambda("billing"), register=False, connections=limits) as worker:
        # When a client connects and says nothing, and a second one connects meanwhile
        silent = await connect(worker.port)
        await asyncio.sleep(0.05)
        second = await connect(worker.port)
        refused, _, _ = await answer(second)

        # Then the second is refused with 503 and the first closed at the idle timeout
        assert refused == 503
        assert await closed(silent) == b""
