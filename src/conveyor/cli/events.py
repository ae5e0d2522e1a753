"""``conveyor publish``, ``event`` and ``lambdas``: publish an event, follow it, see who serves."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.table import Table

from conveyor.cli.common import AsJson, Server, ask, console, parse_duration, print_json, session
from conveyor.cli.endpoints import print_lambdas
from conveyor.model import Priority
from conveyor.options import PublishOptions
from conveyor.wire.connections import DEFAULT_URL


def _attributes(pairs: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"attribute {pair!r} is not name=value")
        out[name] = value
    return out or None


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
    with session(server) as client:
        try:
            options: PublishOptions = {
                "key": key,
                "attributes": _attributes(attr or []),
                "delay": parse_duration(delay) if delay else None,
                "deliver_at": deliver_at,
                "idempotency_key": idempotency_key,
                "priority": priority,
                "schema_version": schema_version,
            }
            if isinstance(data, bytes):
                ctype = content_type or "application/json"
                result = client.publish_encoded(topic, data, ctype, **options)
            else:
                result = client.publish(topic, data, **options)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from e
    if as_json:
        print_json(result)
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


def event(event_id: str, server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Show an event and, per subscription, its state and attempt history."""
    view = ask(server, as_json, lambda client: client.get_event(event_id))
    if view is None:
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


def lambdas(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """List lambdas and their live endpoints (see also ``conveyor endpoint``)."""
    infos = ask(server, as_json, lambda client: client.list_lambdas())
    if infos is not None:
        print_lambdas(infos)
