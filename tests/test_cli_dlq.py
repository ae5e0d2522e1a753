"""``conveyor dlq`` against a real node on 127.0.0.1 (on every store), and its own parsing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer
from typer.testing import CliRunner, Result

from conveyor.cli import app
from conveyor.cli.dlq import parse_time
from dead_letters_platform import SUB, ThreadedPlatform

UNREACHABLE = "http://127.0.0.1:9"


def dlq(server: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["dlq", *args, "--server", server])


# -- parsing --------------------------------------------------------------------------------------
NOW = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2030-01-01T08:00:00Z", datetime(2030, 1, 1, 8, tzinfo=UTC), id="UTC"),
        pytest.param(
            "2030-01-01T08:00:00+02:00",
            datetime(2030, 1, 1, 8, tzinfo=timezone(timedelta(hours=2))),
            id="with a zone",
        ),
        pytest.param("2030-01-01 08:00", datetime(2030, 1, 1, 8, tzinfo=UTC), id="no zone: UTC"),
        pytest.param("90m", NOW - timedelta(minutes=90), id="a duration ago"),
        pytest.param("2d", NOW - timedelta(days=2), id="days ago"),
    ],
)
def test_a_time_reads_as_iso_8601_or_as_a_duration_ago(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_a_time_that_is_neither_is_refused_naming_the_text() -> None:
    with pytest.raises(typer.BadParameter, match="'last tuesday' is neither"):
        parse_time("last tuesday", now=NOW)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["redrive", SUB], "give event ids, or --all", id="neither"),
        pytest.param(["purge", SUB, "abc", "--all"], "not both", id="both"),
        pytest.param(["redrive", SUB, "abc", "--error", "x"], "narrow --all", id="ids and filter"),
        pytest.param(["purge", SUB, "--all", "--since", "soon"], "is neither", id="bad since"),
    ],
)
def test_a_malformed_redrive_or_purge_is_refused_before_any_request(
    args: list[str], message: str
) -> None:
    # Given no server at all: a request would fail with "cannot reach"
    result = dlq(UNREACHABLE, *args)
    # Then the command refuses, naming the problem
    assert result.exit_code == 2
    assert message in result.output


# -- against a node -------------------------------------------------------------------------------
def test_list_prints_the_dead_letters_and_the_cursor_of_the_next_page(
    platform: ThreadedPlatform,
) -> None:
    # Given three dead letters
    killed = platform.call(platform.rig.kill("card declined", "timeout", "timeout"))

    # When the first two are listed, then the rest as JSON
    first = dlq(platform.url, "list", SUB, "--limit", "2")
    cursor = first.output.split("more: --after ")[1].split()[0]
    rest = dlq(platform.url, "list", SUB, "--after", cursor, "--json")

    # Then the table shows two, and the JSON page the third with its error
    assert first.exit_code == 0, first.output
    assert sum(event_id in first.output for event_id in killed) == 2
    assert rest.exit_code == 0, rest.output
    page = json.loads(rest.stdout)
    assert "next" not in page
    (last,) = page["items"]
    assert last["id"] in killed
    assert last["id"] not in first.output
    assert last["last_error"] == ["card declined", "timeout", "timeout"][killed.index(last["id"])]


def test_list_filters_by_error_and_time(platform: ThreadedPlatform) -> None:
    # Given a timeout an hour ago (on the node's clock) and a decline now
    (old,) = platform.call(platform.rig.kill("timeout"))
    platform.clock.advance(3600)
    (new,) = platform.call(platform.rig.kill("declined"))
    half_way = datetime.fromtimestamp(platform.clock.now() - 1800, tz=UTC).isoformat()

    # When they are listed by error, and since half an hour ago
    by_error = dlq(platform.url, "list", SUB, "--error", "TIMEOUT", "--json")
    by_time = dlq(platform.url, "list", SUB, "--since", half_way, "--json")

    # Then each filter picks one
    assert [d["id"] for d in json.loads(by_error.stdout)["items"]] == [old]
    assert [d["id"] for d in json.loads(by_time.stdout)["items"]] == [new]


def test_show_prints_the_payload_and_every_attempt(platform: ThreadedPlatform) -> None:
    # Given a dead letter
    (event_id,) = platform.call(platform.rig.kill("card declined"))

    # When it is shown
    result = dlq(platform.url, "show", SUB, event_id)

    # Then its payload and its fatal attempt are printed
    assert result.exit_code == 0, result.output
    assert event_id in result.output
    assert '"fail": "card declined"' in result.output
    assert "fatal" in result.output
    assert "after 1 attempts: card declined" in result.output


def test_redrive_and_purge_say_how_many_moved(platform: ThreadedPlatform) -> None:
    # Given two declines and a timeout
    first, _, _ = platform.call(platform.rig.kill("declined", "declined", "timeout"))

    # When one is redriven by id (the lambda declines it again: it is back in the queue
    # at once), then the declines purged, and then the rest
    redriven = dlq(platform.url, "redrive", SUB, first)
    deadline = time.monotonic() + 10
    while len(json.loads(dlq(platform.url, "list", SUB, "--json").stdout)["items"]) < 3:
        assert time.monotonic() < deadline, "the redriven event did not die again"
        time.sleep(0.02)
    declines = dlq(platform.url, "purge", SUB, "--all", "--error", "declined", "--json")
    rest = dlq(platform.url, "purge", SUB, "--all")

    # Then each says how many moved
    assert redriven.exit_code == declines.exit_code == rest.exit_code == 0
    assert "1 dead letter sent back to billing" in redriven.output
    assert json.loads(declines.stdout) == {"count": 2}
    assert "1 dead letter dropped from billing" in rest.output
    listed = dlq(platform.url, "list", SUB, "--json")
    assert json.loads(listed.stdout)["items"] == []


def test_an_unknown_subscription_prints_the_servers_error_and_exits_1(
    platform: ThreadedPlatform,
) -> None:
    result = dlq(platform.url, "list", "nope")
    assert result.exit_code == 1
    assert "subscription 'nope' does not exist" in result.output


def test_an_event_that_is_not_dead_prints_why_and_exits_1(platform: ThreadedPlatform) -> None:
    (ok,) = platform.call(platform.rig.succeed({"ok": True}))
    result = dlq(platform.url, "show", SUB, ok)
    assert result.exit_code == 1
    assert "is not a dead letter of subscription 'billing'" in " ".join(result.output.split())
