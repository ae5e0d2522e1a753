"""One run: start the system, drive the load while a scenario's faults come in cycles, wait
until the system is quiet, and check."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from faults.check import Result, check, recoveries
from faults.cluster import System
from faults.driver import Driver, Load, Publish
from faults.records import Fault, Records

__all__ = ["Run", "Scenario", "run_scenario", "slug"]

WARMUP = 1.5  # seconds of load before the first fault
SETTLE = 1.0  # seconds to keep reading after the last expected call, for late duplicates


@dataclass
class Run:
    """What a scenario's step works with: the system, the faults done so far, a seeded RNG."""

    system: System
    rng: random.Random
    scenario: Scenario
    disk: Path | None = None  # the tmpfs the store is on, for the disk-full scenario
    faults: list[Fault] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)

    def fault(self, kind: str, target: str) -> Fault:
        done = Fault(kind, target, time.time())
        self.faults.append(done)
        return done

    async def restart_node(self, i: int, fault: Fault) -> None:
        fault.restored = time.time()
        await asyncio.to_thread(self.system.start_node, i)

    async def restart_worker(self, j: int, fault: Fault) -> None:
        fault.restored = time.time()
        fault.pid = await asyncio.to_thread(self.system.start_worker, j)

    async def revive(self) -> None:
        """Restart what exited though no fault took it down (and say so in the result)."""
        for i in range(len(self.system.nodes)):
            proc = self.system.nodes[i].proc
            name = self.system.node_name(i)
            if proc is not None and not proc.alive() and name not in self.system.down:
                self.exits.append(f"{name} exited {proc.popen.returncode} at {time.time():.3f}")
                await asyncio.to_thread(self.system.start_node, i)
        for j, worker in enumerate(self.system.workers):
            if worker is not None and not worker.alive() and f"worker {j}" not in self.system.down:
                self.exits.append(f"worker {j} exited {worker.popen.returncode}")
                await asyncio.to_thread(self.system.start_worker, j)


Step = Callable[[Run, int], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """A kind of run.

    Attributes:
        name: its name in the table.
        title: what it does, in a few words.
        step: the fault of one cycle (it also undoes it).
        cycles: how many cycles.
        every: seconds of load between two cycles (a random value in the range).
        store: ``sqlite``, ``postgres`` (a schema of its own) or ``tmpfs`` (SQLite on a small
            tmpfs that can be filled).
        nodes: serve processes.
        workers: worker processes.
        load: the publishing load.
        fan_out: every publish goes to every node at once.
        quiet: seconds to wait, past the last due time, for acknowledged events to be handled.
        pause: seconds a SIGSTOP lasts (of serve; of a worker, half of it), or the disk
            stays full.
        control: the negative control: its run must report loss.
        serve_args: extra ``conveyor serve`` options.
    """

    name: str
    title: str
    step: Step
    cycles: int
    every: tuple[float, float] = (2.0, 4.0)
    store: str = "sqlite"
    nodes: int = 1
    workers: int = 2
    load: Load = field(default_factory=Load)
    fan_out: bool = False
    quiet: float = 30.0
    pause: float = 16.0
    control: bool = False
    serve_args: tuple[str, ...] = ()


async def run_scenario(
    scenario: Scenario, tmp: Path, store: str, *, seed: int, disk: Path | None = None
) -> Result:
    """Run ``scenario`` on ``store`` (logs and the journal in ``tmp``) and check it."""
    began = time.monotonic()
    system = System(
        tmp, store, nodes=scenario.nodes, workers=scenario.workers, serve_args=scenario.serve_args
    )
    run = Run(system, random.Random(seed), scenario, disk)
    result = Result(scenario.name, cycles=scenario.cycles)
    try:
        await asyncio.to_thread(system.start)
        driver = Driver(
            system.urls,
            scenario.load,
            run=f"{slug(scenario.name)}-{seed}",
            seed=seed,
            fan_out=scenario.fan_out,
        )
        await _drive(run, driver)
        await run.revive()
        records = Records(system.record)
        await _quiet(records, driver.journal, scenario.quiet)
        check(result, driver.journal, records.calls)
        recoveries(result, run.faults, driver.journal, records.calls)
        result.unexpected_exits = run.exits
        _dump(tmp, driver.journal, run.faults)
    finally:
        await asyncio.to_thread(system.close)
    result.seconds = time.monotonic() - began
    return result


def slug(name: str) -> str:
    """``name`` with only letters, digits and dashes (for idempotency keys and paths)."""
    return "-".join(re.findall(r"[A-Za-z0-9]+", name))


async def _drive(run: Run, driver: Driver) -> None:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(driver.drive(stop))
        try:
            await asyncio.sleep(WARMUP)
            for cycle in range(run.scenario.cycles):
                await run.scenario.step(run, cycle)
                await run.revive()
                await asyncio.sleep(run.rng.uniform(*run.scenario.every))
        finally:
            stop.set()


async def _quiet(records: Records, journal: list[Publish], quiet: float) -> None:
    """Wait until every acknowledged publish was handled, or ``quiet`` seconds past the last
    due time (and now)."""
    due = max((p.deliver_at_ms / 1000 for p in journal if p.deliver_at_ms), default=0.0)
    deadline = max(time.time(), due) + quiet
    acked = {p.idem for p in journal if p.acked}
    while time.time() < deadline:
        records.read()
        if acked <= records.handled:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(SETTLE)
    records.read()


def _dump(tmp: Path, journal: list[Publish], faults: list[Fault]) -> None:
    """The journal and the faults, for a look after the run."""
    with open(tmp / "journal.jsonl", "w") as f:
        for p in journal:
            f.write(json.dumps(p.to_json(), default=sorted) + "\n")
    (tmp / "faults.json").write_text(json.dumps([asdict(x) for x in faults], indent=1))
