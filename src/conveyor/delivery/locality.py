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
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from conveyor.delivery.health import EndpointState

OVERPROVISIONING = 1.4


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


def pick_level(loads: Sequence[float], rng: random.Random) -> int:
    """A level drawn by its load (the first with any load when the draw falls past the end)."""
    x = rng.random()
    for i, load in enumerate(loads):
        if x < load:
            return i
        x -= load
    return next((i for i, load in enumerate(loads) if load > 0), 0)
