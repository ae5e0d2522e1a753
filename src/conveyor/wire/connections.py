"""Limits on the connections of Conveyor's HTTP servers (``conveyor serve``, the worker).

aiohttp alone keeps an idle connection open for an hour, serves a request whose headers
drip in for as long, accepts any number of connections, and answers a request line or a
header over its parser's limit with a plain-text 400 and an ERROR traceback in the log (a
client could fill the log at will). :class:`LimitedSite` listens with
:class:`ConnectionLimits` instead:

* **idle**: a connection without a complete request is closed ``idle_timeout`` after it
  opened or after its last response (aiohttp's keep-alive timer);
* **headers**: a request's line and headers must arrive within ``header_timeout`` of its
  first byte, else the connection is closed;
* **count**: beyond ``max_connections`` open connections, a new one is answered 503 with
  ``Retry-After`` in the JSON error envelope and closed;
* a malformed request (a line or header over the limit, bad syntax) is answered 400 in
  the JSON error envelope and logged in one line; a 5xx is in the envelope too, with its
  traceback in the log (it is a bug).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, cast

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from conveyor.wire.schemas import ErrorBody, ErrorResponse

log = logging.getLogger("conveyor.wire.connections")

DEFAULT_PORT = 8400
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
"""Where ``conveyor serve`` listens, and where the clients and workers look, unless told."""


class ConnectionLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits on the connections of an HTTP server (the API, the worker's push server).

    Attributes:
        idle_timeout: seconds a connection without a complete request stays open after it
            opened or after its last response. Longer than the clients' own keep-alive
            (15 s for the SDK, 60 s for the platform's pushes to workers), so that the
            client closes an idle connection first and no request races the close.
        header_timeout: seconds from a request's first byte to the end of its headers;
            a slower request's connection is closed.
        max_connections: open connections at most; a new one beyond is answered 503 with
            ``Retry-After`` and closed.
    """

    idle_timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 75.0
    header_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 512


REFUSAL_LINGER = 2.0
"""Seconds a refused connection is read (and discarded) after its 503, so that the client
reads the answer instead of a reset; past them, or past ``max_connections`` such refusals
at once, a connection is dropped without an answer."""
RETRY_AFTER = 1
_HEADERS_END = (b"\r\n\r\n", b"\n\n")
_encoder = msgspec.json.Encoder()

__all__ = ["DEFAULT_PORT", "DEFAULT_URL", "ConnectionLimits", "LimitedSite"]


def _envelope(code: str, message: str, rule: str | None = None) -> bytes:
    return _encoder.encode(ErrorResponse(ErrorBody(code=code, message=message, rule=rule)))


class _Count:
    """The open connections of one site, and whether it said it was full."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.lingering = 0
        self.full = False

    def admit(self) -> bool:
        if self.open < self.limits.max_connections:
            if self.full:
                self.full = False
                log.info("below %d open connections again", self.limits.max_connections)
            return True
        if not self.full:  # one line when the cap is reached, not one per refusal
            self.full = True
            log.warning(
                "%d connections open: refusing new ones with 503 (max_connections)",
                self.open,
            )
        return False


class _Handler(web.RequestHandler):
    """aiohttp's connection handler, with the header timeout and the JSON error answers.

    Invariant: the header timer runs only from the first byte of a request received while
    no request was under way until the end of its headers (a blank line). A request whose
    end of headers is missed is still bounded by the idle timeout, never closed early.
    """

    def __init__(self, manager: web.Server, count: _Count, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._count = count
        self._header_timer: asyncio.TimerHandle | None = None
        self._between_requests = True
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._count.open += 1
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._count.open -= 1
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._between_requests:
            self._between_requests = False
            self._tail = b""
            self._header_timer = asyncio.get_running_loop().call_later(
                self._count.limits.header_timeout, self._headers_too_slow
            )
        if self._header_timer is not None:
            # (no copy of the chunk: only its first bytes join the tail of the one before)
            joint = self._tail + data[:3]
            if any(end in data or end in joint for end in _HEADERS_END):
                self._stop_header_timer()
            self._tail = (self._tail + data)[-3:] if len(data) < 3 else data[-3:]
        super().data_received(data)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        self._between_requests = True
        return answered

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.warning(
            "closed a connection from %s: its request headers took over %gs (header_timeout)",
            peer,
            self._count.limits.header_timeout,
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer in the JSON error envelope: a malformed request in one log line, a server
        error with its traceback."""
        if request.writer.output_size > 0:  # part of an answer is out: nothing more to say
            raise ConnectionError("the response was partly sent before the error")
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            body = _envelope("internal_error", "the node failed to answer; see its log")
        else:
            text, rule = _malformed(exc, message)
            log.warning("refused a malformed request from %s: %s", request.remote, text)
            body = _envelope("invalid_request", f"malformed HTTP request: {text}", rule)
        response = web.Response(status=status, body=body, content_type="application/json")
        response.force_close()
        return response


def _malformed(exc: BaseException | None, message: str | None) -> tuple[str, str]:
    """What is wrong with a request the parser refused, and the rule it broke."""
    if isinstance(exc, LineTooLong):
        return f"the request line or a header is longer than {exc.args[1]} bytes", "max_length"
    text = (message or str(exc) or "unreadable").splitlines()[0]
    return text[:200], "http"


class _Refusal(asyncio.Protocol):
    """A connection over ``max_connections``: a 503 in the envelope, then closed."""

    _ANSWER = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    )

    def __init__(self, count: _Count) -> None:
        self._count = count
        self._linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast("asyncio.Transport", transport)  # a TCP server's transports
        if self._count.lingering >= self._count.limits.max_connections:
            transport.abort()  # a flood: not even an answer
            return
        self._count.lingering += 1
        body = _envelope(
            "too_many_connections",
            f"the server has {self._count.limits.max_connections} connections open; "
            f"retry in {RETRY_AFTER} s",
        )
        transport.write(self._ANSWER % (RETRY_AFTER, len(body), body))
        transport.write_eof()
        self._linger = asyncio.get_running_loop().call_later(REFUSAL_LINGER, transport.abort)

    def data_received(self, data: bytes) -> None:
        """The request is read and dropped: closing with it unread would reset the answer."""

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._count.lingering -= 1


class LimitedSite(web.BaseSite):
    """A TCP site of an :class:`aiohttp.web.AppRunner` whose connections keep ``limits``.

    Args:
        runner: the set-up runner of the application.
        host: the address to listen on.
        port: the port (0 picks a free one).
        limits: the connection limits.
        backlog: the listen backlog.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: ConnectionLimits,
        *,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._count = _Count(limits)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        """Connections open now (refused ones not counted)."""
        return self._count.open

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("set the runner up before starting its site")
        loop = asyncio.get_running_loop()
        limits = self._count.limits

        def connection() -> asyncio.Protocol:
            if not self._count.admit():
                return _Refusal(self._count)
            return _Handler(
                server,
                self._count,
                loop=loop,
                keepalive_timeout=limits.idle_timeout,
                access_log=None,
            )

        self._server = await loop.create_server(
            connection, self._host, self._port, backlog=self._backlog
        )
