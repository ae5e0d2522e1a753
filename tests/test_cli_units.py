"""The CLI's own parsing, without a server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.cli.common import parse_duration
from conveyor.cli.events import _attributes
from conveyor.store._sqlite_schema import MIGRATIONS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1.5", 1.5), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("7d", 604800.0)],
)
def test_durations_read_in_every_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "-3s", "1e3s"])
def test_a_malformed_duration_is_refused_naming_the_text(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a duration"):
        parse_duration(text)


def test_attributes_are_name_value_pairs() -> None:
    assert _attributes(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    assert _attributes([]) is None
    with pytest.raises(typer.BadParameter, match="name=value"):
        _attributes(["novalue"])


def test_publish_refuses_a_payload_that_is_not_json_before_calling_the_server() -> None:
    # Given a server address where nothing listens
    result = CliRunner().invoke(app, ["publish", "t", "{nope", "--server", "http://127.0.0.1:9"])
    # Then the CLI fails on the payload, not on the connection
    assert result.exit_code != 0
    assert "not JSON" in result.output


def test_a_command_against_an_unreachable_server_says_so_and_exits_1() -> None:
    result = CliRunner().invoke(app, ["topic", "list", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach Conveyor at http://127.0.0.1:9" in result.output


def test_migrate_creates_the_schema_and_reports_its_version(tmp_path: Path) -> None:
    # Given no database yet
    db = tmp_path / "fresh.db"
    # When migrate runs twice
    first = CliRunner().invoke(app, ["migrate", "--store", str(db)])
    second = CliRunner().invoke(app, ["migrate", "--store", str(db)])
    # Then the schema exists, and the second run is a no-op at the same version
    version = len(MIGRATIONS)
    assert first.exit_code == second.exit_code == 0
    assert f"schema version {version}" in first.output
    assert f"schema version {version}" in second.output
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
        assert stored == (str(version),)


def test_migrate_against_an_unreachable_database_says_so_and_exits_1() -> None:
    result = CliRunner().invoke(
        app, ["migrate", "--store", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"]
    )
    assert result.exit_code == 1
    assert "cannot open the postgresql store" in result.output
