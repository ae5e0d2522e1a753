"""A subscription that cannot be delivered says why, through every surface: the HTTP API,
the SDK and ``conveyor subscription``, against a real node on 127.0.0.1 (on every store)."""

from __future__ import annotations

from typer.testing import CliRunner

from conveyor import Client
from conveyor.cli import app
from dead_letters_platform import SUB, TOPIC, ThreadedPlatform

NOBODY = "nobody"  # a lambda no worker serves


def test_a_subscription_of_a_lambda_without_endpoints_is_told_on_create_and_in_stats(
    platform: ThreadedPlatform,
) -> None:
    with Client(platform.url) as client:
        # When a subscription is created for a lambda that has no endpoint
        created = client.create_subscription("idle", TOPIC, NOBODY)

        # Then the answer says so, and so do its figures, while they grow
        (warning,) = created.stats.warnings
        assert warning.startswith("no endpoints:")
        client.publish(TOPIC, {"n": 1})
        stats = client.get_subscription("idle").stats
        assert stats.warnings == [warning]
        assert stats.backlog == 1
        # And a subscription whose lambda has an endpoint has no warning
        assert client.get_subscription(SUB).stats.warnings == []


def test_the_cli_says_no_endpoints_on_create_and_in_the_list(platform: ThreadedPlatform) -> None:
    # When a subscription of a lambda without endpoints is created and listed
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "subscription",
            "create",
            "idle",
            "--topic",
            TOPIC,
            "--lambda",
            NOBODY,
            "--server",
            platform.url,
        ],
    )
    listed = runner.invoke(app, ["subscription", "list", "--server", platform.url])

    # Then both say that it has no endpoints (and only for it)
    assert created.exit_code == listed.exit_code == 0, created.output + listed.output
    assert "no endpoints" in created.output
    warnings = [line for line in listed.output.splitlines() if "warning:" in line]
    assert len(warnings) == 1
    assert "idle" in warnings[0]
    assert "no endpoints" in warnings[0]
