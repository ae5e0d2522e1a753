"""``conveyor topic``: create, list and show topics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.cli.common import AsJson, Server, ask, console, parse_duration, print_json, session
from conveyor.model import SchemaSettings
from conveyor.wire.connections import DEFAULT_URL

topic_app = typer.Typer(help="Create and inspect topics.", no_args_is_help=True)


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
    with session(server) as client:
        topic = client.create_topic(
            name,
            partitions=partitions,
            schema=schema_doc,
            max_payload_bytes=max_payload_bytes,
            retention_seconds=int(parse_duration(retention)),
            schema_settings=settings,
        )
    if as_json:
        print_json(topic)
    else:
        console.print(f"topic [bold]{topic.name}[/] ready ({topic.partitions} partitions)")


@topic_app.command("list")
def topic_list(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """List topics."""
    topics = ask(server, as_json, lambda client: client.list_topics())
    if topics is None:
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
    with session(server) as client:
        print_json(client.get_topic(name))
