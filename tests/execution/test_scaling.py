"""The autoscaling policy on a fake clock: bounds, backlog, arrival, throughput, age, and
the stabilized scale-down."""

from __future__ import annotations

import pytest

from conveyor.clock import FakeClock
from conveyor.execution.scaling import Decision, Sample, ScalingPolicy, ScalingSettings


def policy(
    clock: FakeClock,
    *,
    min_replicas: int = 1,
    max_replicas: int = 10,
    stabilization: float = 30.0,
    max_age: float = 30.0,
    prior_throughput: float = 50.0,
    tolerance: float = 0.1,
) -> ScalingPolicy:
    """A policy draining within 10 s, measuring rates over 10 s."""
    settings = ScalingSettings(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_drain=10.0,
        max_age=max_age,
        stabilization=stabilization,
        rate_window=10.0,
        prior_throughput=prior_throughput,
        tolerance=tolerance,
    )
    return ScalingPolicy(settings, clock)


def sample(
    backlog: int = 0,
    *,
    running: int = 0,
    completed: int = 0,
    replicas: int = 1,
    oldest_age: float | None = None,
) -> Sample:
    return Sample(
        backlog=backlog,
        running=running,
        oldest_age=oldest_age,
        completed=completed,
        replicas=replicas,
    )


def test_a_backlog_asks_at_once_for_enough_processes_to_drain_it_in_the_target_time() -> None:
    # Given one process and nothing measured yet (50 events/s per process assumed)
    clock = FakeClock()
    scaler = policy(clock)

    # When 2,000 events wait, to be handled within 10 s
    decision = scaler.observe(sample(2000), current=1)

    # Then 2,000 / 10 s / 50 per process = 4 processes, at once
    assert decision.desired == 4
    assert decision.queued == 2000
    assert not decision.measured


def test_the_desire_stays_within_the_bounds() -> None:
    # Given bounds of 2 to 5 processes
    clock = FakeClock()
    scaler = policy(clock, min_replicas=2, max_replicas=5, stabilization=0)

    # When the backlog would need 100 processes, then none
    high = scaler.observe(sample(50_000), current=2)
    clock.advance(1)
    low = scaler.observe(sample(0), current=2)

    # Then the count is held to the bounds
    assert high.desired == 5
    assert low.desired == 2


def test_a_count_outside_the_bounds_is_brought_back_at_once() -> None:
    # Given more processes than the maximum, and a window that delays a scale-down
    clock = FakeClock()
    scaler = policy(clock, max_replicas=3, min_replicas=2)

    # When / Then the count comes down to the maximum at once, not below it
    assert scaler.observe(sample(0), current=6).desired == 3
    # And one below the minimum goes up to it at once
    assert scaler.observe(sample(0), current=0).desired == 2


def test_events_in_handlers_are_not_counted_as_queued() -> None:
    # Given 400 unfinished events, of which 300 are running in handlers
    clock = FakeClock()
    scaler = policy(clock)

    # When
    decision = scaler.observe(sample(400, running=300), current=1)

    # Then only the 100 waiting count: 100 / 10 s / 50 = 0.2 process, so the minimum
    assert decision.queued == 100
    assert decision.desired == 1


def test_the_arrival_rate_is_kept_up_with() -> None:
    # Given 4 processes each able to take 100 events/s (the prior), that keep up: nothing
    # waits, and 200 events/s are handled
    clock = FakeClock()
    scaler = policy(clock, prior_throughput=100.0, stabilization=0)
    scaler.observe(sample(5, running=5, completed=0, replicas=4), current=4)

    # When 10 s later 2,000 more were handled and the backlog is unchanged
    clock.advance(10)
    decision = scaler.observe(sample(5, running=5, completed=2000, replicas=4), current=4)

    # Then 200 events/s arrive, which 2 processes take (the measured 50/s per process is
    # below the prior: it proves nothing, since they were not busy); the count goes down
    # one step towards it
    assert decision.arrival_rate == pytest.approx(200.0)
    assert decision.throughput == pytest.approx(100.0)
    assert not decision.measured
    assert decision.raw == 2
    assert decision.desired == 3


def test_a_growing_backlog_counts_as_arrivals() -> None:
    # Given one process handling 10 events/s
    clock = FakeClock()
    scaler = policy(clock)
    scaler.observe(sample(100, running=2, completed=0), current=1)

    # When in 10 s it handled 100 while the backlog grew by 400
    clock.advance(10)
    decision = scaler.observe(sample(500, running=2, completed=100), current=1)

    # Then 50 events/s arrive
    assert decision.arrival_rate == pytest.approx(50.0)


def test_throughput_is_measured_while_work_waits_and_replaces_the_prior() -> None:
    # Given 2 processes, each turning out 20 events/s while 400 events wait throughout
    clock = FakeClock()
    scaler = policy(clock, stabilization=0)
    for second in range(0, 11, 2):
        decision = scaler.observe(
            sample(404, running=4, completed=40 * second, replicas=2), current=2
        )
        clock.advance(2)

    # Then 20 events/s per process is measured (not the prior of 50), and the count follows
    # it: (400 queued / 10 s + 40/s arriving) / 20 per process = 4
    assert decision.measured
    assert decision.throughput == pytest.approx(20.0)
    assert decision.arrival_rate == pytest.approx(40.0)
    assert decision.desired == 4


def test_throughput_is_measured_per_process_second_as_processes_come_and_go() -> None:
    # Given work waiting throughout, 1 process for 5 s then 3 for 5 s, 10 events/s each
    clock = FakeClock()
    scaler = policy(clock)
    scaler.observe(sample(1000, running=1, completed=0, replicas=1), current=1)
    clock.advance(5)
    scaler.observe(sample(1000, running=1, completed=50, replicas=1), current=3)
    clock.advance(5)
    decision = scaler.observe(sample(1000, running=3, completed=200, replicas=3), current=3)

    # Then 200 events over 5 + (1 + 3) / 2 * 5 = 15 process-seconds: 13.3/s each
    assert decision.throughput == pytest.approx(200 / 15)


def test_an_old_pending_event_forces_one_more_process() -> None:
    # Given 2 processes serving, little queued (the backlog alone asks for the minimum)
    clock = FakeClock()
    scaler = policy(clock, max_age=30.0)

    # When the oldest pending event has waited 45 s
    decision = scaler.observe(sample(12, running=2, replicas=2, oldest_age=45.0), current=2)

    # Then one more process is asked for
    assert decision.desired == 3
    assert "oldest pending 45.0s" in decision.reason


@pytest.mark.parametrize(
    ("backlog", "replicas", "oldest_age"),
    [
        pytest.param(12, 2, 20.0, id="younger than the bound"),
        pytest.param(2, 2, 45.0, id="nothing queued: only a slow handler"),
        pytest.param(12, 1, 45.0, id="a process is still starting"),
    ],
)
def test_an_old_event_adds_no_process_when_one_would_not_help(
    backlog: int, replicas: int, oldest_age: float
) -> None:
    # Given
    clock = FakeClock()
    scaler = policy(clock, max_age=30.0)

    # When
    decision = scaler.observe(
        sample(backlog, running=2, replicas=replicas, oldest_age=oldest_age), current=2
    )

    # Then
    assert decision.desired == 2


def test_a_scale_down_waits_for_the_stabilization_window_then_goes_one_step_per_sample() -> None:
    # Given 4 processes and no more backlog, sampled every 5 s, a 30 s window
    clock = FakeClock()
    scaler = policy(clock, stabilization=30.0)
    current = 4
    counts: list[int] = []

    # When
    for _ in range(10):
        decision = scaler.observe(sample(0, replicas=current), current=current)
        counts.append(decision.desired)
        current = decision.desired
        clock.advance(5)

    # Then the count holds for 30 s, then falls by one per sample down to the minimum
    assert counts == [4, 4, 4, 4, 4, 4, 3, 2, 1, 1]


def test_a_high_desire_inside_the_window_holds_the_count() -> None:
    # Given 1 process for a while, sampled every 5 s, at most 5
    clock = FakeClock()
    scaler = policy(clock, stabilization=30.0, max_replicas=5)
    current = 1
    for _ in range(8):
        current = scaler.observe(sample(0), current=current).desired
        clock.advance(5)

    # When a burst asks for the most processes once, and then the backlog is gone
    decisions: list[Decision] = []
    for backlog in [2500] + [0] * 9:
        decisions.append(scaler.observe(sample(backlog), current=current))
        current = decisions[-1].desired
        clock.advance(5)

    # Then it scales up at once, holds 30 s after the burst, then steps down
    assert [d.desired for d in decisions] == [5, 5, 5, 5, 5, 5, 5, 4, 3, 2]
    assert [d.raw for d in decisions[1:]] == [1] * 9


def test_a_desire_just_over_a_whole_number_stays_on_it() -> None:
    # Given a backlog that needs 2.05 processes
    clock = FakeClock()
    scaler = policy(clock, tolerance=0.1)

    # When / Then
    assert scaler.observe(sample(1025), current=1).desired == 2


@pytest.mark.parametrize(
    "settings",
    [
        {"min_replicas": 3, "max_replicas": 2},
        {"min_replicas": 0, "max_replicas": 0},
        {"min_replicas": -1, "max_replicas": 2},
        {"target_drain": 0.0},
        {"prior_throughput": -1.0},
        {"step_down": 0},
        {"tolerance": 1.0},
    ],
)
def test_settings_out_of_range_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ScalingSettings(**settings)  # type: ignore[arg-type]
