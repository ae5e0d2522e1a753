"""Releases through every surface: the HTTP API, the SDK and ``conveyor release``, against a
real node on 127.0.0.1 (on every store) whose lambda has v1 stable and v2 on trial."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import aiohttp
import msgspec
import pytest
from typer.testing import CliRunner, Result

from conveyor import Client
from conveyor.cli import app
from conveyor.errors import Conflict, InvalidRequest, NotFound
from conveyor.wire.releases import ReleasePolicy, ReleaseState
from dead_letters_platform import LAMBDA, TOPIC, ThreadedPlatform


@pytest.fixture
def platform(platform: ThreadedPlatform) -> ThreadedPlatform:
    node, url = platform.rig.node, platform.rig.lam.url
    for version in ("v1", "v2"):
        platform.call(
            node.register_endpoint(LAMBDA, f"e-{version}", url, 86400, 64, version=version)
        )
    return platform


@pytest.fixture
def client(platform: ThreadedPlatform) -> Iterator[Client]:
    with Client(platform.url) as opened:
        yield opened


def cli(server: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["release", *args, "--server", server])


def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        time.sleep(0.02)


async def call_api(method: str, url: str, body: object = None) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.request(method, url, json=body) as r:
        answer: dict[str, object] = await r.json()
        return r.status, answer


# -- HTTP API ---------------------------------------------------------------------------------
async def test_the_api_lists_the_stable_version_the_canary_and_the_history(
    platform: ThreadedPlatform,
) -> None:
    status, body = await call_api("GET", f"{platform.url}/v1/lambdas/{LAMBDA}/releases")

    assert status == 200, body
    assert body["lambda"] == LAMBDA
    assert body["stable"] == {
        "version": "v1",
        "state": "stable",
        "started_at": body["history"][1]["started_at"],  # type: ignore[index]
        "decided_at": body["history"][1]["decided_at"],  # type: ignore[index]
        "reason": "the lambda's first version: stable at once",
    }
    canary = body["canary"]
    assert isinstance(canary, dict)
    assert (canary["version"], canary["state"]) == ("v2", "canary")
    assert canary["reason"] == "just started"
    assert [(r["version"], r["state"]) for r in body["history"]] == [  # type: ignore[attr-defined]
        ("v2", "canary"),
        ("v1", "stable"),
    ]
    assert body["policy"] == msgspec.to_builtins(ReleasePolicy())


async def test_the_api_refuses_an_unknown_lambda_and_a_bad_name(
    platform: ThreadedPlatform,
) -> None:
    unknown = await call_api("GET", f"{platform.url}/v1/lambdas/nobody/releases")
    bad = await call_api("GET", f"{platform.url}/v1/lambdas/-bad/releases")

    assert unknown[0] == 404
    assert unknown[1]["error"]["code"] == "not_found"  # type: ignore[index]
    assert bad[0] == 400
    error = bad[1]["error"]
    assert isinstance(error, dict)
    assert (error["field"], error["rule"]) == ("/lambda", "pattern")


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        pytest.param({"share": 1.5}, "/share", "maximum", id="share above 1"),
        pytest.param({"share": 0}, "/share", "exclusive_minimum", id="share of 0"),
        pytest.param({"min_pushes": "many"}, "/min_pushes", "type", id="not a number"),
        pytest.param({"windows": 60}, "/windows", "unknown_field", id="unknown field"),
    ],
)
async def test_a_bad_release_policy_is_refused_naming_the_field_and_the_rule(
    platform: ThreadedPlatform, body: dict[str, object], field: str, rule: str
) -> None:
    url = f"{platform.url}/v1/lambdas/{LAMBDA}/release-policy"

    status, answer = await call_api("PUT", url, body)

    assert status == 400
    error = answer["error"]
    assert isinstance(error, dict)
    assert (error["field"], error["rule"]) == (field, rule)
    assert (await call_api("GET", url))[1] == msgspec.to_builtins(ReleasePolicy())


async def test_the_release_routes_are_in_the_openapi_document(
    platform: ThreadedPlatform,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{platform.url}/openapi.json") as response,
    ):
        paths = (await response.json())["paths"]
    base = "/v1/lambdas/{lambda}"
    assert set(paths[f"{base}/releases"]) == {"get"}
    assert set(paths[f"{base}/releases/{{version}}/promote"]) == {"post"}
    assert set(paths[f"{base}/releases/{{version}}/rollback"]) == {"post"}
    assert set(paths[f"{base}/release-policy"]) == {"get", "put"}


# -- SDK ----------------------------------------------------------------------------------------
def test_the_sdk_shows_live_figures_of_the_trial(client: Client) -> None:
    # Given events delivered while v2 is on trial
    ids = [client.publish(TOPIC, {"n": n}).id for n in range(20)]
    eventually(lambda: all(client.get_event(i).deliveries[0].state == "succeeded" for i in ids))

    # When the releases are read
    releases = client.list_releases(LAMBDA)

    # Then the canary carries this node's figures of both sides
    assert releases.canary is not None
    window = releases.canary.window
    assert window is not None
    assert window.canary.pushes + window.stable.pushes >= 1
    assert window.canary.failures == window.stable.failures == 0


def test_the_sdk_promotes_and_rolls_back(client: Client) -> None:
    promoted = client.promote_release(LAMBDA, "v2")
    assert promoted.stable is not None
    assert promoted.stable.version == "v2"
    assert promoted.canary is None
    assert [(r.version, r.state) for r in promoted.history] == [
        ("v2", ReleaseState.STABLE),
        ("v1", ReleaseState.SUPERSEDED),
    ]

    rolled = client.rollback_release(LAMBDA, "v2")
    assert rolled.stable is not None
    assert rolled.stable.version == "v1"
    assert rolled.history[0].state is ReleaseState.ROLLED_BACK
    assert rolled.history[0].reason == "rolled back by hand"


def test_the_sdk_raises_not_found_and_conflict(client: Client) -> None:
    with pytest.raises(NotFound, match="worker/v9"):
        client.promote_release(LAMBDA, "v9")
    with pytest.raises(Conflict, match="no earlier version"):
        client.rollback_release(LAMBDA, "v1")
    with pytest.raises(NotFound):
        client.list_releases("nobody")


def test_the_sdk_sets_and_reads_the_release_policy(client: Client) -> None:
    assert client.get_release_policy(LAMBDA) == ReleasePolicy()

    changed = client.set_release_policy(LAMBDA, ReleasePolicy(share=0.5, auto_promote=False))

    assert changed == ReleasePolicy(share=0.5, auto_promote=False)
    assert client.get_release_policy(LAMBDA) == changed
    assert client.list_releases(LAMBDA).policy == changed
    with pytest.raises(InvalidRequest) as refused:
        client.set_release_policy(LAMBDA, ReleasePolicy(window_seconds=0))
    assert (refused.value.field, refused.value.rule) == ("/window_seconds", "minimum")


# -- CLI ----------------------------------------------------------------------------------------
def test_the_cli_lists_the_releases(platform: ThreadedPlatform) -> None:
    table = cli(platform.url, "list", LAMBDA)
    as_json = cli(platform.url, "list", LAMBDA, "--json")

    assert table.exit_code == 0, table.output
    assert "stable: v1" in table.output
    assert "canary: v2 (share 10%)" in table.output
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["canary"]["version"] == "v2"


def test_the_cli_promotes_and_rolls_back(platform: ThreadedPlatform, client: Client) -> None:
    promoted = cli(platform.url, "promote", LAMBDA, "v2")
    rolled = cli(platform.url, "rollback", LAMBDA, "v2", "--json")

    assert promoted.exit_code == 0, promoted.output
    assert f"{LAMBDA} v2: stable" in promoted.output
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.stdout)["stable"]["version"] == "v1"
    assert client.list_releases(LAMBDA).history[0].state is ReleaseState.ROLLED_BACK


def test_the_cli_changes_only_the_policy_settings_given(
    platform: ThreadedPlatform, client: Client
) -> None:
    client.set_release_policy(LAMBDA, ReleasePolicy(min_pushes=50))

    changed = cli(
        platform.url, "policy", LAMBDA, "--share", "0.25", "--window", "2m", "--no-auto-promote"
    )
    shown = cli(platform.url, "policy", LAMBDA, "--json")

    assert changed.exit_code == 0, changed.output
    assert "120 s" in changed.output
    expected = ReleasePolicy(share=0.25, window_seconds=120, min_pushes=50, auto_promote=False)
    assert json.loads(shown.stdout) == msgspec.to_builtins(expected)


def test_the_cli_prints_a_refused_policy_with_its_field_and_rule(
    platform: ThreadedPlatform,
) -> None:
    refused = cli(platform.url, "policy", LAMBDA, "--share", "2")

    assert refused.exit_code == 1
    assert "field: /share   rule: maximum" in refused.output


def test_the_cli_names_an_unknown_release(platform: ThreadedPlatform) -> None:
    result = cli(platform.url, "promote", LAMBDA, "v9")
    assert result.exit_code == 1
    assert "release 'worker/v9' does not exist" in result.output
