"""Locality-aware routing in the endpoint pool, on the injected clock: levels by preference,
the Envoy load split with its overprovisioning factor, spill-over as a zone loses healthy
endpoints and return as they come back, the node's own locality as the default preference,
and the power of two choices within a level."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from conveyor.clock import FakeClock
from conveyor.delivery.endpoints import EndpointPool, EndpointState
from conveyor.delivery.locality import (
    level_loads,
    levels,
    matches,
    pick_level,
    preferences_of,
)

LAMBDA = "worker"
ZONE_A = "aws/us-east-1/us-east-1a"
ZONE_B = "aws/us-east-1/us-east-1b"
OTHER_REGION = "aws/eu-west-1/eu-west-1a"
PREFER = [ZONE_A, "aws/us-east-1"]


def pool_with(clock: FakeClock, places: list[str], **kwargs: list[str]) -> EndpointPool:
    pool = EndpointPool(clock, preference=kwargs.get("preference", []))
    pool._rng = random.Random(7)  # a fixed draw: the shares below are measured, not flaky
    for i, place in enumerate(places):
        pool.register(LAMBDA, f"e{i}", f"http://127.0.0.1:{9000 + i}/push", 3600, 8, locality=place)
    return pool


def picks(pool: EndpointPool, preference: list[str] | None, n: int = 2000) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        endpoint = pool.choose(LAMBDA, preference)
        assert endpoint is not None
        out[endpoint.locality] += 1
    return out


def eject(pool: EndpointPool, endpoint_id: str, clock: FakeClock) -> EndpointState:
    state = next(e for e in pool.endpoints(LAMBDA) if e.id == endpoint_id)
    state.ejected_until = clock.now() + 30
    return state


@pytest.mark.parametrize(
    ("preference", "locality", "expected"),
    [
        (ZONE_A, ZONE_A, True),
        ("aws/us-east-1", ZONE_A, True),
        ("aws", ZONE_A, True),
        ("aws/us-east", ZONE_A, False),  # a prefix of a segment is not a place
        (ZONE_A, "aws/us-east-1", False),  # a region label is not in a zone
        (ZONE_A, "", False),
        ("gcp", ZONE_A, False),
    ],
)
def test_a_preference_matches_its_place_and_everything_inside_it(
    preference: str, locality: str, expected: bool
) -> None:
    assert matches(preference, locality) is expected


def test_a_node_prefers_its_zone_then_its_region_then_its_cloud() -> None:
    assert preferences_of(ZONE_A) == [ZONE_A, "aws/us-east-1", "aws"]
    assert preferences_of("aws") == ["aws"]
    assert preferences_of("") == []


def test_endpoints_sort_into_levels_by_their_first_matching_preference() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_B, ZONE_A, OTHER_REGION, ""])
    by_level = levels(pool.endpoints(LAMBDA), PREFER)
    assert [[e.locality for e in level] for level in by_level] == [
        [ZONE_A],
        [ZONE_B],
        [OTHER_REGION, ""],
    ]
    # No preference: one level, every endpoint
    assert len(levels(pool.endpoints(LAMBDA), [])) == 1


@pytest.mark.parametrize(
    ("healthy", "total", "loads"),
    [
        ([2, 2], [2, 2], [1.0, 0.0]),
        # 1.4 * 3/4 > 1: the zone keeps everything while at least 1/1.4 of it is healthy
        ([3, 2], [4, 2], [1.0, 0.0]),
        ([1, 2], [2, 2], [0.7, 0.3]),
        ([0, 2], [2, 2], [0.0, 1.0]),
        # The first short, the second takes what is left up to its own health
        ([1, 1], [2, 4], [0.7, 0.3]),
        # Both short (0.35 each): what they can take, normalised
        ([1, 1], [4, 4], [0.5, 0.5]),
        ([0, 0], [2, 2], [0.0, 0.0]),
    ],
)
def test_level_loads_follow_envoys_priority_levels(
    healthy: list[int], total: list[int], loads: list[float]
) -> None:
    assert level_loads(healthy, total) == pytest.approx(loads)


def test_a_level_is_drawn_by_its_load() -> None:
    rng = random.Random(1)
    drawn = Counter(pick_level([0.7, 0.3], rng) for _ in range(10_000))
    assert drawn[0] / 10_000 == pytest.approx(0.7, abs=0.02)
    assert pick_level([0.0, 0.0], rng) == 0


def test_the_preferred_zone_takes_every_push_while_it_is_healthy() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_A, ZONE_B, ZONE_B])
    assert picks(pool, PREFER) == Counter({ZONE_A: 2000})


def test_pushes_spill_over_in_proportion_and_return_when_the_zone_recovers() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_A, ZONE_B, ZONE_B])

    # Half of zone A ejected: it takes 1.4 * 50% = 70%, the rest spills to zone B
    eject(pool, "e0", clock)
    share = picks(pool, PREFER)[ZONE_A] / 2000
    assert share == pytest.approx(0.7, abs=0.04)

    # All of zone A gone (its workers' connections fail): everything goes to zone B
    for state in pool.endpoints(LAMBDA)[:2]:
        pool.connect_failed(state)
    assert picks(pool, PREFER) == Counter({ZONE_B: 2000})

    # Zone A back (cool-down and ejection over): it has every push again
    clock.advance(31)
    assert picks(pool, PREFER) == Counter({ZONE_A: 2000})


def test_endpoints_outside_every_preferred_place_are_the_last_resort() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, OTHER_REGION])
    assert picks(pool, PREFER) == Counter({ZONE_A: 2000})
    pool.deregister(LAMBDA, "e0")
    assert picks(pool, PREFER) == Counter({OTHER_REGION: 2000})


def test_without_a_preference_the_nodes_own_locality_is_preferred() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_B, OTHER_REGION], preference=preferences_of(ZONE_B))
    assert picks(pool, None) == Counter({ZONE_B: 2000})
    assert picks(pool, []) == Counter({ZONE_B: 2000})
    # A subscription's own preference wins over the node's
    assert picks(pool, [OTHER_REGION]) == Counter({OTHER_REGION: 2000})


def test_within_a_level_the_less_loaded_of_two_random_endpoints_is_chosen() -> None:
    clock = FakeClock()
    pool = pool_with(clock, [ZONE_A, ZONE_A, ZONE_A])
    busy = pool.endpoints(LAMBDA)[0]
    busy.in_flight = 100
    chosen = Counter(pool.choose(LAMBDA, PREFER).id for _ in range(900))  # type: ignore[union-attr]
    # The busy one wins a pair only against... nothing: it always loses its comparisons
    assert chosen["e0"] == 0
    assert chosen["e1"] > 300
    assert chosen["e2"] > 300


def test_load_is_compared_relative_to_each_workers_concurrency() -> None:
    clock = FakeClock()
    pool = EndpointPool(clock)
    big = pool.register(LAMBDA, "big", "http://127.0.0.1:9000/push", 3600, 100)
    small = pool.register(LAMBDA, "small", "http://127.0.0.1:9001/push", 3600, 10)
    big.in_flight, small.in_flight = 50, 6  # 50% and 60% busy
    assert {pool.choose(LAMBDA).id for _ in range(50)} == {"big"}  # type: ignore[union-attr]
