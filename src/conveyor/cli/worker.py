"""``conveyor worker``: serve a lambda's handlers, alone or under the autoscaling supervisor."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from conveyor.cli.common import SigningSecret, parse_duration, parse_locality, signing_secrets
from conveyor.cli.connections import (
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    HeaderTimeout,
    IdleTimeout,
    MaxConnections,
    connection_limits,
)
from conveyor.wire.connections import DEFAULT_URL


def worker(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The lambda to serve, as module:attribute.")],
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="CONVEYOR_URL",
            help="The platform's URL; several, comma-separated, for the nodes of a cluster.",
        ),
    ] = DEFAULT_URL,
    host: Annotated[str, typer.Option(help="Address to listen on for pushes.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for pushes (0 picks one).")] = 0,
    concurrency: Annotated[int, typer.Option(help="Handler calls at once.")] = 64,
    advertise_host: Annotated[
        str | None, typer.Option(help="Host the platform should push to (default: --host).")
    ] = None,
    signing_secret: SigningSecret = None,
    locality: Annotated[
        str,
        typer.Option(
            "--locality",
            "--zone",
            envvar="CONVEYOR_LOCALITY",
            help="Where this worker runs: cloud/region/zone (for locality-aware routing).",
        ),
    ] = "",
    version: Annotated[
        str,
        typer.Option(
            "--version",
            envvar="CONVEYOR_LAMBDA_VERSION",
            help="The version of the lambda it runs; a new version starts a canary release.",
        ),
    ] = "",
    ttl: Annotated[
        float,
        typer.Option(help="Seconds the platform keeps the endpoint without a heartbeat (1-3600)."),
    ] = 15.0,
    min_processes: Annotated[
        int | None, typer.Option("--min", help="Autoscale: the fewest processes (default 1).")
    ] = None,
    max_processes: Annotated[
        int | None,
        typer.Option("--max", help="Autoscale: supervise up to this many worker processes."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Autoscale: serve Prometheus metrics on this port (0 picks one)."),
    ] = None,
    target_drain: Annotated[
        str, typer.Option(help="Autoscale: handle the queued backlog within this long.")
    ] = "10s",
    max_age: Annotated[
        str, typer.Option(help="Autoscale: add a process while the oldest event waits longer.")
    ] = "30s",
    scale_interval: Annotated[str, typer.Option(help="Autoscale: time between samples.")] = "2s",
    scale_down_window: Annotated[
        str, typer.Option(help="Autoscale: the need must stay lower this long to drain one.")
    ] = "30s",
    throughput_prior: Annotated[
        float, typer.Option(help="Autoscale: events/s per process assumed until measured.")
    ] = 50.0,
    observe_only: Annotated[
        bool,
        typer.Option(
            "--observe-only",
            help="Autoscale: start no process; export the desired count for an HPA or KEDA.",
        ),
    ] = False,
    idle_timeout: IdleTimeout = IDLE_TIMEOUT,
    header_timeout: HeaderTimeout = HEADER_TIMEOUT,
    max_connections: MaxConnections = MAX_CONNECTIONS,
) -> None:
    """Serve a lambda's handlers: register with the platform and run pushed events.

    With --max, run a supervisor that keeps --min to --max worker processes, as many as the
    lambda's backlog needs (see docs/autoscaling.md).
    """
    if _autoscale(ctx):
        return
    from conveyor.execution.worker import run_worker

    run_worker(
        ref,
        server=server,
        host=host,
        port=port,
        concurrency=concurrency,
        advertise_host=advertise_host,
        signing_secrets=signing_secrets(signing_secret),
        locality=parse_locality(locality),
        version=version,
        ttl=ttl,
        connections=connection_limits(idle_timeout, header_timeout, max_connections),
    )


_AUTOSCALE_OPTIONS = (
    "min_processes",
    "max_processes",
    "metrics_port",
    "target_drain",
    "max_age",
    "scale_interval",
    "scale_down_window",
    "throughput_prior",
    "observe_only",
)


def _autoscale(ctx: typer.Context) -> bool:
    """Run the autoscaling supervisor when --max is given; ``False`` when it is not."""
    given = [
        name
        for name in _AUTOSCALE_OPTIONS
        if (source := ctx.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"
    ]
    p = ctx.params
    if p["max_processes"] is None:
        if given:
            flag = "--" + given[0].removesuffix("_processes").replace("_", "-")
            raise typer.BadParameter("autoscaling options need --max", param_hint=flag)
        return False
    if p["port"] != 0:
        raise typer.BadParameter("each process picks a port of its own", param_hint="--port")
    from conveyor.execution.scaling import ScalingSettings
    from conveyor.execution.supervisor import run_supervisor

    interval = parse_duration(str(p["scale_interval"]))
    try:
        settings = ScalingSettings(
            min_replicas=1 if p["min_processes"] is None else int(p["min_processes"]),
            max_replicas=int(p["max_processes"]),
            target_drain=parse_duration(str(p["target_drain"])),
            max_age=parse_duration(str(p["max_age"])),
            stabilization=parse_duration(str(p["scale_down_window"])),
            rate_window=5 * interval,
            prior_throughput=float(p["throughput_prior"]),
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    if not interval > 0:
        raise typer.BadParameter("must be positive", param_hint="--scale-interval")
    run_supervisor(
        str(p["ref"]),
        worker_args=_child_arguments(ctx, skip=_AUTOSCALE_OPTIONS),
        server=str(p["server"]),
        settings=settings,
        interval=interval,
        metrics_host=str(p["host"]),
        metrics_port=p["metrics_port"],
        observe_only=bool(p["observe_only"]),
    )
    return True


def _child_arguments(ctx: typer.Context, *, skip: tuple[str, ...]) -> list[str]:
    """The command line that gave this command's parameters, less ``skip``.

    Only values given on the command line are repeated: defaults stay defaults, and values
    from the environment reach a child through its inherited environment.
    """
    arguments: list[str] = []
    options: list[str] = []
    for param in ctx.command.params:
        name = param.name
        source = None if name is None else ctx.get_parameter_source(name)
        if name is None or name in skip or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[name]
        values = value if isinstance(value, list | tuple) else [value]
        text = [str(v.value if isinstance(v, Enum) else v) for v in values]
        if param.param_type_name == "argument":
            arguments.extend(text)
        elif getattr(param, "is_flag", False):
            flags = param.opts if value else param.secondary_opts
            options.extend(flags[:1])
        else:
            for item in text:
                options.extend([param.opts[0], item])
    return arguments + options
