"""The scenarios: the faults of one cycle, and the long and short suites made of them."""

from __future__ import annotations

import asyncio
import signal
import time

from faults.disk import BALLAST, fill
from faults.driver import Load
from faults.runner import Run, Scenario

__all__ = ["LONG", "SHORT", "by_name"]

DOWN = (0.2, 1.0)  # seconds a killed process stays down
DISK_LEAVE = 256 * 1024  # bytes left free by the ballast
LEASE_TTL = "3"  # --lease-ttl of the PostgreSQL nodes: a dead node's partitions move fast


async def kill_serve(run: Run, cycle: int) -> None:
    """kill -9 a serve node (each in turn) and restart it; every third cycle, first kill -9
    a worker (each in turn) while the node is up, and restart it."""
    system = run.system
    if cycle % 3 == 1:
        j = (cycle // 3) % len(system.workers)
        fault = run.fault("kill -9", f"worker {j}")
        system.kill9_worker(j)
        await asyncio.sleep(run.rng.uniform(*DOWN))
        await run.restart_worker(j, fault)
        await asyncio.sleep(run.rng.uniform(1.0, 2.0))
    i = cycle % len(system.nodes)
    fault = run.fault("kill -9", system.node_name(i))
    system.kill9_node(i)
    await asyncio.sleep(run.rng.uniform(*DOWN))
    await run.restart_node(i, fault)


async def wipe_store(run: Run, cycle: int) -> None:
    """The negative control: at the last cycle, kill -9 serve and the workers, delete the
    store's files, and start them all again (the workers create the topic and subscription
    again); the other cycles are plain kill -9 cycles."""
    if cycle < run.scenario.cycles - 1:
        await kill_serve(run, cycle)
        return
    system = run.system
    fault = run.fault("kill -9 + wipe", system.node_name(0))
    system.kill9_node(0)
    for j in range(len(system.workers)):
        system.kill9_worker(j)
    system.wipe_store()
    await run.restart_node(0, fault)
    for j in range(len(system.workers)):
        await asyncio.to_thread(system.start_worker, j)


async def sigstop(run: Run, cycle: int) -> None:
    """SIGSTOP serve for ``pause`` seconds (even cycles) or a worker for half of it (odd
    cycles), then SIGCONT."""
    system = run.system
    if cycle % 2 == 0:
        fault = run.fault("SIGSTOP", system.node_name(0))
        system.signal_node(0, signal.SIGSTOP)
        await asyncio.sleep(run.scenario.pause)
        fault.restored = time.time()
        system.signal_node(0, signal.SIGCONT)
        return
    j = (cycle // 2) % len(system.workers)
    fault = run.fault("SIGSTOP", f"worker {j}")
    system.signal_worker(j, signal.SIGSTOP)
    await asyncio.sleep(run.scenario.pause / 2)
    fault.restored = time.time()
    fault.pid = system.worker_proc(j).popen.pid
    system.signal_worker(j, signal.SIGCONT)


async def disk_full(run: Run, cycle: int) -> None:
    """Fill the store's disk but for ``DISK_LEAVE`` bytes, keep it full for ``pause``
    seconds while the load goes on, then free it."""
    if run.disk is None:
        raise RuntimeError("the disk-full scenario needs its tmpfs")
    fault = run.fault("disk full", "store")
    await asyncio.to_thread(fill, run.disk, DISK_LEAVE)
    await asyncio.sleep(run.scenario.pause)
    fault.restored = time.time()
    (run.disk / BALLAST).unlink()


def _suite(short: bool) -> list[Scenario]:
    load = Load(keys=32) if short else Load()
    return [
        Scenario(
            "sqlite kill -9",
            "kill -9 of serve every cycle, of a worker every third (SQLite)",
            kill_serve,
            cycles=3 if short else 40,
            every=(1.0, 2.0) if short else (3.0, 5.0),
            load=load,
            quiet=20.0,
        ),
        Scenario(
            "sqlite SIGSTOP",
            "SIGSTOP of serve, then of a worker, then SIGCONT (SQLite)",
            sigstop,
            cycles=2 if short else 6,
            pause=8.0 if short else 16.0,
            load=load,
            quiet=20.0,
        ),
        Scenario(
            "disk full",
            "SQLite on a 64 MiB tmpfs filled but for 256 KiB for a while, then freed",
            disk_full,
            cycles=1 if short else 3,
            pause=5.0 if short else 8.0,
            store="tmpfs",
            load=Load(keys=load.keys, pad=512),
            quiet=20.0,
        ),
        Scenario(
            "postgres 2 nodes",
            "two serve on one PostgreSQL schema, every publish sent to both at once, "
            "kill -9 of a node every cycle",
            kill_serve,
            cycles=2 if short else 20,
            every=(1.5, 2.5) if short else (3.0, 5.0),
            store="postgres",
            nodes=2,
            load=load,
            fan_out=True,
            quiet=20.0,
            serve_args=("--lease-ttl", LEASE_TTL),
        ),
        Scenario(
            "control: store wiped",
            "negative control: the SQLite store deleted at the last kill -9; must report loss",
            wipe_store,
            cycles=1 if short else 2,
            every=(1.0, 2.0),
            load=load,
            quiet=5.0,
            control=True,
        ),
    ]


SHORT = _suite(short=True)
LONG = _suite(short=False)


def by_name(suite: list[Scenario], name: str) -> Scenario:
    """The scenario of ``suite`` called ``name``.

    Raises:
        KeyError: there is none.
    """
    for scenario in suite:
        if scenario.name == name:
            return scenario
    raise KeyError(name)
