"""``conveyor serve``, ``health``, ``migrate`` and ``openapi``: run a node and look after it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer

from conveyor.cli.common import (
    AsJson,
    Server,
    SigningSecret,
    console,
    err,
    parse_locality,
    print_json,
    session,
    signing_secrets,
)
from conveyor.cli.connections import (
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    HeaderTimeout,
    IdleTimeout,
    MaxConnections,
    connection_limits,
)
from conveyor.delivery.health import HealthPolicy
from conveyor.errors import ConveyorError
from conveyor.settings import NodeSettings
from conveyor.wire.connections import DEFAULT_PORT, DEFAULT_URL


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
    secrets = signing_secrets(signing_secret)
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
        locality=parse_locality(locality),
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


def health(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Ask a node whether it does its job; exit 1 and say why when it does not."""
    with session(server) as client:
        answer = client.health()
    if as_json:
        print_json(answer)
    elif answer.status == "ok":
        console.print(f"ok: conveyor {answer.version} on {answer.store}")
    else:
        for problem in answer.problems:
            err.print(f"[bold red]failing:[/] {problem}")
    if answer.status != "ok":
        raise typer.Exit(1)


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


def openapi() -> None:
    """Print the HTTP API's OpenAPI document."""
    from conveyor.api.openapi import openapi_document

    print_json(openapi_document())
