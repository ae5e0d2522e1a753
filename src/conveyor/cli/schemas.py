"""``conveyor schema``: the schema registry from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.cli.common import Server, ask, console, print_json, session
from conveyor.model import SchemaType
from conveyor.wire.connections import DEFAULT_URL
from conveyor.wire.registry import Compatibility

schema_app = typer.Typer(
    help="The schema registry: register, check, list, show, compatibility.",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Subject = Annotated[str, typer.Argument(help="The subject's name.")]
SchemaFile = Annotated[
    str, typer.Argument(help="The schema file (.json, .avsc, .proto, or '-' for stdin).")
]
Kind = Annotated[
    SchemaType | None,
    typer.Option("--type", help="json, avro or protobuf (default: from the file's suffix)."),
]
Message = Annotated[str | None, typer.Option(help="Protobuf: the message's full name.")]

_SUFFIXES = {".avsc": SchemaType.AVRO, ".proto": SchemaType.PROTOBUF, ".json": SchemaType.JSON}


def read_schema(path: str, kind: SchemaType | None) -> tuple[str, SchemaType]:
    """The schema's text and type (given, or told by the file's suffix; JSON otherwise)."""
    if path == "-":
        return sys.stdin.read(), kind or SchemaType.JSON
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as e:
        raise typer.BadParameter(f"cannot read {path}: {e.strerror}") from e
    return text, kind or _SUFFIXES.get(file.suffix, SchemaType.JSON)


@schema_app.command("register")
def register(
    subject: Subject,
    file: SchemaFile,
    kind: Kind = None,
    message: Message = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Register a schema as a subject's next version (refused, listing every breaking
    change, when it breaks the subject's compatibility mode)."""

    text, schema_type = read_schema(file, kind)
    registered = ask(
        server,
        as_json,
        lambda client: client.register_schema(subject, text, type=schema_type, message=message),
    )
    if registered is None:
        return
    what = "registered" if registered.created else "already registered (identical)"
    console.print(f"{subject} version {registered.version} (schema id {registered.id}) {what}")


@schema_app.command("check")
def check(
    subject: Subject,
    file: SchemaFile,
    kind: Kind = None,
    message: Message = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Dry run: would this schema be accepted as the subject's next version? Exits 1 when
    it would not."""

    text, schema_type = read_schema(file, kind)
    with session(server) as client:
        report = client.check_schema(subject, text, type=schema_type, message=message)
    if as_json:
        print_json(report)
    elif report.compatible:
        console.print(f"compatible ({report.compatibility.value})")
    else:
        table = Table("field", "rule", "old", "new", "why")
        for b in report.breaking:
            table.add_row(b.field, b.rule, b.old or "-", b.new or "-", b.message)
        console.print(
            f"NOT {report.compatibility.value} compatible with version(s) "
            f"{', '.join(map(str, report.against))}:"
        )
        console.print(table)
    if not report.compatible:
        raise typer.Exit(1)


@schema_app.command("list")
def list_subjects(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """List subjects with their compatibility mode and versions."""
    subjects = ask(server, as_json, lambda client: client.list_subjects())
    if subjects is None:
        return
    table = Table("subject", "compatibility", "versions")
    for s in subjects:
        mode = s.compatibility.value + ("" if s.own_compatibility else " (default)")
        table.add_row(s.name, mode, ", ".join(map(str, s.versions)))
    console.print(table)


@schema_app.command("show")
def show(
    subject: Annotated[str | None, typer.Argument(help="The subject (or use --id).")] = None,
    version: Annotated[str, typer.Option(help="A version number, or latest.")] = "latest",
    schema_id: Annotated[int | None, typer.Option("--id", help="A schema id.")] = None,
    server: Server = DEFAULT_URL,
) -> None:
    """Show a subject's version (or a schema by id) as JSON."""
    if (subject is None) == (schema_id is None):
        raise typer.BadParameter("give a subject, or --id")
    with session(server) as client:
        if schema_id is not None:
            print_json(client.get_schema_by_id(schema_id))
        else:
            assert subject is not None
            print_json(client.get_schema(subject, version))


@schema_app.command("compatibility")
def compatibility(
    mode: Annotated[
        Compatibility | None,
        typer.Argument(help="The mode to set (omit to show the one in force)."),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="A subject (default: the registry's default).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Return the subject to the registry's default.")
    ] = False,
    server: Server = DEFAULT_URL,
) -> None:
    """Show or set a subject's (or the registry's default) compatibility mode."""
    if reset and (subject is None or mode is not None):
        raise typer.BadParameter("--reset needs --subject and no mode")
    with session(server) as client:
        if mode is None and not reset:
            in_force = client.get_compatibility(subject=subject)
        else:
            in_force = client.set_compatibility(mode, subject=subject)
    console.print(f"{subject or 'default'}: {in_force.value}")
