"""The autoscaler through real processes: ``conveyor serve`` and a ``conveyor worker --min 1
--max 3`` supervisor, whose child workers each record every event they handle."""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BIN, HERE, Platform, Proc, free_port, wait_for
from conveyor import Client

TOPIC = "scaling-work"
BURST = 1200
TRICKLE_INTERVAL = 0.05
"""Seconds between the events published while the processes are drained (20/s)."""


class Supervisor:
    """A ``conveyor worker scaling_lambdas:app --min 1 --max 3`` process and its metrics."""

    def __init__(self, platform: Platform, record: Path) -> None:
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        env = {**platform.env, "RECORD_FILE": str(record)}
        self.proc = Proc(
            [
                str(BIN / "conveyor"),
                "worker",
                "scaling_lambdas:app",
                "--server",
                platform.url,
                "--concurrency",
                "2",
                "--min",
                "1",
                "--max",
                "3",
                "--metrics-port",
                self.metrics_url.split(":")[2].split("/")[0],
                "--scale-interval",
                "250ms",
                "--target-drain",
                "2s",
                "--scale-down-window",
                "2s",
            ],
            platform.tmp / "supervisor.log",
            env,
            HERE,
        )
        self.seen: dict[str, set[int]] = {"desired_replicas": set(), "replicas": set()}

    def metric(self, name: str) -> int | None:
        """``conveyor_worker_<name>{lambda="scaling"}``, or None while unreadable."""
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as answer:
                text = answer.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        found = re.search(rf'^conveyor_worker_{name}{{lambda="scaling"}} (\S+)$', text, re.M)
        if found is None:
            return None
        value = int(float(found.group(1)))
        self.seen.setdefault(name, set()).add(value)
        return value

    def replicas_are(self, count: int, client: Client) -> bool:
        """The supervisor reports ``count`` processes serving and wants no other count, and
        the platform has exactly that many endpoints of the lambda."""
        desired = self.metric("desired_replicas")
        replicas = self.metric("replicas")
        if not self.proc.alive():
            pytest.fail("the supervisor exited:\n" + self.proc.output())
        return (desired, replicas) == (count, count) and _endpoints(client) == count


def _endpoints(client: Client) -> int:
    return sum(len(info.endpoints) for info in client.list_lambdas() if info.name == "scaling")


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    """``conveyor serve`` on SQLite (the store plays no part in scaling the workers)."""
    p = Platform(tmp_path)
    p.start()
    yield p
    if p.proc is not None:
        p.proc.stop()


def test_a_backlog_grows_the_processes_to_the_bound_and_they_shrink_after_losing_nothing(
    sqlite_platform: Platform,
) -> None:
    platform = sqlite_platform
    record = platform.tmp / "handled.txt"
    supervisor = Supervisor(platform, record)
    published: list[str] = []
    stop_trickle = threading.Event()

    def trickle() -> None:
        with Client(platform.url, timeout=5) as client:
            while not stop_trickle.wait(TRICKLE_INTERVAL):
                published.append(client.publish(TOPIC, {"trickle": True}).id)

    publisher = threading.Thread(target=trickle)
    try:
        with Client(platform.url) as client:
            # Given a supervisor running one worker process of 2 handler calls at a time
            wait_for(lambda: supervisor.replicas_are(1, client), timeout=30)

            # When a backlog of 1,200 events of 30 ms each is published at once
            for start in range(0, BURST, 400):
                batch = [{"payload": {"n": n}} for n in range(start, start + 400)]
                published.extend(r.id for r in client.publish_batch(TOPIC, batch))

            # Then the process count grows to the bound
            wait_for(lambda: supervisor.replicas_are(3, client), timeout=30)

            # And once the backlog is handled it shrinks back to 1, draining processes while
            # events keep arriving
            publisher.start()
            wait_for(lambda: supervisor.replicas_are(1, client), timeout=40)
            stop_trickle.set()
            publisher.join()

            # And every event is handled exactly once
            def all_handled() -> bool:
                return len(_handled(record)) >= len(published)

            wait_for(all_handled, timeout=30)
            time.sleep(0.5)  # a duplicate would be written by now
            handled = _handled(record)
    finally:
        stop_trickle.set()
        if publisher.is_alive():
            publisher.join()
        status = supervisor.proc.stop()

    counts = Counter(event_id for event_id, _ in handled)
    assert set(counts) == set(published), "events lost or foreign"
    assert [i for i, n in counts.items() if n > 1] == [], "events handled twice"
    assert len(published) > BURST
    assert len({pid for _, pid in handled}) >= 3, "3 processes should have shared the work"
    assert max(supervisor.seen["desired_replicas"]) == 3
    assert max(supervisor.seen["replicas"]) == 3
    # And SIGTERM to the supervisor drains its last process and exits 0
    assert status == 0, supervisor.proc.output()
    with Client(platform.url) as client:
        assert _endpoints(client) == 0


def _handled(record: Path) -> list[tuple[str, str]]:
    if not record.exists():
        return []
    lines = record.read_text().splitlines()
    return [(parts[0], parts[1]) for line in lines if len(parts := line.split()) == 2]


def test_autoscaling_options_without_max_are_refused(tmp_path: Path) -> None:
    # Given / When a worker is asked for a minimum but no maximum
    proc = Proc(
        [str(BIN / "conveyor"), "worker", "scaling_lambdas:app", "--min", "2"],
        tmp_path / "refused.log",
        dict(os.environ),
        HERE,
    )

    # Then it refuses to start, naming the option
    assert proc.popen.wait(30) == 2
    proc.stop()
    assert "autoscaling options need --max" in proc.output()
    assert "--min" in proc.output()
