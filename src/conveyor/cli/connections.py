"""The connection-limit options shared by ``conveyor serve`` and ``conveyor worker``."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer

from conveyor.wire.connections import ConnectionLimits

_DEFAULTS = ConnectionLimits()

IdleTimeout = Annotated[
    float,
    typer.Option(
        help="Seconds a connection without a request stays open (after it opened or after "
        "its last answer)."
    ),
]
HeaderTimeout = Annotated[
    float,
    typer.Option(help="Seconds a request's line and headers may take from its first byte."),
]
MaxConnections = Annotated[
    int, typer.Option(help="Open connections at most; a new one beyond gets 503 and is closed.")
]
IDLE_TIMEOUT = _DEFAULTS.idle_timeout
HEADER_TIMEOUT = _DEFAULTS.header_timeout
MAX_CONNECTIONS = _DEFAULTS.max_connections


def connection_limits(
    idle_timeout: float, header_timeout: float, max_connections: int
) -> ConnectionLimits:
    """The limits the options give.

    Raises:
        typer.BadParameter: a value is out of its range.
    """
    given = {
        "idle_timeout": idle_timeout,
        "header_timeout": header_timeout,
        "max_connections": max_connections,
    }
    try:
        return msgspec.convert(given, ConnectionLimits)
    except msgspec.ValidationError as e:
        raise typer.BadParameter(str(e)) from e
