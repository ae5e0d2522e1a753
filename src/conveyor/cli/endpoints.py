"""``conveyor endpoint``: a lambda's endpoints — list them with their place, version and
health; add a static endpoint by URL; remove one.

Workers register (and renew) their own endpoints; ``add`` is for endpoints no Conveyor worker
runs, e.g. a service that answers the push protocol itself. A static endpoint never expires.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from conveyor.cli.common import AsJson, Server, console, print_json, session
from conveyor.wire.connections import DEFAULT_URL
from conveyor.wire.schemas import EndpointInfo, EndpointRegistration, LambdaInfo

# The option defaults are the wire's (one definition; see conveyor.options.EndpointOptions).
_ENDPOINT = EndpointRegistration(url="http://defaults")

endpoint_app = typer.Typer(
    help="A lambda's endpoints: list (with health), add a static one, remove.",
    no_args_is_help=True,
)

LambdaName = Annotated[str, typer.Argument(help="The lambda's name.")]


def print_lambdas(infos: list[LambdaInfo]) -> None:
    """A table of lambdas and their endpoints, with place, version and health."""
    table = Table("lambda", "endpoint", "url", "locality", "version", "in flight", "expires")
    table.add_column("health")
    for info in infos:
        if not info.endpoints:
            table.add_row(info.name, "-", "-", "-", "-", "-", "-", "-")
        for ep in info.endpoints:
            table.add_row(
                info.name,
                ep.id,
                ep.url,
                ep.locality or "-",
                ep.version or "-",
                str(ep.in_flight),
                "static" if ep.static else str(ep.expires_at),
                _health(ep),
            )
    console.print(table)


def _health(ep: EndpointInfo) -> str:
    parts = []
    if ep.ejected_until is not None:
        parts.append(f"ejected until {ep.ejected_until:%H:%M:%S} (ejection {ep.ejections})")
    if not ep.probe_healthy:
        parts.append(f"probe failing: {ep.last_probe_error or 'unhealthy'}")
    if ep.consecutive_failures:
        parts.append(f"{ep.consecutive_failures} failures in a row")
    return "; ".join(parts) or "ok"


@endpoint_app.command("list")
def endpoint_list(
    lambda_name: Annotated[
        str | None, typer.Argument(help="Only this lambda's endpoints.", show_default=False)
    ] = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List endpoints with their locality, version and health (as the answering node sees
    them)."""

    with session(server) as client:
        infos = client.list_lambdas()
    if lambda_name is not None:
        infos = [i for i in infos if i.name == lambda_name]
    if as_json:
        print_json(infos)
    else:
        print_lambdas(infos)


@endpoint_app.command("add")
def endpoint_add(
    lambda_name: LambdaName,
    url: Annotated[str, typer.Argument(help="Where pushes are POSTed (http:// or https://).")],
    endpoint_id: Annotated[
        str | None, typer.Option("--id", help="The endpoint's id (default: from the URL).")
    ] = None,
    locality: Annotated[
        str, typer.Option(help="Where it runs: cloud/region/zone.")
    ] = _ENDPOINT.locality,
    version: Annotated[
        str, typer.Option(help="The version of the lambda it runs.")
    ] = _ENDPOINT.version,
    concurrency: Annotated[
        int, typer.Option(help="Events it takes at once (a hint).")
    ] = _ENDPOINT.concurrency,
    health_url: Annotated[
        str, typer.Option(help="Where active probes GET its health (default: not probed).")
    ] = _ENDPOINT.health_url,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Add a static endpoint by URL: it never expires and needs no heartbeat."""
    eid = endpoint_id or _id_from_url(url)
    with session(server) as client:
        info = client.register_endpoint(
            lambda_name,
            eid,
            url,
            concurrency=concurrency,
            locality=locality,
            version=version,
            static=True,
            health_url=health_url,
        )
    if as_json:
        print_json(info)
    else:
        console.print(f"endpoint [bold]{eid}[/] of lambda {lambda_name}: {url} (static)")


@endpoint_app.command("remove")
def endpoint_remove(
    lambda_name: LambdaName,
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id.")],
    server: Server = DEFAULT_URL,
) -> None:
    """Remove an endpoint (a worker's comes back at its next heartbeat; stop the worker)."""
    with session(server) as client:
        client.deregister_endpoint(lambda_name, endpoint_id)
    console.print(f"endpoint {endpoint_id} of lambda {lambda_name} removed")


def _id_from_url(url: str) -> str:
    """A stable endpoint id from a URL: its host and port, with the path's characters
    outside the name alphabet replaced."""
    import re
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    text = f"{parts.hostname or 'endpoint'}-{parts.port or ''}{parts.path}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:200] or "endpoint"
