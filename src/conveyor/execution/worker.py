"""Run a lambda as a worker process: ``conveyor worker module:app``.

:class:`Worker` is the server itself (an async context manager, for embedding and tests);
:func:`run_worker` is the blocking entry point the CLI calls: it loads the app, serves it until
SIGTERM or SIGINT, then drains gracefully and returns (exit status 0).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from conveyor._gc import tune_for_throughput
from conveyor.errors import RegistrationError
from conveyor.execution._server import (
    DEFAULT_CONCURRENCY,
    ENDPOINT_TTL,
    HEALTH_PATH,
    Worker,
    WorkerHealth,
)
from conveyor.execution.app import Lambda
from conveyor.wire.connections import ConnectionLimits

logger = logging.getLogger("conveyor.execution.worker")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def load_app(ref: str) -> Lambda:
    """Import the :class:`Lambda` named by ``"module:attribute"``.

    The current directory is put first on ``sys.path`` (as uvicorn does), so
    ``conveyor worker tasks:app`` finds ``./tasks.py``. An exception raised by the module's
    own code propagates unchanged, with its traceback.

    Args:
        ref: ``"package.module:app"``; the attribute may be dotted (``"mod:obj.app"``).

    Returns:
        The lambda.

    Raises:
        ValueError: ``ref`` is malformed, the module or attribute does not exist, or the
            attribute is not a :class:`Lambda`.
    """
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected 'module:attribute' (such as 'tasks:app'), got {ref!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Only a missing *target* module is our error; one missing inside it is the app's.
        if e.name is None or not (module_name + ".").startswith(e.name + "."):
            raise
        raise ValueError(f"cannot import module {module_name!r}: {e} (searched {cwd})") from e
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as e:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from e
    if not isinstance(target, Lambda):
        raise ValueError(f"{ref!r} is a {type(target).__name__}, not a conveyor Lambda")
    return target


def run_worker(
    ref: str,
    *,
    server: str,
    host: str = "127.0.0.1",
    port: int = 0,
    concurrency: int = DEFAULT_CONCURRENCY,
    advertise_host: str | None = None,
    signing_secrets: Sequence[str] = (),
    locality: str = "",
    version: str = "",
    ttl: float = ENDPOINT_TTL,
    connections: ConnectionLimits | None = None,
) -> None:
    """Serve the lambda ``ref`` until SIGTERM or SIGINT, then drain and return.

    Prints one line once it serves:
    ``conveyor worker: lambda <name> serving <url> (<n> subscriptions)``.

    Args:
        ref: the app, as ``"module:attribute"`` (see :func:`load_app`).
        server: the platform's base URL.
        host: the address to listen on.
        port: the port to listen on (0 picks a free one).
        concurrency: handler calls run at once.
        advertise_host: the host the platform pushes to, when not ``host``.
        signing_secrets: accept only pushes signed with one of these (Standard Webhooks);
            empty accepts unsigned pushes.
        locality: where this worker runs, ``cloud/region/zone``.
        version: the version of the lambda it runs (a new one starts a release).
        ttl: seconds the platform keeps the endpoint without a heartbeat (renewed every
            third of it).
        connections: idle and header timeouts and the most connections of the push server.

    Raises:
        SystemExit: with status 1 when the app cannot be loaded, the address cannot be bound,
            or the platform refuses the registration or stays unreachable (the reason is
            printed to stderr first).
    """
    try:
        app = load_app(ref)
    except ValueError as e:
        _fail(str(e))
    _configure_logging()
    tune_for_throughput()  # the app is loaded: freeze it out of the collector's sight
    worker = functools.partial(
        Worker,
        app,
        server=server,
        host=host,
        port=port,
        concurrency=concurrency,
        advertise_host=advertise_host,
        signing_secrets=signing_secrets or None,
        locality=locality,
        version=version,
        ttl_seconds=ttl,
        connections=connections,
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            runner.run(_serve(app, worker))
        except RegistrationError as e:
            _fail(str(e))
        except OSError as e:
            _fail(f"cannot listen on {host}:{port}: {e}")
        except asyncio.CancelledError:
            _fail("stopped before the worker was ready")


async def _serve(app: Lambda, worker: Callable[[], Worker]) -> None:
    """Serve until SIGTERM or SIGINT, then drain; ``worker`` makes the server (in the loop)."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    stop = asyncio.Event()
    ready = False

    def on_signal() -> None:
        # Before the worker is ready there is nothing to drain: give up at once.
        if not ready and main is not None:
            main.cancel()
        stop.set()

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        async with worker() as serving:
            ready = True
            count = len(app.subscriptions())
            print(
                f"conveyor worker: lambda {app.name} serving {serving.url} ({count} subscriptions)",
                flush=True,
            )
            await stop.wait()
            logger.info("stopping: draining in-flight work")
            await serving.drain()
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _configure_logging() -> None:
    # Only when the embedding program (the CLI) has not configured logging itself.
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def _fail(message: str) -> NoReturn:
    print(f"conveyor worker: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


__all__ = [
    "HEALTH_PATH",
    "RegistrationError",
    "Worker",
    "WorkerHealth",
    "load_app",
    "run_worker",
]
