"""``conveyor``: run a node or a worker, and drive a running platform from the shell.

Every command that talks to a running platform takes ``--server`` (or ``CONVEYOR_URL``) and
prints a table, or JSON with ``--json``. Errors print the server's message, field and rule
and exit with status 1.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from conveyor._cli_bulk import publish_many
from conveyor._cli_connections import (
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    HeaderTimeout,
    IdleTimeout,
    MaxConnections,
    connection_limits,
)
from conveyor._cli_dlq import dlq_app
from conveyor._cli_endpoint import endpoint_app, print_lambdas
from conveyor._cli_release import release_app
from conveyor._cli_schema import schema_app
from conveyor.delivery.health import HealthPolicy
from conveyor.errors import ConveyorError, InvalidRequest
from conveyor.model import DeliveryFormat, Priority, RetryPolicy, SchemaSettings, Subscription
from conveyor.settings import NodeSettings
from conveyor.wire.connections import DEFAULT_PORT, DEFAULT_URL

if TYPE_CHECKING:
    from conveyor.client import Client
    from conveyor.wire.schemas import SubscriptionInfo

app = typer.Typer(
    name="conveyor",
    help="Conveyor: durable events and tasks pushed to your Python lambdas.",
    no_args_is_help=True,
    add_completion=False,
)
topic_app = typer.Typer(help="Create and inspect topics.", no_args_is_help=True)
sub_app = typer.Typer(help="Create and inspect subscriptions.", no_args_is_help=True)
app.add_typer(topic_app, name="topic")
app.add_typer(sub_app, name="subscription")
app.add_typer(dlq_app, name="dlq")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(schema_app, name="schema")
app.add_typer(release_app, name="release")
app.command("publish-many")(publish_many)

console = Console()
err = Console(stderr=True)

Server = Annotated[
    str, typer.Option("--server", envvar="CONVEYOR_URL", help="The platform's base URL.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


SigningSecret = Annotated[
    str | None,
    typer.Option(
        "--signing-secret",
        envvar="CONVEYOR_SIGNING_SECRETS",
        help="Standard Webhooks secrets (whsec_…), comma-separated: two while rotating.",
    ),
]


def parse_duration(text: str) -> float:
    """Seconds from ``1.5``, ``250ms``, ``30s``, ``5m``, ``2h`` or ``7d``.

    Raises:
        typer.BadParameter: the text is not a duration.
    """
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 30s, 5m, 250ms)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _fail(error: ConveyorError) -> NoReturn:
    err.print(f"[bold red]error:[/] {error.message}")
    if isinstance(error, InvalidRequest):
        if error.field or error.rule:
            err.print(f"  field: {error.field or '-'}   rule: {error.rule or '-'}")
        for detail in getattr(error, "errors", [])[1:]:
            message = getattr(detail, "message", str(detail))
            err.print(f"  events[{getattr(detail, 'index', '?')}]: {message}")
    raise typer.Exit(1)


def _print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


@contextlib.contextmanager
def _session(server: str) -> Iterator[Client]:
    """A client of the node at ``server``; a ConveyorError inside prints and exits 1."""
    from conveyor.client import Client

    with Client(server) as client:
        try:
            yield client
        except ConveyorError as e:
            _fail(e)


# -- processes --------------------------------------------------------------------------------
@app.command()
def serve(
    store: Annotated[
        str, typer.Option(help="SQLite file (or sqlite:///path) or postgresql:// URL.")
    ] = "conveyor.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks one).")] = DEFAULT_PORT,
    roles: Annotated[
        str, typer.Option(help="frontend (API, publishes), dispatch (timers, delivery), or both.")
    ] = "frontend,dispatch",
    node_id: Annotated[
        str | None, typer.Option(help="This node's id in a cluster (default hostname:port).")
    ] = None,
    lease_ttl: Annotated[
        float, typer.Option(help="Seconds before a silent node's partitions move.")
    ] = 10.0,
    ready_file: Annotated[
        Path | None, typer.Option(help="Write host:port here once serving.")
    ] = None,
    signing_secret: SigningSecret = None,
    locality: Annotated[
        str,
        typer.Option(
            envvar="CONVEYOR_LOCALITY",
            help="Where this node runs (cloud/region/zone): the default locality preference.",
        ),
    ] = "",
    probe_interval: Annotated[
        float, typer.Option(help="Seconds between active health probes of endpoints (0: off).")
    ] = 5.0,
    probe_timeout: Annotated[float, typer.Option(help="Seconds a health probe waits.")] = 1.0,
    outlier_failures: Annotated[
        int, typer.Option(help="Failed pushes in a row that eject an endpoint.")
    ] = 5,
    ejection_time: Annotated[
        float, typer.Option(help="Seconds of a first ejection (longer for each repeat).")
    ] = 30.0,
    max_ejection_time: Annotated[float, typer.Option(help="Longest ejection, seconds.")] = 300.0,
    idle_timeout: IdleTimeout = IDLE_TIMEOUT,
    header_timeout: HeaderTimeout = HEADER_TIMEOUT,
    max_connections: MaxConnections = MAX_CONNECTIONS,
    timer_window: Annotated[
        float,
        typer.Option(help="Seconds ahead that delayed events are held in memory.", min=0.1),
    ] = 30.0,
    timer_lead: Annotated[
        float,
        typer.Option(
            help="Seconds before their time that delayed events enter the log (held until due).",
            min=0.0,
        ),
    ] = 0.1,
    health_overdue_after: Annotated[
        float,
        typer.Option(
            min=0,
            help="Fail /v1/health once a delayed event is this many seconds overdue (0: never).",
        ),
    ] = 30.0,
) -> None:
    """Run a Conveyor node: the HTTP API, the scheduler, flow control and delivery.

    On PostgreSQL, run it on several hosts: nodes share the partitions by lease.
    """
    from conveyor.api.app import serve_forever
    from conveyor.cluster import parse_roles

    try:
        parse_roles(roles)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    secrets = _signing_secrets(signing_secret)
    try:
        health = msgspec.convert(
            {
                "probe_interval": probe_interval,
                "probe_timeout": probe_timeout,
                "consecutive_failures": outlier_failures,
                "ejection_time": ejection_time,
                "max_ejection_time": max_ejection_time,
            },
            HealthPolicy,
        )
    except msgspec.ValidationError as e:
        raise typer.BadParameter(str(e)) from e
    settings = NodeSettings(
        store=store,
        host=host,
        port=port,
        roles=roles,
        node_id=node_id,
        lease_ttl=lease_ttl,
        ready_file=str(ready_file) if ready_file else None,
        signing_secrets=tuple(secrets),
        locality=_locality(locality),
        health=health,
        connections=connection_limits(idle_timeout, header_timeout, max_connections),
        timer_window_seconds=timer_window,
        timer_lead_seconds=timer_lead,
        health_overdue_seconds=health_overdue_after,
    )
    try:
        serve_forever(settings)
    except (ConveyorError, ValueError, OSError) as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from e


@app.command()
def health(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Ask a node whether it does its job; exit 1 and say why when it does not."""
    with _session(server) as client:
        answer = client.health()
    if as_json:
        _print_json(answer)
    elif answer.status == "ok":
        console.print(f"ok: conveyor {answer.version} on {answer.store}")
    else:
        for problem in answer.problems:
            err.print(f"[bold red]failing:[/] {problem}")
    if answer.status != "ok":
        raise typer.Exit(1)


@app.command()
def migrate(
    store: Annotated[
        str, typer.Option(help="SQLite file (or sqlite:///path) or postgresql:// URL.")
    ] = "conveyor.db",
) -> None:
    """Create or upgrade the store's schema (serve also does this on start)."""
    import asyncio

    from conveyor.node import open_store
    from conveyor.store.sql import SqlStore

    async def run() -> int:
        async with open_store(store) as opened:
            return opened.schema_version if isinstance(opened, SqlStore) else 0

    try:
        version = asyncio.run(run())
    except (ConveyorError, OSError) as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from e
    console.print(f"store {store}: schema version {version}")


@app.command()
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
        signing_secrets=_signing_secrets(signing_secret),
        locality=_locality(locality),
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


def _locality(text: str) -> str:
    from conveyor.model import LOCALITY_PATTERN

    if text and not re.match(LOCALITY_PATTERN, text):
        raise typer.BadParameter(
            "must be cloud/region/zone (or a prefix), letters, digits, '.', '_' or '-'",
            param_hint="--locality",
        )
    return text


def _signing_secrets(text: str | None) -> list[str]:
    if not text:
        return []
    from conveyor.wire.signing import split_secrets

    try:
        return split_secrets(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--signing-secret") from e


# -- topics -----------------------------------------------------------------------------------
def _json_file(path: Path | None, option: str) -> dict[str, object] | None:
    """The JSON object in a file an option names.

    Raises:
        typer.BadParameter: it cannot be read, is not JSON, or not an object.
    """
    if path is None:
        return None
    try:
        value = json.loads(path.read_text())
    except OSError as e:
        raise typer.BadParameter(f"cannot read {path}: {e.strerror}", param_hint=option) from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise typer.BadParameter(f"{path} is not JSON: {e}", param_hint=option) from e
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{path} holds no JSON object", param_hint=option)
    return value


@topic_app.command("create")
def topic_create(
    name: str,
    partitions: Annotated[int, typer.Option(help="Partitions (keys spread over them).")] = 4,
    schema: Annotated[
        Path | None, typer.Option(help="A JSON Schema file every payload must match.")
    ] = None,
    max_payload_bytes: Annotated[int, typer.Option(help="Largest payload accepted.")] = 1 << 20,
    retention: Annotated[str, typer.Option(help="How long finished events are kept.")] = "7d",
    subject: Annotated[
        str | None, typer.Option(help="Bind to this schema-registry subject.")
    ] = None,
    first_version: Annotated[int, typer.Option(help="Oldest subject version accepted.")] = 1,
    last_version: Annotated[
        int | None, typer.Option(help="Newest subject version accepted (default: latest).")
    ] = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Create a topic (or check that an identical one exists)."""
    schema_doc = _json_file(schema, "--schema")
    try:
        settings = (
            None
            if subject is None
            else SchemaSettings(subject, first_version=first_version, last_version=last_version)
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    with _session(server) as client:
        topic = client.create_topic(
            name,
            partitions=partitions,
            schema=schema_doc,
            max_payload_bytes=max_payload_bytes,
            retention_seconds=int(parse_duration(retention)),
            schema_settings=settings,
        )
    if as_json:
        _print_json(topic)
    else:
        console.print(f"topic [bold]{topic.name}[/] ready ({topic.partitions} partitions)")


@topic_app.command("list")
def topic_list(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """List topics."""
    with _session(server) as client:
        topics = client.list_topics()
    if as_json:
        _print_json(topics)
        return
    table = Table("topic", "partitions", "schema", "max payload", "retention")
    for t in topics:
        table.add_row(
            t.name,
            str(t.partitions),
            "yes" if t.schema else "-",
            str(t.max_payload_bytes),
            f"{t.retention_seconds}s",
        )
    console.print(table)


@topic_app.command("show")
def topic_show(name: str, server: Server = DEFAULT_URL) -> None:
    """Show a topic as JSON."""
    with _session(server) as client:
        _print_json(client.get_topic(name))


# -- subscriptions ----------------------------------------------------------------------------
@sub_app.command("create")
def subscription_create(
    name: str,
    topic: Annotated[str, typer.Option(help="The topic to read.")],
    lambda_name: Annotated[str, typer.Option("--lambda", help="The lambda to push to.")],
    ordered: Annotated[bool, typer.Option(help="Per-key FIFO delivery.")] = False,
    max_concurrency: Annotated[int, typer.Option(help="Events in flight at once.")] = 512,
    min_concurrency: Annotated[int, typer.Option(help="Least adaptive limit.")] = 1,
    adaptive: Annotated[
        bool, typer.Option(help="Move the limit with the lambda's latency and errors.")
    ] = False,
    max_batch: Annotated[int, typer.Option(help="Events per push.")] = 256,
    max_batch_bytes: Annotated[int, typer.Option(help="Payload bytes per push.")] = 4 << 20,
    max_wait: Annotated[str, typer.Option(help="Wait this long to fill a push (0s).")] = "0s",
    push_timeout: Annotated[str, typer.Option(help="Wait for a push's answer.")] = "30s",
    max_attempts: Annotated[int, typer.Option(help="Deliveries before dead.")] = 5,
    min_backoff: Annotated[str, typer.Option(help="Least wait before a retry.")] = "1s",
    max_backoff: Annotated[str, typer.Option(help="Most wait before a retry.")] = "5m",
    multiplier: Annotated[float, typer.Option(help="Backoff growth per attempt.")] = 2.0,
    max_retry_duration: Annotated[
        str | None, typer.Option(help="No retry this long after the first attempt (e.g. 1h).")
    ] = None,
    dead_letter_topic: Annotated[
        str | None, typer.Option(help="Topic receiving dead events.")
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="What the lambda receives: json, avro or protobuf.")
    ] = "json",
    cloudevents: Annotated[bool, typer.Option(help="Wrap each event in a CloudEvent.")] = False,
    schema_version: Annotated[
        int | None, typer.Option(help="Deliver in this version of the topic's subject.")
    ] = None,
    filter_pattern: Annotated[
        str | None,
        typer.Option("--filter", help="An EventBridge-style pattern (JSON, or @file.json)."),
    ] = None,
    locality: Annotated[
        list[str] | None,
        typer.Option(
            "--locality",
            help="A preferred place (cloud/region/zone or a prefix); repeat, most preferred first.",
        ),
    ] = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Create a subscription: the topic's events pushed to a lambda."""
    try:
        retry = RetryPolicy(
            max_attempts=max_attempts,
            min_backoff=parse_duration(min_backoff),
            max_backoff=parse_duration(max_backoff),
            multiplier=multiplier,
            max_retry_duration=parse_duration(max_retry_duration) if max_retry_duration else None,
        )
        fmt = msgspec.convert(
            {"encoding": encoding, "cloudevents": cloudevents, "schema_version": schema_version},
            DeliveryFormat,
        )
    except (ValueError, msgspec.ValidationError) as e:
        raise typer.BadParameter(str(e)) from e
    with _session(server) as client:
        info = client.create_subscription(
            name,
            topic,
            lambda_name,
            ordered=ordered,
            max_concurrency=max_concurrency,
            min_concurrency=min_concurrency,
            adaptive=adaptive,
            max_batch=max_batch,
            max_batch_bytes=max_batch_bytes,
            max_wait=parse_duration(max_wait),
            push_timeout=parse_duration(push_timeout),
            retry=retry,
            dead_letter_topic=dead_letter_topic,
            format=fmt,
            filter=_pattern(filter_pattern),
            locality=[_locality(place) for place in locality or ()],
        )
    if as_json:
        _print_json(info)
    else:
        console.print(f"subscription [bold]{name}[/]: {topic} → lambda {lambda_name}")
        _print_warnings([info])


@sub_app.command("list")
def subscription_list(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """List subscriptions with backlog, in-flight, retrying and dead counts."""
    with _session(server) as client:
        infos = client.list_subscriptions()
    if as_json:
        _print_json(infos)
        return
    table = Table(
        "subscription",
        "topic",
        "lambda",
        "ordered",
        "backlog",
        "in flight",
        "retrying",
        "dead",
        "oldest",
        "limit",
        "gate",
    )
    for i in infos:
        s, st = i.subscription, i.stats
        oldest = "-" if st.oldest_pending_age is None else f"{st.oldest_pending_age:.1f}s"
        table.add_row(
            s.name,
            s.topic,
            s.lambda_name,
            "yes" if s.ordered else "no",
            str(st.backlog),
            str(st.in_flight),
            str(st.retrying),
            str(st.dead),
            oldest,
            "-" if st.concurrency is None else str(st.concurrency.limit),
            _gate(s),
        )
    console.print(table)
    _print_warnings(infos)


def _print_warnings(infos: list[SubscriptionInfo]) -> None:
    """What keeps a subscription's events from being delivered (e.g. no endpoints)."""
    for info in infos:
        for warning in info.stats.warnings:
            err.print(f"[bold yellow]warning:[/] subscription {info.subscription.name}: {warning}")


def _pattern(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise typer.BadParameter(f"cannot read {text[1:]}: {e.strerror}") from e
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"--filter is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise typer.BadParameter("--filter must be a JSON object")
    return value


def _gate(sub: Subscription) -> str:
    control = sub.control
    parts = ["paused" if control.paused else "open"]
    if control.rate_limit is not None:
        parts.append(f"{control.rate_limit.per_second:g}/s burst {control.rate_limit.burst}")
    return ", ".join(parts)


@sub_app.command("show")
def subscription_show(name: str, server: Server = DEFAULT_URL) -> None:
    """Show a subscription and its live figures as JSON."""
    with _session(server) as client:
        _print_json(client.get_subscription(name))


@sub_app.command("pause")
def subscription_pause(name: str, server: Server = DEFAULT_URL) -> None:
    """Pause pushes; the backlog keeps growing and stays visible."""
    with _session(server) as client:
        info = client.pause(name)
    console.print(f"subscription [bold]{name}[/] paused (backlog {info.stats.backlog})")


@sub_app.command("resume")
def subscription_resume(name: str, server: Server = DEFAULT_URL) -> None:
    """Resume a paused subscription."""
    with _session(server) as client:
        info = client.resume(name)
    console.print(f"subscription [bold]{name}[/] resumed (backlog {info.stats.backlog})")


@sub_app.command("purge")
def subscription_purge(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    server: Server = DEFAULT_URL,
) -> None:
    """Drain to drop: every event published until now is dropped unpushed."""
    if not yes:
        typer.confirm(f"drop every event of {name!r} published until now?", abort=True)
    with _session(server) as client:
        info = client.purge(name)
    count = info.purged or 0
    console.print(
        f"subscription [bold]{name}[/] purged: {count} unfinished event"
        f"{'' if count == 1 else 's'} (backlog and retrying) dropped unpushed"
    )


# A negative rate reaches the command as a value (refused by the rule of rates), not as an
# unknown option "-1".
@sub_app.command("rate-limit", context_settings={"ignore_unknown_options": True})
def subscription_rate_limit(
    name: str,
    per_second: Annotated[
        float | None, typer.Argument(help="Events per second (omit with --off).")
    ] = None,
    burst: Annotated[int, typer.Option(help="Events that may go at once.")] = 1,
    off: Annotated[bool, typer.Option("--off", help="Remove the rate limit.")] = False,
    server: Server = DEFAULT_URL,
) -> None:
    """Set (or remove, with --off) a subscription's rate limit, at run time."""
    if off == (per_second is not None):
        raise typer.BadParameter("give a rate in events per second, or --off")
    with _session(server) as client:
        if per_second is None:
            client.clear_rate_limit(name)
            console.print(f"subscription [bold]{name}[/]: no rate limit")
        else:
            client.set_rate_limit(name, per_second, burst=burst)
            console.print(f"subscription [bold]{name}[/]: {per_second:g}/s, burst {burst}")


@sub_app.command("delete")
def subscription_delete(name: str, server: Server = DEFAULT_URL) -> None:
    """Delete a subscription and its progress."""
    with _session(server) as client:
        client.delete_subscription(name)
    console.print(f"subscription [bold]{name}[/] deleted")


# -- events -----------------------------------------------------------------------------------
def _attributes(pairs: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"attribute {pair!r} is not name=value")
        out[name] = value
    return out or None


@app.command()
def publish(
    topic: str,
    payload: Annotated[
        str | None,
        typer.Argument(help="The payload as JSON ('-' reads stdin); left out with --data-file."),
    ] = None,
    key: Annotated[str | None, typer.Option(help="Ordering key.")] = None,
    attr: Annotated[list[str] | None, typer.Option(help="Attribute name=value (repeat).")] = None,
    delay: Annotated[str | None, typer.Option(help="Deliver after this long (30s, 5m).")] = None,
    deliver_at: Annotated[
        datetime | None,
        typer.Option(help="Deliver at this time (ISO 8601, UTC unless a zone is given)."),
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Dedup key.")] = None,
    priority: Annotated[Priority, typer.Option(help="The lane it travels in.")] = Priority.NORMAL,
    data_file: Annotated[
        Path | None,
        typer.Option(
            help="Publish this file's bytes as the data ('-' reads stdin), e.g. Avro or "
            "Protobuf binary for a topic bound to a registry subject."
        ),
    ] = None,
    content_type: Annotated[
        str | None,
        typer.Option(
            help="The media type of --data-file: application/vnd.apache.avro, "
            "application/x-protobuf, application/cloudevents+json … (default: "
            "application/json)."
        ),
    ] = None,
    schema_version: Annotated[
        int | None,
        typer.Option(min=1, help="The subject's version the data is written with."),
    ] = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Publish one event; prints its id once it is durable."""
    data = _publish_input(payload, data_file, content_type)
    if deliver_at is not None and deliver_at.tzinfo is None:
        from datetime import UTC

        deliver_at = deliver_at.replace(tzinfo=UTC)
    with _session(server) as client:
        try:
            if isinstance(data, bytes):
                result = client.publish_encoded(
                    topic,
                    data,
                    content_type or "application/json",
                    key=key,
                    attributes=_attributes(attr or []),
                    delay=parse_duration(delay) if delay else None,
                    deliver_at=deliver_at,
                    idempotency_key=idempotency_key,
                    priority=priority,
                    schema_version=schema_version,
                )
            else:
                result = client.publish(
                    topic,
                    data,
                    key=key,
                    attributes=_attributes(attr or []),
                    delay=parse_duration(delay) if delay else None,
                    deliver_at=deliver_at,
                    idempotency_key=idempotency_key,
                    priority=priority,
                    schema_version=schema_version,
                )
        except ValueError as e:
            raise typer.BadParameter(str(e)) from e
    if as_json:
        _print_json(result)
    else:
        where = (
            f"partition {result.partition} offset {result.offset}"
            if result.partition is not None
            else f"scheduled for {result.deliver_at}"
        )
        dup = " (duplicate of an earlier publish)" if result.duplicate else ""
        console.print(f"{result.id}  {where}{dup}")


def _publish_input(payload: str | None, data_file: Path | None, content_type: str | None) -> object:
    """The JSON payload decoded, or the bytes of --data-file."""
    if (payload is None) == (data_file is None):
        raise typer.BadParameter("give a JSON payload or --data-file (one of them)")
    if data_file is not None:
        try:
            return sys.stdin.buffer.read() if str(data_file) == "-" else data_file.read_bytes()
        except OSError as e:
            raise typer.BadParameter(f"cannot read --data-file: {e}") from e
    if content_type is not None:
        raise typer.BadParameter("--content-type describes --data-file; give it with one")
    text = sys.stdin.read() if payload == "-" else payload
    try:
        return msgspec.json.decode(text or "")
    except msgspec.DecodeError as e:
        raise typer.BadParameter(f"payload is not JSON: {e}") from e


@app.command()
def event(event_id: str, server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Show an event and, per subscription, its state and attempt history."""
    with _session(server) as client:
        view = client.get_event(event_id)
    if as_json:
        _print_json(view)
        return
    console.print(
        f"[bold]{view.id}[/]  topic {view.topic}  key {view.key or '-'}  "
        f"published {view.publish_time:%Y-%m-%d %H:%M:%S.%f}"
    )
    table = Table("subscription", "state", "attempts", "next attempt", "last error")
    for d in view.deliveries:
        table.add_row(
            d.subscription,
            d.state,
            str(d.attempts),
            str(d.next_attempt_at or "-"),
            (d.last_error or "-")[:80],
        )
    console.print(table)
    for d in view.deliveries:
        for a in d.history:
            # A first-attempt success is known, not recorded: it has no time.
            when = "" if a.at is None else f" at {a.at:%H:%M:%S.%f}"
            note = "" if a.recorded else " (first attempt; not recorded, so no time)"
            console.print(
                f"  {d.subscription} attempt {a.attempt}{when}: "
                f"{a.outcome.value} {a.error or ''}{note}"
            )


@app.command()
def lambdas(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """List lambdas and their live endpoints (see also ``conveyor endpoint``)."""
    with _session(server) as client:
        infos = client.list_lambdas()
    if as_json:
        _print_json(infos)
    else:
        print_lambdas(infos)


@app.command()
def openapi() -> None:
    """Print the HTTP API's OpenAPI document."""
    from conveyor.api.openapi import openapi_document

    _print_json(openapi_document())


def main() -> None:
    """The console script's entry point."""
    app()
