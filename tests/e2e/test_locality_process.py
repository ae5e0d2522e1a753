"""Locality and host health with real processes on 127.0.0.1: a ``conveyor serve`` on SQLite
and ``conveyor worker`` processes in two zones.

- Every push goes to the preferred zone while it is healthy. Kill -9 its workers: pushes
  spill over to the next zone and no event is lost. Start them again: traffic returns.
- A worker whose handler hangs past the push timeout is ejected by outlier detection (seen
  in the API), the others take its events, and it is re-admitted when its ejection ends.
- Stop (SIGSTOP) both workers of the preferred zone while their registrations live on: the
  zone fails its probes and every event goes to the other zone's one worker (panic is per
  level: one healthy endpoint of three is enough when it is the whole next level).
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from locality_lambdas import ZONE_A, ZONE_B

from conftest import Platform, Proc, wait_for
from conveyor.client import Client

REF = "locality_lambdas:app"
LAMBDA = "zoned"
SERVE = [
    "--probe-interval", "0.3",
    "--probe-timeout", "0.5",
    "--outlier-failures", "3",
    "--ejection-time", "2",
]  # fmt: skip


@pytest.fixture
def zoned(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(tmp_path)
    platform.serve_args = SERVE
    platform.start()
    yield platform
    for worker in platform.workers:
        if worker.alive():
            worker.stop()
    if platform.proc is not None:
        platform.proc.stop()


def start(platform: Platform, zone: str, ttl: str = "2", **env: str) -> Proc:
    return platform.worker(
        REF, "--locality", zone, "--ttl", ttl, "--concurrency", "256", env={"ZONE": zone, **env}
    )


def records(platform: Platform) -> list[dict[str, str]]:
    if not platform.record.exists():
        return []
    lines = platform.record.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def publish(client: Client, n: int) -> set[str]:
    results = client.publish_batch("jobs", [{"payload": {"n": i}} for i in range(n)])
    return {r.id for r in results}


def zones_of(platform: Platform, ids: set[str]) -> Counter[str]:
    """The zones that handled ``ids`` (each event's first handling), once all are handled."""
    wait_for(lambda: ids <= {r["id"] for r in records(platform)}, timeout=30)
    first: dict[str, str] = {}
    for r in records(platform):
        first.setdefault(r["id"], r["zone"])
    return Counter(first[i] for i in ids)


def healthy(client: Client, zone: str) -> int:
    info = next((i for i in client.list_lambdas() if i.name == LAMBDA), None)
    if info is None:
        return 0
    return sum(1 for e in info.endpoints if e.locality == zone and e.healthy)


def test_a_dead_zone_spills_over_to_the_next_with_no_loss_and_traffic_returns(
    zoned: Platform,
) -> None:
    a1, a2 = start(zoned, ZONE_A), start(zoned, ZONE_A)
    start(zoned, ZONE_B)
    start(zoned, ZONE_B)
    with Client(zoned.url) as client:
        wait_for(lambda: healthy(client, ZONE_A) == 2 and healthy(client, ZONE_B) == 2)

        # While zone A is healthy, it takes every push
        first = publish(client, 300)
        assert zones_of(zoned, first) == Counter({ZONE_A: 300})

        # Zone A's workers die without a word
        a1.kill9()
        a2.kill9()
        second = publish(client, 300)
        # Every event is handled (by zone B), none lost
        assert zones_of(zoned, second) == Counter({ZONE_B: 300})
        # The dead endpoints are failing their probes, then expire (TTL 2 s)
        wait_for(lambda: healthy(client, ZONE_A) == 0, timeout=10)

        # Zone A comes back: the traffic returns to it
        start(zoned, ZONE_A)
        start(zoned, ZONE_A)
        wait_for(lambda: healthy(client, ZONE_A) == 2, timeout=15)
        wait_for(
            lambda: all(
                e.locality != ZONE_A or e.healthy
                for i in client.list_lambdas()
                for e in i.endpoints
            ),
            timeout=15,
        )
        third = publish(client, 300)
        assert zones_of(zoned, third) == Counter({ZONE_A: 300})


def test_a_hanging_worker_is_ejected_and_readmitted_when_its_ejection_ends(
    zoned: Platform, tmp_path: Path
) -> None:
    hang = tmp_path / "hang"
    hang.touch()
    start(zoned, ZONE_A, CAN_HANG="1", HANG_FILE=str(hang), HANG_SECONDS="3")
    start(zoned, ZONE_A)
    with Client(zoned.url) as client:
        wait_for(lambda: healthy(client, ZONE_A) == 2)

        # Its pushes time out (1 s): three in a row eject it; the other worker takes them all
        ids = publish(client, 200)
        zones_of(zoned, ids)

        def ejected() -> list[str]:
            info = next(i for i in client.list_lambdas() if i.name == LAMBDA)
            return [e.id for e in info.endpoints if e.ejected_until is not None]

        wait_for(lambda: len(ejected()) == 1, timeout=15)
        handled_by = {r["pid"] for r in records(zoned)}
        assert len(handled_by) == 1  # only the healthy worker handled anything
        steady = handled_by.pop()

        # It stops hanging; when its ejection ends (2 s) it gets pushes again
        hang.unlink()
        wait_for(lambda: not ejected(), timeout=15)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            more = publish(client, 100)
            zones_of(zoned, more)
            if {r["pid"] for r in records(zoned) if r["id"] in more} - {steady}:
                break
        else:
            pytest.fail("the re-admitted worker got no pushes")


def test_a_stopped_preferred_zone_spills_over_to_the_healthy_zone_while_it_is_registered(
    zoned: Platform,
) -> None:
    # Given two workers in zone A (preferred) whose registrations live 60 s, one in zone B
    a1, a2 = start(zoned, ZONE_A, ttl="60"), start(zoned, ZONE_A, ttl="60")
    b = start(zoned, ZONE_B)
    with Client(zoned.url) as client:
        wait_for(lambda: healthy(client, ZONE_A) == 2 and healthy(client, ZONE_B) == 1)
        assert zones_of(zoned, publish(client, 50)) == Counter({ZONE_A: 50})
        try:
            # When zone A's workers stop (SIGSTOP: they accept connections, never answer)
            a1.popen.send_signal(signal.SIGSTOP)
            a2.popen.send_signal(signal.SIGSTOP)
            ids = publish(client, 100)

            # Then they fail their probes, and every event is handled by zone B, long before
            # zone A's registrations run out (60 s; before the fix, B got nothing until then)
            wait_for(lambda: healthy(client, ZONE_A) == 0, timeout=10)
            assert zones_of(zoned, ids) == Counter({ZONE_B: 100})
            assert b.alive()
        finally:
            a1.popen.send_signal(signal.SIGCONT)
            a2.popen.send_signal(signal.SIGCONT)
