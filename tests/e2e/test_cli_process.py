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


def test_publish_many_streams_ndjson_to_a_worker_every_line_once(platform: Platform) -> None:
    # Given a topic and a worker recording every event it handles
    assert cli(platform, "topic", "create", "orders", "--partitions", "4").returncode == 0
    platform.worker()
    lines = [json.dumps({"payload": {"n": n}, "key": f"k{n % 10}"}) for n in range(3000)]

    # When 3,000 event lines are piped to `conveyor publish-many`
    done = cli(
        platform,
        "publish-many",
        "orders",
        "-",
        "--max-events",
        "500",
        "--json",
        stdin="\n".join(lines) + "\n",
    )

    # Then every line was acknowledged in a handful of requests …
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["published"], summary["failed"]) == (3000, [])
    assert 6 <= summary["requests"] <= 12

    # … and the worker handled each exactly once
    def all_handled() -> bool:
        return len([r for r in platform.records() if r["sub"] == "e2e.record"]) >= 3000

    wait_for(all_handled, timeout=60, interval=0.2)
    handled = [r for r in platform.records() if r["sub"] == "e2e.record"]
    assert sorted(r["payload"]["n"] for r in handled) == list(range(3000))  # type: ignore[index]
    assert len({r["id"] for r in handled}) == 3000
