"""The ``conveyor`` CLI against a real ``conveyor serve`` process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Platform, wait_for

BIN = Path(sys.executable).parent


def cli(
    platform: Platform, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "conveyor"), *args, "--server", platform.url],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=30,
        check=False,
    )


def test_the_cli_creates_publishes_and_shows_an_event_delivered(
    platform: Platform, tmp_path: Path
) -> None:
    # Given a topic with a schema created from the CLI, and a worker for it
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["n"]}))
    created = cli(
        platform,
        "topic",
        "create",
        "orders",
        "--partitions",
        "2",
        "--schema",
        str(schema),
        "--json",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["partitions"] == 2
    platform.worker()
    # When an event is published from the CLI (payload on stdin)
    published = cli(
        platform,
        "publish",
        "orders",
        "-",
        "--key",
        "k",
        "--attr",
        "a=b",
        "--json",
        stdin='{"n": 7}',
    )
    assert published.returncode == 0, published.stderr
    event_id = json.loads(published.stdout)["id"]

    # Then `conveyor event` shows it succeeded for the worker's subscription
    def succeeded() -> bool:
        shown = cli(platform, "event", event_id, "--json")
        return bool(
            shown.returncode == 0
            and json.loads(shown.stdout)["deliveries"][0]["state"] == "succeeded"
        )

    wait_for(succeeded, timeout=20, interval=0.2)
    listed = cli(platform, "subscription", "list", "--json")
    names = [s["subscription"]["name"] for s in json.loads(listed.stdout)]
    assert names == ["e2e.later", "e2e.ledger", "e2e.record", "e2e.slow"]
    lambdas = cli(platform, "lambdas", "--json")
    assert json.loads(lambdas.stdout)[0]["name"] == "e2e"


def test_the_cli_reports_bad_input_with_field_and_rule_and_exits_1(platform: Platform) -> None:
    # Given a topic
    assert cli(platform, "topic", "create", "typed").returncode == 0
    # When publishing to a missing topic, or a payload that is not JSON
    missing = cli(platform, "publish", "nope", "{}")
    not_json = cli(platform, "publish", "typed", "{oops")
    # Then the CLI exits non-zero and says what is wrong
    assert missing.returncode == 1
    assert "topic 'nope' does not exist" in missing.stderr
    assert not_json.returncode != 0
    assert "not JSON" in not_json.stderr
    # And a subscription naming a missing dead-letter topic names the field and the rule
    bad = cli(
        platform,
        "subscription",
        "create",
        "s",
        "--topic",
        "typed",
        "--lambda",
        "l",
        "--dead-letter-topic",
        "ghost",
    )
    assert bad.returncode == 1
    assert "/dead_letter_topic" in bad.stderr
    assert "exists" in bad.stderr
