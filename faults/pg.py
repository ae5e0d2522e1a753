"""A schema of its own on a PostgreSQL server, for the two-node runs; dropped after."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = ["own_schema"]

LOCK_TIMEOUT = "10s"  # a schema still locked by a node that did not stop fails the drop


@contextlib.contextmanager
def own_schema(server_url: str) -> Iterator[str]:
    """A store URL on a new schema of the server (libpq ``options`` set its search path);
    the schema is dropped with everything in it on exit.

    Raises:
        psycopg.Error: the server cannot be reached.
    """
    name = f"faults_{secrets.token_hex(6)}"
    schema = sql.Identifier(name)
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    parts = urlsplit(server_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join([*(v for k, v in query if k == "options"), f"-csearch_path={name}"])
    query = [*((k, v) for k, v in query if k != "options"), ("options", options)]
    try:
        yield urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))
