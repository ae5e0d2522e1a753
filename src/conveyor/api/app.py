"""The aiohttp application of the HTTP API, and the server that runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

import msgspec
from aiohttp import web

from conveyor._gc import tune_for_throughput
from conveyor.api.errors import errors_middleware
from conveyor.api.openapi import openapi_document
from conveyor.api.routes import NODE, ROUTES
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.connections import LimitedSite

log = logging.getLogger("conveyor.api")


def build_app(node: Node) -> web.Application:
    """The API's application over a started node."""
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=node.settings.max_request_bytes
    )
    app[NODE] = node
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    document = msgspec.json.encode(openapi_document())

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_route("GET", "/openapi.json", openapi)
    return app


class Server:
    """A node behind its HTTP API, as ``conveyor serve`` runs it.

    Args:
        settings: the node's settings.
    """

    def __init__(self, settings: NodeSettings, node: Node | None = None) -> None:
        self.settings = settings
        self.node = node or Node(settings)
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    async def start(self) -> None:
        """Start the node, then listen."""
        await self.node.start()
        self._runner = web.AppRunner(build_app(self.node), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = LimitedSite(
            self._runner,
            self.settings.host,
            self.settings.port,
            self.settings.connections,
            backlog=1024,
        )
        await site.start()
        # aiohttp exposes the bound port (for --port 0) only on the runner's addresses.
        for address in self._runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break

    @property
    def url(self) -> str:
        """The API's base URL."""
        return f"http://{self.settings.host}:{self.port}"

    async def aclose(self) -> None:
        """Stop listening, then stop the node (in-flight pushes settle); idempotent."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.node.aclose()


def _install_uvloop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def serve_forever(settings: NodeSettings) -> None:
    """Run ``conveyor serve`` until SIGTERM or SIGINT, then shut down gracefully."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        server = Server(settings)
        await server.start()
        tune_for_throughput()  # after start-up: what it built is frozen out of the collector
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        print(f"conveyor serve: listening on {server.url} (store {settings.store})", flush=True)
        if settings.ready_file:
            with open(settings.ready_file, "w") as f:  # noqa: ASYNC230 - one tiny write at start
                f.write(f"{settings.host}:{server.port}\n")
        await stop.wait()
        print("conveyor serve: stopping (finishing in-flight pushes)", flush=True)
        await server.aclose()

    factory = _install_uvloop()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    sys.stdout.flush()
