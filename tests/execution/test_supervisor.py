"""The supervisor's parts: the fleet of child processes (real processes of a stand-in
script), one sampling step in each mode, and the CLI that starts it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from execution_fakes import until
from typer.testing import CliRunner

from conveyor.cli import app as cli
from conveyor.clock import FakeClock
from conveyor.execution._fleet import Fleet
from conveyor.execution._probes import FleetHealth, HealthProbe, LambdaLoad, PlatformProbe
from conveyor.execution.scaling import ScalingPolicy, ScalingSettings
from conveyor.execution.supervisor import Supervisor, SupervisorMetrics

# Stands in for `conveyor worker`: says it serves, then waits for SIGTERM (exit 0), or
# exits at once with the status given as its argument.
CHILD = """
import os, signal, sys, time
print(f"conveyor worker: lambda fake serving http://127.0.0.1:{os.getpid()}/push (1)",
      flush=True)
if len(sys.argv) > 1:
    sys.exit(int(sys.argv[1]))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.02)
"""
USAGE = "import sys; sys.exit(2)"


def child(*args: str) -> list[str]:
    return [sys.executable, "-c", CHILD, *args]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_fleet_starts_children_to_its_target_and_drains_the_newest_surplus() -> None:
    # Given a fleet of 3 serving children
    async with Fleet(child(), clock=FakeClock()) as fleet:
        fleet.scale_to(3)
        await until(lambda: len(fleet.serving()) == 3, within=20)
        first = fleet.serving()[0]
        pids = fleet.pids()

        # When the target falls to 1
        fleet.scale_to(1)

        # Then the two newest are drained and exit, the first one stays
        await until(lambda: len(fleet.pids()) == 1, within=20)
        assert fleet.serving() == [first]
        assert fleet.pids() == pids[:1]

    # And closing the fleet drains the last one
    assert not alive(pids[0])


async def test_a_child_that_exits_on_its_own_is_replaced_after_a_doubling_backoff() -> None:
    # Given a fleet whose children exit on their own (status 3) just after they serve
    clock = FakeClock()
    restarts: list[int] = []
    async with Fleet(
        child("3"), clock=clock, on_restart=lambda: restarts.append(1), first_backoff=0.5
    ) as fleet:
        # When one child is wanted
        fleet.scale_to(1)
        await until(lambda: len(restarts) == 1, within=20)

        # Then the replacement waits for the backoff: none starts before 0.5 s
        await asyncio.sleep(0.2)
        assert fleet.pids() == []
        clock.advance(0.5)
        await until(lambda: len(restarts) == 2, within=20)

        # And after a second failure the wait doubles to 1 s
        clock.advance(0.5)
        await asyncio.sleep(0.2)
        assert fleet.pids() == []
        assert len(restarts) == 2
        clock.advance(0.5)
        await until(lambda: len(restarts) == 3, within=20)
        fleet.scale_to(0)


async def test_a_child_that_refuses_its_command_line_stops_the_fleet() -> None:
    # Given a command line that the child refuses (status 2, before it serves)
    failures: list[str] = []
    async with Fleet(
        [sys.executable, "-c", USAGE], clock=FakeClock(), on_fatal=failures.append
    ) as fleet:
        # When
        fleet.scale_to(2)
        await until(lambda: bool(failures) and fleet.pids() == [], within=20)
        await asyncio.sleep(0.2)

        # Then nothing replaces it
        assert fleet.pids() == []
        assert fleet.failure is not None
        assert "refused its command line (exit status 2)" in fleet.failure


class StubPlatform(PlatformProbe):
    def __init__(self, loads: Sequence[LambdaLoad]) -> None:
        super().__init__("http://127.0.0.1:1", "fake")
        self.loads = list(loads)
        self.asked_endpoints: list[bool] = []

    async def load(self, *, endpoints: bool = False) -> LambdaLoad:
        self.asked_endpoints.append(endpoints)
        return self.loads.pop(0)


class StubHealth(HealthProbe):
    def __init__(self, handled_per_poll: int) -> None:
        super().__init__()
        self.handled_per_poll = handled_per_poll
        self.polled: list[list[str]] = []

    async def poll(self, push_urls: Sequence[str]) -> FleetHealth:
        self.polled.append(list(push_urls))
        self.completed += self.handled_per_poll
        return FleetHealth(serving=len(push_urls), running=0)


def metric(metrics: SupervisorMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"lambda": "fake"})


async def test_observing_measures_the_registered_endpoints_and_only_exports() -> None:
    # Given two registered endpoints, a backlog that needs 4 processes, and no fleet
    clock = FakeClock()
    endpoints = ["http://10.0.0.1:9000/conveyor/push", "http://10.0.0.2:9000/conveyor/push"]
    loads = [LambdaLoad(backlog=2000, oldest_age=3.0, endpoints=endpoints)]
    settings = ScalingSettings(min_replicas=1, max_replicas=10)
    metrics = SupervisorMetrics("fake", settings)
    probe, health = StubPlatform(loads), StubHealth(handled_per_poll=0)
    supervisor = Supervisor(
        probe=probe,
        health=health,
        policy=ScalingPolicy(settings, clock),
        metrics=metrics,
        fleet=None,
        clock=clock,
        interval=1.0,
    )

    # When
    decision = await supervisor.step()

    # Then the endpoints were read and measured, and the desire is exported
    assert probe.asked_endpoints == [True]
    assert health.polled == [endpoints]
    assert decision is not None
    assert decision.desired == 4  # 2,000 / 10 s / 50 per process
    assert metric(metrics, "conveyor_worker_desired_replicas") == 4
    assert metric(metrics, "conveyor_worker_replicas") == 2
    assert metric(metrics, "conveyor_worker_backlog") == 2000
    assert metric(metrics, "conveyor_worker_oldest_pending_age_seconds") == 3.0
    assert metric(metrics, "conveyor_worker_max_replicas") == 10


async def test_a_step_scales_the_fleet_to_the_decision() -> None:
    # Given a fleet of one child and a backlog needing 3
    clock = FakeClock()
    settings = ScalingSettings(min_replicas=1, max_replicas=3)
    metrics = SupervisorMetrics("fake", settings)
    loads = [LambdaLoad(backlog=1500, oldest_age=1.0, endpoints=[])]
    async with Fleet(child(), clock=clock) as fleet:
        fleet.scale_to(1)
        await until(lambda: len(fleet.serving()) == 1, within=20)
        supervisor = Supervisor(
            probe=StubPlatform(loads),
            health=StubHealth(handled_per_poll=0),
            policy=ScalingPolicy(settings, clock),
            metrics=metrics,
            fleet=fleet,
            clock=clock,
            interval=1.0,
        )

        # When
        await supervisor.step()

        # Then
        assert fleet.target == 3
        await until(lambda: len(fleet.serving()) == 3, within=20)


def test_the_cli_passes_every_worker_option_given_to_the_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a supervisor entry point that records what it is asked
    calls: list[dict[str, Any]] = []

    def record(ref: str, **kwargs: Any) -> None:
        calls.append({"ref": ref, **kwargs})

    monkeypatch.setattr("conveyor.execution.supervisor.run_supervisor", record)

    # When the worker command is given worker options and autoscaling ones
    result = CliRunner().invoke(
        cli,
        [
            "worker",
            "tasks:app",
            "--server",
            "http://10.0.0.5:8400",
            "--concurrency",
            "8",
            "--host",
            "0.0.0.0",
            "--zone",
            "aws/eu-west-1/a",
            "--ttl",
            "20",
            "--min",
            "2",
            "--max",
            "6",
            "--metrics-port",
            "9464",
            "--scale-interval",
            "500ms",
            "--target-drain",
            "20s",
            "--scale-down-window",
            "1m",
        ],
    )

    # Then the children get the worker options only, and the supervisor its settings
    assert result.exit_code == 0, result.output
    (call,) = calls
    assert call["worker_args"] == [
        "tasks:app",
        "--server",
        "http://10.0.0.5:8400",
        "--host",
        "0.0.0.0",
        "--concurrency",
        "8",
        "--locality",
        "aws/eu-west-1/a",
        "--ttl",
        "20.0",
    ]
    assert call["metrics_port"] == 9464
    assert call["metrics_host"] == "0.0.0.0"
    assert call["interval"] == 0.5
    settings = call["settings"]
    assert (settings.min_replicas, settings.max_replicas) == (2, 6)
    assert (settings.target_drain, settings.stabilization) == (20.0, 60.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min", "2"], "autoscaling options need --max"),
        (["--max", "3", "--port", "9000"], "each process picks a port of its own"),
        (["--max", "2", "--min", "3"], "max_replicas must be"),
    ],
)
def test_the_cli_refuses_autoscaling_options_that_cannot_work(
    monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setattr(
        "conveyor.execution.supervisor.run_supervisor",
        lambda *a, **k: pytest.fail("the supervisor should not start"),
    )
    result = CliRunner().invoke(cli, ["worker", "tasks:app", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_without_max_the_worker_runs_as_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    served: list[str] = []
    monkeypatch.setattr("conveyor.execution.worker.run_worker", lambda ref, **_: served.append(ref))
    monkeypatch.setattr(
        "conveyor.execution.supervisor.run_supervisor",
        lambda *a, **k: pytest.fail("the supervisor should not start"),
    )

    # When
    result = CliRunner().invoke(cli, ["worker", "tasks:app", "--concurrency", "3"])

    # Then
    assert result.exit_code == 0, result.output
    assert served == ["tasks:app"]
