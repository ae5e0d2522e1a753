"""Every engine implements every port, and the union ``Store`` is exactly the ports."""

from __future__ import annotations

import inspect

import pytest

from conveyor.store import ports
from conveyor.store.base import Store
from conveyor.store.postgres import PostgresStore
from conveyor.store.sqlite import SqliteStore

PORTS = [
    ports.PublishPort,
    ports.LogReadPort,
    ports.ProgressPort,
    ports.TimersPort,
    ports.CatalogPort,
    ports.RegistryPort,
    ports.ReleasesPort,
    ports.LeasesPort,
    ports.DeadLetterPort,
    ports.HousekeepingPort,
    ports.HealthPort,
]


def members(port: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(port, inspect.isfunction)} - {
        name for name, _ in inspect.getmembers(object)
    }


def test_the_ports_together_are_the_store_port() -> None:
    wanted = {name for name in members(Store) if not name.startswith("_")} - {"open", "aclose"}
    assert set().union(*map(members, PORTS)) == wanted


@pytest.mark.parametrize("engine", [SqliteStore, PostgresStore])
@pytest.mark.parametrize("port", PORTS, ids=lambda p: p.__name__)
def test_each_engine_has_every_method_of_each_port_with_its_signature(
    engine: type[Store], port: type
) -> None:
    for name in members(port):
        ours = inspect.signature(getattr(engine, name))
        theirs = inspect.signature(getattr(port, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        assert inspect.iscoroutinefunction(getattr(engine, name)) == (
            inspect.iscoroutinefunction(getattr(port, name))
        ), name


def engines_fit_the_ports(store: SqliteStore, pg: PostgresStore) -> list[object]:
    """Checked by mypy, not run: each engine is assignable to each port."""
    fits: list[object] = []
    for engine in (store, pg):
        publish: ports.PublishPort = engine
        read: ports.LogReadPort = engine
        progress: ports.ProgressPort = engine
        timers: ports.TimersPort = engine
        catalog: ports.CatalogPort = engine
        registry: ports.RegistryPort = engine
        releases: ports.ReleasesPort = engine
        leases: ports.LeasesPort = engine
        letters: ports.DeadLetterPort = engine
        sweep: ports.HousekeepingPort = engine
        health: ports.HealthPort = engine
        fits += [publish, read, progress, timers, catalog, registry, releases, leases]
        fits += [letters, sweep, health]
    return fits
