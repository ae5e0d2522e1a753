"""Signed pushes between real ``conveyor serve`` and ``conveyor worker`` processes: a worker
with the platform's secret runs the events; one with another secret refuses every push
(401), so the events wait as retries and run nothing."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from conftest import Platform, wait_for
from conveyor.wire.signing import generate_secret


def publish(platform: Platform, payload: object) -> str:
    body = json.dumps({"payload": payload}).encode()
    request = urllib.request.Request(
        f"{platform.url}/v1/topics/orders/events",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["id"])


def deliveries(platform: Platform, event_id: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{platform.url}/v1/events/{event_id}", timeout=10) as answer:
        return list(json.loads(answer.read())["deliveries"])


def test_a_worker_runs_pushes_signed_with_its_secret_and_refuses_others(
    tmp_path: Path,
) -> None:
    old, new = generate_secret(), generate_secret()
    platform = Platform(tmp_path)
    # The platform signs with two secrets (rotating): a worker knowing either accepts
    platform.env["CONVEYOR_SIGNING_SECRETS"] = f"{old},{new}"
    platform.start()
    try:
        good = platform.worker("e2e_lambdas:app", "--signing-secret", new)
        event_id = publish(platform, {"n": 1})
        wait_for(lambda: [r["id"] for r in platform.records()] == [event_id])
        good.stop()

        # When the only worker holds a secret the platform does not sign with
        platform.workers.remove(good)
        platform.worker("e2e_lambdas:app", "--signing-secret", generate_secret())
        refused = publish(platform, {"n": 2})

        # Then its pushes are refused, nothing runs, and the event waits as a retry (its
        # state can read retrying a moment before its row, with the error, is committed)
        def retrying() -> bool:
            (delivery,) = deliveries(platform, refused)
            return delivery["state"] == "retrying" and "last_error" in delivery

        wait_for(retrying)
        (delivery,) = deliveries(platform, refused)
        assert "401" in str(delivery["last_error"])
        assert "invalid_signature" in str(delivery["last_error"])
        assert [r["id"] for r in platform.records()] == [event_id]
    finally:
        for worker in platform.workers:
            worker.stop()
        if platform.proc is not None:
            platform.proc.stop()


def test_a_malformed_secret_stops_the_worker_at_start(tmp_path: Path) -> None:
    platform = Platform(tmp_path)
    platform.start()
    try:
        with pytest.raises(RuntimeError, match="whsec_"):
            platform.worker("e2e_lambdas:app", "--signing-secret", "not-a-secret")
    finally:
        if platform.proc is not None:
            platform.proc.stop()
