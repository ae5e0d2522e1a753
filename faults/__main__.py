"""``python -m faults``: run the fault suite, print its table, optionally write it to a doc.

Usage::

    python -m faults [--short] [--scenario NAME]... [--cycles N] [--postgres URL]
                     [--keep DIR] [--write-doc docs/reliability.md]

Exits 1 when a run finds a failure or the negative control reports no loss (a skipped
scenario does not fail the suite; its line says why).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.drain import machine, write_doc

from faults.check import Result
from faults.report import details, passed, table
from faults.runner import Scenario, slug
from faults.scenarios import LONG, SHORT, by_name
from faults.suite import run_in_tmpfs, run_one, save_result

POSTGRES_ENV = "CONVEYOR_FAULTS_POSTGRES"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the short suite (make test's)")
    parser.add_argument("--scenario", action="append", help="run only this one (repeatable)")
    parser.add_argument("--cycles", type=int, help="cycles of every scenario but the control")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV),
        help=f"a PostgreSQL server URL for the two-node run (default ${POSTGRES_ENV})",
    )
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", type=Path, help="keep logs and journals in this directory")
    parser.add_argument("--write-doc", type=Path, help="rewrite the table's section of this doc")
    parser.add_argument("--inside-namespace", type=Path, help=argparse.SUPPRESS)
    return parser


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    suite = SHORT if args.short else LONG
    chosen = [by_name(suite, n) for n in args.scenario] if args.scenario else suite
    if args.cycles is not None:
        chosen = [s if s.control else dataclasses.replace(s, cycles=args.cycles) for s in chosen]
    return chosen


async def _run_all(args: argparse.Namespace, root: Path) -> list[tuple[Scenario, Result]]:
    runs = []
    for n, scenario in enumerate(_scenarios(args)):
        print(f"{datetime.now(UTC):%H:%M:%S} {scenario.name}: {scenario.title} ...", flush=True)
        tmp = root / f"{n}-{slug(scenario.name)}"
        tmp.mkdir(parents=True)
        result = await run_one(
            scenario, tmp, seed=args.seed + n, postgres=args.postgres, short=args.short
        )
        print(table([(scenario, result)]).splitlines()[-1], flush=True)
        runs.append((scenario, result))
    return runs


def _document(args: argparse.Namespace, runs: list[tuple[Scenario, Result]], began: str) -> str:
    # The command as run, but for what names this machine (a server URL, a directory).
    command = ["python", "-m", "faults", *(["--short"] if args.short else [])]
    command += [f"--scenario={name}" for name in args.scenario or ()]
    command += [f"--cycles={args.cycles}"] if args.cycles is not None else []
    command += ["--postgres=URL"] if args.postgres else []
    return (
        f"Run {began} on {machine()}; `{shlex.join(command)}`, seed {args.seed}, "
        f"{sum(r.seconds for _, r in runs) / 60:.1f} min.\n\n"
        f"{table(runs)}\n\n{details(runs, examples=2)}"
    )


def main() -> None:
    args = _parser().parse_args()
    if args.inside_namespace is not None:  # the disk-full child, in its mount namespace
        (scenario,) = _scenarios(args)
        result = asyncio.run(run_in_tmpfs(scenario, args.inside_namespace, seed=args.seed))
        save_result(result, args.inside_namespace / "result.json")
        return
    began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    root = args.keep or Path(tempfile.mkdtemp(prefix="conveyor-faults-"))
    try:
        runs = asyncio.run(_run_all(args, root))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    text = _document(args, runs, began)
    print("\n" + text)
    if args.write_doc:
        write_doc(args.write_doc, text, "faults")
    sys.exit(0 if all(passed(s, r) for s, r in runs) else 1)


if __name__ == "__main__":
    main()
