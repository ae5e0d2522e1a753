"""Fixtures shared by the whole suite: the store every store-backed test runs against, and
a node serving HTTP in a thread of the test.

``store_url`` runs one test body on each store adapter: SQLite in the test's temporary
directory, and PostgreSQL on a fresh schema (see ``pg.py`` for how the server is found).
Without PostgreSQL the ``postgres`` cases skip, but fail when ``CI`` is set, so that a CI
machine cannot pass by testing SQLite alone. ``-m "not pg"`` deselects them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import pg
from dead_letters_platform import ThreadedPlatform


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of the session's PostgreSQL server (a database, not a schema)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(pg.session_server())
        except pg.NoPostgres as e:
            if os.environ.get("CI"):
                pytest.fail(str(e), pytrace=False)
            pytest.skip(str(e))
        except pg.Unreachable as e:
            # Never a skip: a server that was asked for and is missing is a broken set-up.
            pytest.fail(str(e), pytrace=False)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for ``conveyor.node.open_store``: an empty store, one per test.

    Opening the same URL again opens the same store.
    """
    if request.param == "sqlite":
        yield str(tmp_path / "c.db")
        return
    with pg.fresh_schema(request.getfixturevalue("pg_server")) as url:
        yield url


@pytest.fixture
def platform(store_url: str) -> Iterator[ThreadedPlatform]:
    """A node on ``store_url`` serving its HTTP API on 127.0.0.1 from a thread of the test,
    with a lambda whose endpoint is registered (see ``dead_letters_platform.py``). A test
    module that needs more set-up overrides it and asks for this one by the same name."""
    started = ThreadedPlatform(store_url)
    started.start()
    try:
        yield started
    finally:
        started.stop()
