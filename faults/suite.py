"""Running scenarios on their stores: a SQLite file, a PostgreSQL schema of their own, or
SQLite on a tmpfs mounted in a private mount namespace (a child process, so that the mount
goes away with it whatever happens)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import psycopg

from faults.check import Result
from faults.disk import mount_tmpfs, unmount, unshare_command
from faults.pg import own_schema
from faults.runner import Scenario, run_scenario

__all__ = ["TMPFS_SIZE", "load_result", "run_in_tmpfs", "run_one", "save_result"]

TMPFS_SIZE = "64m"
NAMESPACE_TIMEOUT = 600.0  # seconds the disk-full child may take, at most


async def run_one(
    scenario: Scenario, tmp: Path, *, seed: int, postgres: str | None, short: bool
) -> Result:
    """Run ``scenario`` in ``tmp`` on the store it asks for; a skipped result when that
    store cannot be had here (with the reason)."""
    if scenario.store == "sqlite":
        return await run_scenario(scenario, tmp, str(tmp / "conveyor.db"), seed=seed)
    if scenario.store == "postgres":
        if postgres is None:
            return Result(scenario.name, skipped="no PostgreSQL (give --postgres URL)")
        with contextlib.ExitStack() as stack:
            try:
                url = stack.enter_context(own_schema(postgres))
            except psycopg.Error as e:
                return Result(scenario.name, skipped=f"PostgreSQL at {postgres}: {e}")
            return await run_scenario(scenario, tmp, url, seed=seed)
    unshare = unshare_command()
    if unshare is not None:
        return await asyncio.to_thread(_in_namespace, unshare, scenario, tmp, seed, short)
    return await run_in_tmpfs(scenario, tmp, seed=seed)


async def run_in_tmpfs(scenario: Scenario, tmp: Path, *, seed: int) -> Result:
    """Run ``scenario`` with its SQLite store on a tmpfs mounted here for the run."""
    disk = tmp / "disk"
    why = mount_tmpfs(disk, TMPFS_SIZE)
    if why is not None:
        return Result(scenario.name, skipped=f"cannot mount a tmpfs here ({why})")
    try:
        return await run_scenario(scenario, tmp, str(disk / "conveyor.db"), seed=seed, disk=disk)
    finally:
        unmount(disk)


def _in_namespace(
    unshare: list[str], scenario: Scenario, tmp: Path, seed: int, short: bool
) -> Result:
    """Run ``scenario`` in a child process in a private mount namespace (``unshare -m``):
    ``python -m faults --inside-namespace``, which mounts the tmpfs and writes its result."""
    out = tmp / "result.json"
    out.unlink(missing_ok=True)
    command = [
        *unshare,
        *(sys.executable, "-m", "faults", "--inside-namespace", str(tmp)),
        *("--scenario", scenario.name, "--seed", str(seed), "--cycles", str(scenario.cycles)),
        *(["--short"] if short else []),
    ]
    done = subprocess.run(command, check=False, timeout=NAMESPACE_TIMEOUT)
    if not out.exists():
        return Result(scenario.name, skipped=f"the namespaced run exited {done.returncode}")
    return load_result(out)


def save_result(result: Result, path: Path) -> None:
    path.write_text(json.dumps(dataclasses.asdict(result)))


def load_result(path: Path) -> Result:
    return Result(**json.loads(path.read_text()))
