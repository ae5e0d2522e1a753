"""What every ``conveyor`` command shares: the consoles, the ``--server`` and ``--json``
options, JSON printing, a client session that turns a ConveyorError into exit status 1, and
the parsing of durations, localities and signing secrets.

Command modules import this one; it imports no command module (no cycle).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import msgspec
import typer
from rich.console import Console

from conveyor.errors import ConveyorError, InvalidRequest

if TYPE_CHECKING:
    from conveyor.client import Client

_T = TypeVar("_T")

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


def duration_text(seconds: float) -> str:
    """The shortest text :func:`parse_duration` reads back as ``seconds`` (``300.0``: ``5m``)."""
    for unit in ("d", "h", "m"):
        count = seconds / _UNITS[unit]
        if seconds and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds:g}s"


def fail(error: ConveyorError) -> NoReturn:
    err.print(f"[bold red]error:[/] {error.message}")
    if isinstance(error, InvalidRequest):
        if error.field or error.rule:
            err.print(f"  field: {error.field or '-'}   rule: {error.rule or '-'}")
        for detail in getattr(error, "errors", [])[1:]:
            message = getattr(detail, "message", str(detail))
            err.print(f"  events[{getattr(detail, 'index', '?')}]: {message}")
    raise typer.Exit(1)


def print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


@contextlib.contextmanager
def session(server: str) -> Iterator[Client]:
    """A client of the node at ``server``; a ConveyorError inside prints and exits 1."""
    from conveyor.client import Client

    with Client(server) as client:
        try:
            yield client
        except ConveyorError as e:
            fail(e)


def ask(server: str, as_json: bool, fetch: Callable[[Client], _T]) -> _T | None:
    """``fetch``'s answer from the node at ``server``; with ``--json`` it is printed and
    ``None`` is returned (the caller shows the answer to people otherwise)."""
    with session(server) as client:
        answer = fetch(client)
    if as_json:
        print_json(answer)
        return None
    return answer


def parse_locality(text: str) -> str:
    from conveyor.model import LOCALITY_PATTERN

    if text and not re.match(LOCALITY_PATTERN, text):
        raise typer.BadParameter(
            "must be cloud/region/zone (or a prefix), letters, digits, '.', '_' or '-'",
            param_hint="--locality",
        )
    return text


def signing_secrets(text: str | None) -> list[str]:
    if not text:
        return []
    from conveyor.wire.signing import split_secrets

    try:
        return split_secrets(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--signing-secret") from e
