"""Releases with real processes: ``conveyor serve`` on SQLite, a stable ``conveyor worker``
(v1), then a canary started with ``--version v2`` whose handler fails half its events.

The canary is rolled back by itself and every event still ends ``succeeded``, handled by the
stable version; a healthy ``--version v3`` after it is promoted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Platform, wait_for
from conveyor import ReleasePolicy
from conveyor.client import Client

REF = "release_lambdas:app"
LAMBDA = "released"
POLICY = ReleasePolicy(share=0.5, window_seconds=4, min_pushes=10, latency_slack=1.0)


@pytest.fixture
def released(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(tmp_path)
    platform.start()
    yield platform
    for worker in platform.workers:
        if worker.alive():
            worker.stop()
    if platform.proc is not None:
        platform.proc.stop()


def records(platform: Platform) -> list[dict[str, object]]:
    if not platform.record.exists():
        return []
    lines = platform.record.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def start(platform: Platform, version: str, **env: str) -> None:
    platform.worker(REF, "--version", version, env={"VERSION": version, **env})


def state_of(client: Client, version: str) -> str:
    releases = client.list_releases(LAMBDA)
    return next((str(r.state) for r in releases.history if r.version == version), "")


def test_a_release_failing_half_its_events_is_rolled_back_and_a_healthy_one_promoted(
    released: Platform,
) -> None:
    with Client(released.url) as client:
        # Given a stable v1, and the lambda's release policy
        start(released, "v1")
        wait_for(lambda: state_of(client, "v1") == "stable")
        client.set_release_policy(LAMBDA, POLICY)

        # When v2, which fails every odd event, starts beside it and gets events
        start(released, "v2", FAIL_HALF="1")
        wait_for(lambda: state_of(client, "v2") == "canary")
        ids = [
            r.id for r in client.publish_batch("work", [{"payload": {"n": n}} for n in range(200)])
        ]

        # Then v2 is rolled back by itself, with the reason
        wait_for(lambda: state_of(client, "v2") == "rolled_back", timeout=30)
        history = client.list_releases(LAMBDA).history
        (v2,) = [r for r in history if r.version == "v2"]
        assert "failure rate" in (v2.reason or "")

        # And every event ends succeeded, each success on the stable version
        def all_succeeded() -> bool:
            return all(client.get_event(i).deliveries[0].state == "succeeded" for i in ids)

        wait_for(all_succeeded, timeout=40, interval=0.5)
        succeeded = {str(r["id"]): str(r["version"]) for r in records(released) if r["ok"]}
        assert set(ids) <= set(succeeded)
        failed_on_v2 = {str(r["id"]) for r in records(released) if not r["ok"]}
        assert failed_on_v2, "the canary got no failing event"
        assert {succeeded[i] for i in failed_on_v2} == {"v1"}

        # When a healthy v3 starts: it is on trial, then promoted after its window
        start(released, "v3")
        wait_for(lambda: state_of(client, "v3") == "canary")
        more = client.publish_batch("work", [{"payload": {"n": 2 * n}} for n in range(100)])
        wait_for(lambda: state_of(client, "v3") == "stable", timeout=30)
        assert state_of(client, "v1") == "superseded"
        assert {r.id for r in more} <= {str(r["id"]) for r in records(released)}
