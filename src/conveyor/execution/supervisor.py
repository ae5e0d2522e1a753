"""The autoscaling supervisor: ``conveyor worker module:app --min 1 --max N``.

It runs single-process ``conveyor worker`` children (the same arguments; each listens on a
port of its own and registers an endpoint of its own) and, every interval::

    PlatformProbe (SDK) ─► backlog and oldest age of the lambda's unpaused subscriptions
    HealthProbe ─────────► each child's GET /conveyor/health: handled, in_flight
    ScalingPolicy ───────► desired                 (the formula: conveyor.execution.scaling)
    Fleet.scale_to ──────► start children at once; SIGTERM the surplus, which drain
    /metrics ────────────► conveyor_worker_desired_replicas{lambda=…} and the inputs

A child drains on SIGTERM: it deregisters its endpoint, then refuses new pushes with a
throttle (503 + Retry-After, which the platform requeues without counting an attempt),
answers every push it accepted, and exits; so a scale-down loses and duplicates nothing. A
child that exits on its own is started again after a backoff (see
:mod:`conveyor.execution._fleet`). SIGTERM or SIGINT to the supervisor drains every child,
then it exits 0.

With ``observe_only`` nothing is started: the supervisor measures the lambda's registered
endpoints instead, and only exports the desired count, for an external scaler (a Kubernetes
HPA or KEDA ScaledObject; see docs/autoscaling.md).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from conveyor.clock import Clock, SystemClock
from conveyor.errors import ConveyorError, SupervisorError
from conveyor.execution._fleet import Fleet, worker_command
from conveyor.execution._probes import HealthProbe, PlatformProbe
from conveyor.execution.scaling import Decision, Sample, ScalingPolicy, ScalingSettings
from conveyor.execution.worker import _configure_logging, _fail, _loop_factory, load_app

logger = logging.getLogger("conveyor.execution.supervisor")

DEFAULT_INTERVAL = 2.0
"""Seconds between samples."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SupervisorMetrics:
    """The supervisor's Prometheus metrics, labelled with the lambda, in a registry of its own.

    Args:
        lambda_name: the lambda supervised.
        settings: the bounds, exported as gauges.
    """

    def __init__(self, lambda_name: str, settings: ScalingSettings) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["lambda"], registry=self.registry).labels(lambda_name)

        self.desired = gauge(
            "conveyor_worker_desired_replicas", "Worker processes the lambda needs now"
        )
        self.replicas = gauge("conveyor_worker_replicas", "Worker processes serving")
        self.backlog = gauge(
            "conveyor_worker_backlog", "Unfinished events of the lambda's subscriptions"
        )
        self.queued = gauge("conveyor_worker_queued", "Events waiting for a handler")
        self.oldest = gauge(
            "conveyor_worker_oldest_pending_age_seconds", "Age of the oldest unfinished event"
        )
        self.arrival = gauge("conveyor_worker_arrival_rate", "Events arriving per second")
        self.throughput = gauge(
            "conveyor_worker_throughput_per_process", "Events one process handles per second"
        )
        gauge("conveyor_worker_min_replicas", "The fewest processes").set(settings.min_replicas)
        gauge("conveyor_worker_max_replicas", "The most processes").set(settings.max_replicas)
        self.restarts = Counter(
            "conveyor_worker_restarts",
            "Worker processes replaced after exiting on their own",
            ["lambda"],
            registry=self.registry,
        ).labels(lambda_name)

    def update(self, sample: Sample, decision: Decision) -> None:
        """Export one sample and its decision."""
        self.desired.set(decision.desired)
        self.replicas.set(sample.replicas)
        self.backlog.set(sample.backlog)
        self.queued.set(decision.queued)
        self.oldest.set(sample.oldest_age or 0.0)
        self.arrival.set(decision.arrival_rate)
        self.throughput.set(decision.throughput)


@dataclass(eq=False, kw_only=True)
class Supervisor:
    """Samples a lambda's load every interval, decides, and scales a fleet (or only exports).

    Args:
        probe: reads the lambda's load from the platform.
        health: reads the workers' health.
        policy: turns samples into a desired count.
        metrics: where each sample and decision is exported.
        fleet: the children to scale; ``None`` to measure the lambda's registered
            endpoints and only export the desired count.
        clock: times the interval.
        interval: seconds between samples.
    """

    probe: PlatformProbe
    health: HealthProbe
    policy: ScalingPolicy
    metrics: SupervisorMetrics
    fleet: Fleet | None
    clock: Clock
    interval: float
    _unreachable: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0, got {self.interval}")

    async def run(self, stop: asyncio.Event) -> None:
        """Sample, decide and scale every interval until ``stop`` is set."""
        while not stop.is_set():
            await self.step()
            await _sleep_or_stop(self.clock, self.interval, stop)

    async def step(self) -> Decision | None:
        """Take one sample and act on it.

        Returns:
            The decision, or ``None`` when the platform could not be read (nothing changes).
        """
        fleet = self.fleet
        try:
            load = await self.probe.load(endpoints=fleet is None)
        except ConveyorError as e:
            if not self._unreachable:
                logger.warning("cannot read the lambda's load (keeping the count): %s", e)
            self._unreachable = True
            return None
        if self._unreachable:
            logger.info("reading the lambda's load again")
            self._unreachable = False
        urls = load.endpoints if fleet is None else fleet.serving()
        seen = await self.health.poll(urls)
        sample = Sample(
            backlog=load.backlog,
            running=seen.running,
            oldest_age=load.oldest_age,
            completed=self.health.completed,
            replicas=seen.serving,
        )
        current = len(load.endpoints) if fleet is None else fleet.target
        decision = self.policy.observe(sample, current)
        if fleet is not None:
            fleet.scale_to(decision.desired)
        if decision.desired != current:
            logger.info("%d → %d processes: %s", current, decision.desired, decision.reason)
        self.metrics.update(sample, decision)
        return decision


async def _sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    async with asyncio.TaskGroup() as tasks:
        waits = {tasks.create_task(clock.sleep(seconds)), tasks.create_task(stop.wait())}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()


async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, stack: AsyncExitStack
) -> int:
    """Serve ``GET /metrics`` from ``registry`` until ``stack`` closes.

    Returns:
        The port bound (``port``, or the one picked for 0).

    Raises:
        OSError: the address cannot be bound.
    """

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port).start()
    return int(runner.addresses[0][1])


def run_supervisor(
    ref: str,
    *,
    worker_args: Sequence[str],
    server: str,
    settings: ScalingSettings,
    interval: float = DEFAULT_INTERVAL,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    observe_only: bool = False,
) -> None:
    """Supervise the lambda ``ref`` until SIGTERM or SIGINT, then drain every child and return.

    Prints one line once it runs:
    ``conveyor worker: supervising lambda <name> with <min>..<max> processes[, metrics on
    <url>]``.

    Args:
        ref: the app, as ``"module:attribute"``; its name selects the subscriptions measured.
        worker_args: a child's ``conveyor worker`` arguments (the app's reference first).
        server: the platform's URL, or several separated by commas.
        settings: the bounds and tuning of the policy.
        interval: seconds between samples.
        metrics_host: the address the metrics are served on.
        metrics_port: the port of ``GET /metrics`` (0 picks one); ``None`` serves none.
        observe_only: start no process; measure the registered endpoints and export.

    Raises:
        SystemExit: with status 1 when the app cannot be loaded, the metrics port cannot be
            bound, or a worker process refuses its command line (the reason is printed to
            stderr first).
    """
    try:
        app = load_app(ref)
    except ValueError as e:
        _fail(str(e))
    _configure_logging()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            runner.run(
                _supervise(
                    app.name,
                    command=worker_command(worker_args),
                    server=server,
                    settings=settings,
                    interval=interval,
                    metrics_host=metrics_host,
                    metrics_port=metrics_port,
                    observe_only=observe_only,
                )
            )
        except OSError as e:
            _fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {e}")
        except SupervisorError as e:
            _fail(e.message)


async def _supervise(
    lambda_name: str,
    *,
    command: Sequence[str],
    server: str,
    settings: ScalingSettings,
    interval: float,
    metrics_host: str,
    metrics_port: int | None,
    observe_only: bool,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    clock = SystemClock()
    metrics = SupervisorMetrics(lambda_name, settings)
    fleet = None
    try:
        async with AsyncExitStack() as stack:
            where = ""
            if metrics_port is not None:
                port = await serve_metrics(metrics.registry, metrics_host, metrics_port, stack)
                where = f", metrics on http://{metrics_host}:{port}/metrics"
            probe = await stack.enter_async_context(PlatformProbe(server, lambda_name))
            health = await stack.enter_async_context(HealthProbe())
            if not observe_only:
                fleet = Fleet(
                    command,
                    clock=clock,
                    on_restart=metrics.restarts.inc,
                    on_fatal=lambda _: stop.set(),
                )
                await stack.enter_async_context(fleet)
                # At least one child, which registers the subscriptions the probe measures.
                fleet.scale_to(max(1, settings.min_replicas))
            bounds = f"{settings.min_replicas}..{settings.max_replicas}"
            print(
                f"conveyor worker: {'observing' if observe_only else 'supervising'} lambda "
                f"{lambda_name} with {bounds} processes{where}",
                flush=True,
            )
            supervisor = Supervisor(
                probe=probe,
                health=health,
                policy=ScalingPolicy(settings, clock),
                metrics=metrics,
                fleet=fleet,
                clock=clock,
                interval=interval,
            )
            await supervisor.run(stop)
            logger.info("stopping: draining every worker process")
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    if fleet is not None and fleet.failure is not None:
        raise SupervisorError(fleet.failure)


__all__ = [
    "Supervisor",
    "SupervisorError",
    "SupervisorMetrics",
    "run_supervisor",
    "serve_metrics",
    "worker_command",
]
