"""Locality-aware routing: which of a lambda's endpoints a push goes to, by place.

An endpoint's locality is a label ``cloud/region/zone`` (any prefix of it, e.g. ``aws`` or
``aws/us-east-1``; ``""`` when unknown). A subscription lists the localities it prefers, most
preferred first; a preference matches an endpoint whose label equals it or starts with it
followed by ``/`` (so ``aws/us-east-1`` matches every zone of that region). Endpoints sort
into levels: level *i* holds those whose first matching preference is the *i*-th; those
matching none form the last level. A subscription with no preference uses the node's own
locality, zone first, then its region, then its cloud (as Envoy's zone-aware routing does).

The load each level gets follows Envoy's priority levels: a level's health is its share of
healthy endpoints times an overprovisioning factor of 1.4, capped at 100%; the most preferred
level takes as much of the load as its health, the next takes as much of the rest as its
health, and so on (normalised when the total falls short). So a zone keeps all the traffic
while at least 1/1.4 ≈ 71% of it is healthy, spills over in proportion as it loses more, and
gets the traffic back as its endpoints return.

Panic is per level, as in Envoy: while the levels' health adds up to 100% or more there is no
panic anywhere (enough healthy endpoints exist somewhere, so a dead preferred zone spills
over whatever its size). Below that, a level whose healthy share is under the panic threshold
sends its load to all its endpoints, healthy or not; and when every level panics (total
panic), the load is split by the number of endpoints in each level.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.delivery.health import EndpointState

OVERPROVISIONING = 1.4
FULL = 1.0 - 1e-9  # health summed in floats: 1.4 * 5/7 must count as 100%


def matches(preference: str, locality: str) -> bool:
    """Whether an endpoint at ``locality`` is in the place ``preference`` names."""
    return locality == preference or locality.startswith(preference + "/")


def preferences_of(node_locality: str) -> list[str]:
    """The preference a node's own locality implies: its zone, region, then cloud."""
    if not node_locality:
        return []
    parts = node_locality.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def levels(
    endpoints: Sequence[EndpointState], preference: Sequence[str]
) -> list[list[EndpointState]]:
    """Endpoints sorted into preference levels (empty levels dropped, order kept)."""
    if not preference:
        return [list(endpoints)] if endpoints else []
    out: list[list[EndpointState]] = [[] for _ in range(len(preference) + 1)]
    for endpoint in endpoints:
        for i, place in enumerate(preference):
            if matches(place, endpoint.locality):
                out[i].append(endpoint)
                break
        else:
            out[-1].append(endpoint)
    return [level for level in out if level]


def level_loads(healthy: Sequence[int], total: Sequence[int]) -> list[float]:
    """The share of pushes each level gets, from its healthy and total endpoint counts."""
    loads: list[float] = []
    left = 1.0
    for ok, n in zip(healthy, total, strict=True):
        health = min(1.0, OVERPROVISIONING * ok / n) if n else 0.0
        load = min(left, health)
        loads.append(load)
        left -= load
    spent = sum(loads)
    if 0.0 < spent < 1.0:
        loads = [load / spent for load in loads]
    return loads


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """How pushes are split between levels.

    Attributes:
        loads: each level's share of the pushes (summing to 1, or all 0 when nothing is
            healthy and panic is off).
        panic: per level, whether its pushes go to all its endpoints, healthy or not.
    """

    loads: list[float]
    panic: list[bool]


def plan_levels(healthy: Sequence[int], total: Sequence[int], panic_threshold: float) -> LevelPlan:
    """Each level's load and panic, from its healthy and total endpoint counts (Envoy's
    priority levels with per-level panic; see the module doc).

    Args:
        healthy: healthy endpoints per level, most preferred first.
        total: endpoints per level (healthy or not).
        panic_threshold: a level whose healthy share is below this panics, unless the
            levels' health adds up to 100%.
    """
    health = sum(
        min(1.0, OVERPROVISIONING * ok / n) for ok, n in zip(healthy, total, strict=True) if n
    )
    if health >= FULL:
        return LevelPlan(level_loads(healthy, total), [False] * len(total))
    panic = [n > 0 and ok < panic_threshold * n for ok, n in zip(healthy, total, strict=True)]
    size = sum(total)
    if all(panic) and size:
        return LevelPlan([n / size for n in total], panic)
    return LevelPlan(level_loads(healthy, total), panic)


def pick_level(loads: Sequence[float], rng: random.Random) -> int:
    """A level drawn by its load (the first with any load when the draw falls past the end)."""
    x = rng.random()
    for i, load in enumerate(loads):
        if x < load:
            return i
        x -= load
    return next((i for i, load in enumerate(loads) if load > 0), 0)
