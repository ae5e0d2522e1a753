"""Run-time gates through every surface: the HTTP API, the SDK and ``conveyor subscription``,
against a real node on 127.0.0.1 (on every store)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import aiohttp
import pytest
from typer.testing import CliRunner, Result

from conveyor import Client
from conveyor.cli import app
from conveyor.errors import InvalidRequest, NotFound
from conveyor.model import Priority, RateLimit
from dead_letters_platform import SUB, TOPIC, ThreadedPlatform


@pytest.fixture
def client(platform: ThreadedPlatform) -> Iterator[Client]:
    with Client(platform.url) as opened:
        yield opened


def cli(server: str, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--server", server])


def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        time.sleep(0.02)


def state_of(client: Client, event_id: str) -> str:
    (delivery,) = client.get_event(event_id).deliveries
    return delivery.state


def test_pause_holds_a_published_backlog_and_resume_delivers_it(client: Client) -> None:
    # Given a paused subscription
    paused = client.pause(SUB)
    assert paused.subscription.control.paused
    assert paused.stats.paused

    # When a high-priority event is published
    published = client.publish(TOPIC, {"n": 1}, priority="high")

    # Then it waits, visible in the backlog of its lane, and names its lane
    view = client.get_event(published.id)
    assert view.priority == Priority.HIGH
    assert state_of(client, published.id) == "pending"
    stats = client.get_subscription(SUB).stats
    assert stats.backlog_by_priority == {"high": 1, "normal": 0, "low": 0}

    # And once resumed it is delivered
    assert not client.resume(SUB).subscription.control.paused
    eventually(lambda: state_of(client, published.id) == "succeeded")


def test_purge_drops_what_was_published_before_it(
    client: Client, platform: ThreadedPlatform
) -> None:
    client.pause(SUB)
    ids = [client.publish(TOPIC, {"n": n}).id for n in range(3)]

    client.purge(SUB)

    eventually(lambda: all(state_of(client, i) == "dropped" for i in ids))
    eventually(lambda: client.get_subscription(SUB).stats.dropped == 3)
    assert platform.rig.lam.received == []


def test_a_rate_limit_is_set_and_removed_at_run_time(client: Client) -> None:
    limited = client.set_rate_limit(SUB, 5, burst=2)
    assert limited.subscription.control.rate_limit == RateLimit(per_second=5, burst=2)
    assert client.clear_rate_limit(SUB).subscription.control.rate_limit is None


def test_a_bad_rate_limit_is_refused_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidRequest) as refused:
        client.set_rate_limit(SUB, 0)
    assert refused.value.field == "/per_second"
    assert client.get_subscription(SUB).subscription.control.rate_limit is None


def test_gates_of_an_unknown_subscription_are_404(client: Client) -> None:
    for call in (client.pause, client.resume, client.purge, client.clear_rate_limit):
        with pytest.raises(NotFound):
            call("nope")


async def test_the_gates_are_in_the_openapi_document(platform: ThreadedPlatform) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{platform.url}/openapi.json") as response,
    ):
        paths = (await response.json())["paths"]
    for action in ("pause", "resume", "purge", "rate-limit"):
        assert f"/v1/subscriptions/{{name}}/{action}" in paths
    assert set(paths["/v1/subscriptions/{name}/rate-limit"]) == {"put", "delete"}


def test_the_cli_pauses_limits_and_resumes(client: Client, platform: ThreadedPlatform) -> None:
    server = platform.url

    paused = cli(server, "subscription", "pause", SUB)
    limited = cli(server, "subscription", "rate-limit", SUB, "10", "--burst", "3")
    listed = cli(server, "subscription", "list", "--json")

    assert paused.exit_code == 0, paused.output
    assert limited.exit_code == 0, limited.output
    (info,) = json.loads(listed.stdout)
    assert info["subscription"]["control"]["rate_limit"] == {"per_second": 10.0, "burst": 3}
    control = client.get_subscription(SUB).subscription.control
    assert control.paused
    assert control.rate_limit == RateLimit(per_second=10, burst=3)

    removed = cli(server, "subscription", "rate-limit", SUB, "--off")
    resumed = cli(server, "subscription", "resume", SUB)
    assert removed.exit_code == 0, removed.output
    assert resumed.exit_code == 0, resumed.output
    control = client.get_subscription(SUB).subscription.control
    assert not control.paused
    assert control.rate_limit is None


def test_the_cli_refuses_a_rate_limit_with_neither_a_rate_nor_off() -> None:
    result = cli("http://127.0.0.1:9", "subscription", "rate-limit", SUB)
    assert result.exit_code == 2
    assert "give a rate in events per second, or --off" in result.output


def test_the_cli_purges_and_publishes_with_a_priority(
    client: Client, platform: ThreadedPlatform
) -> None:
    client.pause(SUB)
    published = cli(platform.url, "publish", TOPIC, '{"a": 1}', "--priority", "low", "--json")
    assert published.exit_code == 0, published.output
    event_id = json.loads(published.stdout)["id"]
    assert client.get_event(event_id).priority == Priority.LOW
    purged = cli(platform.url, "subscription", "purge", SUB, "--yes")
    assert purged.exit_code == 0, purged.output
    eventually(lambda: state_of(client, event_id) == "dropped")
