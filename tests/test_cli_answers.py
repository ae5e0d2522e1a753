"""The CLI says what really happened, and refuses bad input with a clear message, not a
traceback: schema files, negative numbers, purges and redrives after a purge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from conveyor.cli import app
from conveyor.client import Client
from dead_letters_platform import SUB, ThreadedPlatform

UNREACHABLE = "http://127.0.0.1:9"


def cli(*args: str, server: str = UNREACHABLE) -> Result:
    return CliRunner().invoke(app, [*args, "--server", server])


def said(result: Result) -> str:
    """The output as one line, without the frame of an error panel."""
    return " ".join(result.output.replace("│", " ").split())


# -- refused before any request -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(None, "cannot read", id="missing"),
        pytest.param('{"type": ', "is not JSON", id="broken"),
        pytest.param("[1, 2]", "holds no JSON object", id="not an object"),
        pytest.param("\udcff", "is not JSON", id="not text"),
    ],
)
def test_a_schema_file_that_cannot_be_used_is_a_one_line_error_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, says: str
) -> None:
    # Given a schema file that is missing, broken, not an object, or not even text
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path("s.json").write_bytes(content.encode(errors="surrogateescape"))

    # When a topic is created with it (no server listens: none is needed to refuse it)
    result = cli("topic", "create", "orders", "--schema", "s.json")

    # Then the CLI names the option and the problem, with no traceback
    assert result.exit_code == 2, result.output
    assert f"Invalid value for --schema: {'' if content is None else 's.json '}{says}" in said(
        result
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "field", "rule"),
    [
        pytest.param(["-1"], "/per_second", "exclusive_minimum", id="negative rate"),
        pytest.param(["-0.5"], "/per_second", "exclusive_minimum", id="negative fraction"),
        pytest.param(["5", "--burst", "-1"], "/burst", "minimum", id="negative burst"),
    ],
)
def test_a_negative_rate_limit_is_refused_for_its_value_not_taken_for_an_option(
    args: list[str], field: str, rule: str
) -> None:
    # When a negative rate or burst is given (no server listens: none is needed to refuse it)
    result = cli("subscription", "rate-limit", "billing", *args)

    # Then it is refused for breaking the rule of its field, before any request
    assert result.exit_code == 1, result.output
    assert "No such option" not in result.output
    assert f"field: {field}   rule: {rule}" in result.output
    assert "cannot reach" not in result.output


def test_a_retention_past_its_bound_is_refused_before_any_request() -> None:
    result = cli("topic", "create", "orders", "--retention", "100000d")
    assert result.exit_code == 1, result.output
    assert "field: /retention_seconds   rule: maximum" in result.output
    assert "cannot reach" not in result.output


# -- what a purge dropped -------------------------------------------------------------------------
def test_purge_says_how_many_events_it_dropped(platform: ThreadedPlatform) -> None:
    # Given a paused subscription with a backlog of 40 events
    with Client(platform.url) as conveyor:
        conveyor.pause(SUB)
    platform.call(platform.rig.publish(*({"n": n} for n in range(40))))

    # When it is purged
    result = cli("subscription", "purge", SUB, "--yes", server=platform.url)

    # Then the CLI reports the 40 dropped, and so do the subscription's figures, in time
    assert result.exit_code == 0, result.output
    assert "purged: 40 unfinished events (backlog and retrying) dropped unpushed" in said(result)
    deadline = time.monotonic() + 10
    with Client(platform.url) as conveyor:
        while (stats := conveyor.get_subscription(SUB).stats).dropped < 40:
            assert time.monotonic() < deadline, stats
            time.sleep(0.02)
        assert stats.backlog == 0


def test_the_api_and_sdk_answer_a_purge_with_the_count_it_drops(platform: ThreadedPlatform) -> None:
    # Given a paused subscription with a backlog of 3 events
    with Client(platform.url) as conveyor:
        conveyor.pause(SUB)
        platform.call(platform.rig.publish(1, 2, 3))

        # When it is purged, and then purged again
        first = conveyor.purge(SUB)
        again = conveyor.purge(SUB)

    # Then the first purge drops the 3, the second nothing
    assert (first.purged, again.purged) == (3, 0)


# -- redrives after a purge -----------------------------------------------------------------------
def test_a_redrive_after_a_purge_says_which_dead_letters_the_purge_keeps_dead(
    platform: ThreadedPlatform,
) -> None:
    # Given two dead letters, then a purge of the subscription, then a third dead letter
    platform.call(platform.rig.kill("declined", "declined"))
    platform.clock.advance(1)
    with Client(platform.url) as conveyor:
        conveyor.purge(SUB)
    platform.clock.advance(1)
    (later,) = platform.call(platform.rig.kill("timeout"))
    platform.rig.lam.forgiven.add(later)

    # When every dead letter is redriven, through the CLI
    result = cli("dlq", "redrive", SUB, "--all", server=platform.url)

    # Then the one published after the purge is sent back; the two before it are said to
    # stay dead (the purge would drop them at once), and they do
    assert result.exit_code == 0, result.output
    assert "1 dead letter sent back to billing" in said(result)
    assert "2 dead letters left dead: published before the subscription's purge" in said(result)
    listed = cli("dlq", "list", SUB, "--json", server=platform.url)
    assert len(json.loads(listed.stdout)["items"]) == 2

    # And the API and the SDK say the same
    with Client(platform.url) as conveyor:
        answer = conveyor.redrive(SUB, all=True)
    assert (answer.count, answer.before_purge) == (0, 2)
    as_json = cli("dlq", "redrive", SUB, "--all", "--json", server=platform.url)
    assert json.loads(as_json.stdout) == {"count": 0, "before_purge": 2}


# -- an event's attempts --------------------------------------------------------------------------
def test_a_first_attempt_success_shows_its_attempt_in_the_sdk_and_the_cli(
    platform: ThreadedPlatform,
) -> None:
    # Given an event its lambda took at the first attempt (nothing recorded per delivery)
    (event_id,) = platform.call(platform.rig.succeed({"n": 1}))
    deadline = time.monotonic() + 10
    with Client(platform.url) as conveyor:
        while (view := conveyor.get_event(event_id)).deliveries[0].state != "succeeded":
            assert time.monotonic() < deadline, view
            time.sleep(0.02)

    # When its view is read through the CLI
    shown = cli("event", event_id, server=platform.url)
    as_json = cli("event", event_id, "--json", server=platform.url)

    # Then each shows attempt 1, a success, known rather than recorded (no time)
    (delivery,) = view.deliveries
    assert (
        delivery.attempts,
        [(a.attempt, a.outcome, a.at, a.recorded) for a in delivery.history],
    ) == (
        1,
        [(1, "success", None, False)],
    )
    assert f"{SUB} attempt 1: success (first attempt; not recorded, so no time)" in said(shown)
    history = json.loads(as_json.stdout)["deliveries"][0]["history"]
    assert history == [{"attempt": 1, "outcome": "success", "recorded": False}]
