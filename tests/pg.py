"""PostgreSQL for the tests: which server, a throwaway cluster, and one fresh schema per test.

A server is found in this order:

1. ``CONVEYOR_TEST_POSTGRES``: the URL of a running server, used as it is.
2. ``initdb`` and ``pg_ctl`` on ``PATH`` or under ``/usr/lib/postgresql/*/bin``: a throwaway
   cluster in a temporary directory, started once per session and deleted at its end. initdb
   refuses to run as root, so as root the cluster runs as an unprivileged user.
3. Neither: :class:`NoPostgres`, whose reason the caller turns into a skip (or a failure
   under ``CI``).

``CONVEYOR_TEST_NO_INITDB=1`` hides step 2, to exercise step 3 on a machine that has
PostgreSQL installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from conveyor.store.sqlite import sqlite_path

SERVER_ENV = "CONVEYOR_TEST_POSTGRES"
NO_INITDB_ENV = "CONVEYOR_TEST_NO_INITDB"
NO_POSTGRES = "no PostgreSQL: set CONVEYOR_TEST_POSTGRES or install initdb/pg_ctl"
SEARCH_DIRS = "/usr/lib/postgresql/*/bin"
UNPRIVILEGED_USERS = ("postgres", "nobody")  # who runs the cluster when we are root
TOOL_TIMEOUT = 60.0  # seconds for initdb, and for pg_ctl to see the server up or down
LOCK_TIMEOUT = "10s"  # a schema still locked by an unclosed store fails its test's teardown


class NoPostgres(Exception):
    """No PostgreSQL server can be had; ``str()`` is the reason to show."""


class Unreachable(Exception):
    """The server named by ``CONVEYOR_TEST_POSTGRES`` does not answer: a broken set-up."""


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


# -- a throwaway cluster ------------------------------------------------------------------------
@dataclass(frozen=True)
class Tools:
    initdb: Path
    pg_ctl: Path


def find_tools() -> Tools | None:
    """``initdb`` and ``pg_ctl`` from one place: ``PATH`` first, then the newest install."""
    if os.environ.get(NO_INITDB_ENV):
        return None
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Tools(Path(initdb), Path(pg_ctl))

    def version(bin_dir: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", bin_dir.parent.name))

    for bin_dir in sorted(Path("/").glob(SEARCH_DIRS.lstrip("/")), key=version, reverse=True):
        if (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file():
            return Tools(bin_dir / "initdb", bin_dir / "pg_ctl")
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster of our own in a temporary directory, with a database ``test``.

    Args:
        tools: the ``initdb`` and ``pg_ctl`` to use.

    Raises:
        NoPostgres: (on enter) it could not be started; nothing is left behind.
    """

    def __init__(self, tools: Tools) -> None:
        self.tools = tools
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/test"
        self._user = _unprivileged_user() if os.geteuid() == 0 else None
        self._root = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self._data = self._root / "data"
        self._started = False

    def __enter__(self) -> str:
        try:
            self._start()
        except (OSError, subprocess.SubprocessError, psycopg.Error) as e:
            self.__exit__()
            raise NoPostgres(f"{NO_POSTGRES} ({self.tools.initdb} is there, but: {e})") from e
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._run(self.tools.pg_ctl, "-D", str(self._data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self._root, ignore_errors=True)

    def _start(self) -> None:
        if os.geteuid() == 0:
            if self._user is None:
                raise OSError("running as root, and no unprivileged user to run initdb as")
            os.chown(self._root, self._user.pw_uid, self._user.pw_gid)
        # --no-sync: a throwaway cluster need not survive a crash during initdb; the server
        # itself runs with fsync on, so commits cost what they cost in production.
        self._run(
            self.tools.initdb,
            *("-D", str(self._data), "-U", "postgres", "--auth=trust"),
            *("--encoding=UTF8", "--locale=C", "--no-sync"),
        )
        options = (
            f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=on"
            " -c synchronous_commit=on"
        )
        log = str(self._root / "server.log")
        self._started = True
        self._run(self.tools.pg_ctl, "-D", str(self._data), "-l", log, "-o", options, "-w", "start")
        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE test")

    def _run(self, tool: Path, *args: str) -> None:
        command = [str(tool), *args]
        if self._user is not None:
            command = _as_user(self._user.pw_name, command)
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=TOOL_TIMEOUT
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise subprocess.SubprocessError(f"{tool.name} exited {done.returncode}: {tail}")


def _as_user(user: str, command: list[str]) -> list[str]:
    """``command`` run as ``user`` by root: runuser, else su."""
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", user, "--", *command]
    if su := shutil.which("su"):
        return [su, user, "-s", "/bin/sh", "-c", " ".join(map(_shell_quote, command))]
    raise OSError("running as root, and neither runuser nor su to drop privileges")


def _shell_quote(word: str) -> str:
    return "'" + word.replace("'", "'\"'\"'") + "'"


@contextlib.contextmanager
def session_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for the whole session.

    Raises:
        NoPostgres: none is configured, and none can be started here.
        Unreachable: the configured one does not answer.
    """
    if url := os.environ.get(SERVER_ENV):
        try:
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as e:
            raise Unreachable(f"{SERVER_ENV}={url} cannot be reached: {e}") from e
        yield url
        return
    tools = find_tools()
    if tools is None:
        raise NoPostgres(NO_POSTGRES)
    with Cluster(tools) as url:
        yield url


# -- a fresh schema per test --------------------------------------------------------------------
def with_search_path(server_url: str, schema: str) -> str:
    """``server_url`` with libpq ``options`` that put its sessions in ``schema``."""
    parts = urlsplit(server_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = [v for k, v in query if k == "options"]
    query = [(k, v) for k, v in query if k != "options"]
    query.append(("options", " ".join([*options, f"-csearch_path={schema}"])))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextlib.contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    """A store URL on a new, empty schema of the server; the schema is dropped after."""
    name = f"t_{secrets.token_hex(8)}"
    schema = sql.Identifier(name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    try:
        yield with_search_path(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


# -- looking inside a store ---------------------------------------------------------------------
def count_rows(url: str, table: str) -> int:
    """The number of rows in ``table`` of the store at ``url`` (SQLite or PostgreSQL)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
        raise ValueError(f"not a table name: {table!r}")
    if is_postgres(url):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        with psycopg.connect(url) as conn:
            found = conn.execute(query).fetchone()
    else:
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as db:
            found = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert found is not None
    return int(found[0])
