"""Conveyor against Celery, Dramatiq and taskiq: one workload, one run, A B A B.

Each round runs every case through Conveyor (A, :mod:`bench.peers.conveyor_side`), then through
every peer (B, :mod:`bench.peers.celery_peer`, ``dramatiq_peer``, ``taskiq_peer``, in
``.venv-peers``) on a fresh throwaway ``redis-server`` per run, once without persistence and once
with ``appendonly yes`` + ``appendfsync everysec``. Two rounds, so the noisy machine hits both
sides alike; a figure is the median of the rounds.

Cases: (a) N no-op tasks (20,000 and 100,000), one producer, two worker processes: enqueue
rate, drain rate (N / (last task run - first enqueue)), total time, losses and duplicates
counted from the ids the tasks noted; (b) 2,000 tasks delayed by 2 s, sent at up to 1,000/s:
lateness p50/p99/max (task entry - (send time + 2 s)); (c) single tasks sent at a steady
1,000/s for 10 s: publish→handler latency p50/p99/max (task entry - send time), losses and
duplicates. The report prints Conveyor ÷ the best peer for each figure (for a time, lower is
better: below 1, Conveyor is ahead) and checks the bars of issue 7.

Usage: ``python -m bench.peers.compare [--quick] [--write-doc docs/benchmarks.md]``
(``make bench-peers``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.drain import ROOT, machine, write_doc
from bench.peers import conveyor_side
from bench.peers.common import BROKER_ENV
from bench.peers.conveyor_side import Workload
from bench.peers.redis_server import RedisServer, redis_server_path
from bench.timers import percentile

SECTION = "peers"
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEERS = ("celery", "dramatiq", "taskiq")
MODES = {"memory": False, "aof": True}
MODE_NAMES = {"memory": "no persistence", "aof": "AOF everysec"}
NAMES = {"celery": "Celery", "dramatiq": "Dramatiq", "taskiq": "taskiq"}
FULL = Workload((20_000, 100_000), 2000, 2.0, 1000.0, 1000, 10.0)
QUICK = Workload((1_000, 3_000), 300, 2.0, 1000.0, 1000, 3.0)
BARS = {"drain_ratio": 10.0, "drain_rate": 40_000.0, "latency_p99": 25.0, "delayed_p99": 20.0}

Results = dict[str, dict[str, list[dict[str, object]]]]
"""system ("conveyor", "celery/memory", ...) -> case -> one figures dict per round."""


@dataclass
class Run:
    """What the comparison measured, and how."""

    work: Workload
    rounds: int
    peers: Sequence[str]
    results: Results = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    command: str = ""

    def add(self, system: str, case: str, figures: dict[str, object]) -> None:
        self.results.setdefault(system, {}).setdefault(case, []).append(figures)
        name = system.partition("/")[0]
        self.configs.setdefault(name, str(figures.get("config", "")))
        if "versions" in figures:
            self.versions.setdefault(name, str(figures["versions"]))


def cases(work: Workload) -> list[tuple[str, list[str]]]:
    """Each case's name and its arguments to a peer's module."""
    out = [(f"drain {n}", ["--case", "drain", "--tasks", str(n)]) for n in work.drains]
    delayed = ["--case", "delayed", "--tasks", str(work.delayed_tasks)]
    delayed += ["--delay", str(work.delay), "--rate", str(work.delayed_rate)]
    latency = ["--case", "latency", "--tasks", str(int(work.latency_rate * work.latency_seconds))]
    latency += ["--rate", str(work.latency_rate)]
    return [*out, ("delayed", delayed), ("latency", latency)]


def peer_run(peer: str, args: list[str], appendonly: bool) -> tuple[dict[str, object], str]:
    """One case through one peer on a fresh Redis; (figures, Redis version)."""
    with RedisServer(appendonly=appendonly) as redis, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "result.json")
        proc = subprocess.run(
            [str(PEERS_PYTHON), "-m", f"bench.peers.{peer}_peer", *args, "--out", str(out)],
            cwd=ROOT,
            env={**os.environ, BROKER_ENV: redis.url, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip()[-600:])
        return json.loads(out.read_text()), redis.version()


def why_not_peers() -> str:
    """Why the peers cannot run here, or ``""``."""
    if redis_server_path() is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if not (ROOT / ".venv-peers" / ".installed").exists():
        return ".venv-peers is missing (make bench-peers-venv)"
    return ""


def measure(run: Run, say: Callable[[str], None]) -> None:
    """Every round: A (Conveyor, all cases), then B (every peer, both Redis modes)."""
    blocked = why_not_peers()
    for number in range(1, run.rounds + 1):
        say(f"round {number}: Conveyor")
        for case, figures in conveyor_side.run_round(run.work).items():
            run.add("conveyor", case, figures)
        for mode, appendonly in MODES.items():
            for peer in run.peers:
                system = f"{peer}/{mode}"
                if blocked:
                    run.skipped[system] = blocked
                    continue
                for case, args in cases(run.work):
                    say(f"round {number}: {peer}, Redis {MODE_NAMES[mode]}, {case}")
                    try:
                        figures, redis_version = peer_run(peer, args, appendonly)
                    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
                        run.skipped[system] = f"{case} failed: {e}"[:400]
                        say(f"  failed: {e}")
                        continue
                    run.versions["redis"] = f"Redis {redis_version}"
                    run.add(system, case, figures)
    run.versions.setdefault("conveyor", conveyor_side.versions())


# -- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One row of the report: how to read it from a case's rounds, and which way is better."""

    case: str
    name: str
    read: Callable[[list[dict[str, object]]], float]
    higher_is_better: bool | None  # None: a count, no ratio
    fmt: str = "{:,.0f}"


def _median(
    key: Callable[[dict[str, object]], float],
) -> Callable[[list[dict[str, object]]], float]:
    return lambda rounds: statistics.median(key(r) for r in rounds)


def _rate(seconds: str) -> Callable[[dict[str, object]], float]:
    return lambda r: float(r["tasks"]) / max(1e-9, float(r[seconds]))  # type: ignore[arg-type]


def _total(key: str) -> Callable[[list[dict[str, object]]], float]:
    return lambda rounds: float(sum(int(r[key]) for r in rounds))  # type: ignore[call-overload]


def _lateness(q: float) -> Callable[[list[dict[str, object]]], float]:
    def read(rounds: list[dict[str, object]]) -> float:
        values = []
        for r in rounds:
            lat = sorted(float(x) for x in r["lateness"])  # type: ignore[attr-defined]
            values.append(percentile(lat, q) * 1000 if q < 1 else lat[-1] * 1000)
        return statistics.median(values)

    return read


def figures(work: Workload) -> list[Figure]:
    """The report's rows, in order."""
    rows: list[Figure] = []
    for n in work.drains:
        case = f"drain {n}"
        rows += [
            Figure(
                case, f"{n:,} no-op: enqueue rate (/s)", _median(_rate("enqueue_seconds")), True
            ),
            Figure(case, f"{n:,} no-op: drain rate (/s)", _median(_rate("drain_seconds")), True),
            Figure(
                case,
                f"{n:,} no-op: total time (s)",
                _median(lambda r: float(r["drain_seconds"])),  # type: ignore[arg-type]
                False,
                "{:,.2f}",
            ),
            Figure(case, f"{n:,} no-op: lost, all rounds", _total("lost"), None),
            Figure(case, f"{n:,} no-op: duplicates, all rounds", _total("duplicates"), None),
        ]
    d = f"{work.delayed_tasks:,} delayed {work.delay:g} s"
    rows += [
        Figure("delayed", f"{d}: send rate reached (/s)", _median(_rate("enqueue_seconds")), None),
        Figure("delayed", f"{d}: lateness p50 (ms)", _lateness(0.5), False, "{:,.1f}"),
        Figure("delayed", f"{d}: lateness p99 (ms)", _lateness(0.99), False, "{:,.1f}"),
        Figure("delayed", f"{d}: lateness max (ms)", _lateness(1.0), False, "{:,.1f}"),
        Figure("delayed", f"{d}: lost, all rounds", _total("lost"), None),
        Figure("delayed", f"{d}: early, all rounds", _early, None),
    ]
    lat = f"publish→handler latency at a steady {work.latency_rate:,}/s"
    sent = _median(_rate("enqueue_seconds"))
    rows += [
        Figure("latency", f"{lat}: send rate reached (/s)", sent, None),
        Figure("latency", f"{lat}, p50 (ms)", _lateness(0.5), False, "{:,.1f}"),
        Figure("latency", f"{lat}, p99 (ms)", _lateness(0.99), False, "{:,.1f}"),
        Figure("latency", f"{lat}, max (ms)", _lateness(1.0), False, "{:,.1f}"),
        Figure("latency", f"{lat}: lost, all rounds", _total("lost"), None),
        Figure("latency", f"{lat}: duplicates, all rounds", _total("duplicates"), None),
    ]
    return rows


def _early(rounds: list[dict[str, object]]) -> float:
    late: list[list[float]] = [r["lateness"] for r in rounds]  # type: ignore[misc]
    return float(sum(sum(1 for x in lat if x < 0) for lat in late))


def value(run: Run, system: str, f: Figure) -> float | None:
    rounds = run.results.get(system, {}).get(f.case)
    return f.read(rounds) if rounds else None


def best_peer(run: Run, f: Figure, modes: Sequence[str]) -> tuple[float, str] | None:
    """The best peer's value of a figure over ``modes``, and which peer it is."""
    found = [
        (v, f"{peer}/{mode}")
        for peer in run.peers
        for mode in modes
        if (v := value(run, f"{peer}/{mode}", f)) is not None
    ]
    if not found or f.higher_is_better is None:
        return None
    return max(found) if f.higher_is_better else min(found)


def ratio(run: Run, f: Figure, modes: Sequence[str]) -> str:
    conveyor = value(run, "conveyor", f)
    best = best_peer(run, f, modes)
    if conveyor is None or best is None or best[0] == 0:
        return "—"
    return f"{conveyor / best[0]:,.2f}"


def _cell(v: float | None, fmt: str) -> str:
    return "—" if v is None else fmt.format(v)


def table(run: Run, when: str) -> str:
    """The report: machine, versions, configurations, the figures with ratios, the bars."""
    systems = ["conveyor"] + [f"{p}/{m}" for m in MODES for p in run.peers]
    heads = ["Conveyor"] + [f"{NAMES[p]}, {MODE_NAMES[m]}" for m in MODES for p in run.peers]
    heads += [f"Conveyor ÷ best peer, {MODE_NAMES[m]}" for m in MODES]
    lines = [
        f"Machine: {machine()}",
        f"Run: {when}, {run.seconds / 60:.0f} min, `{run.command}`; "
        + ("one round, A B" if run.rounds == 1 else f"{run.rounds} rounds, A B A B")
        + " (A: Conveyor, B: the peers); each figure is the median of the rounds.",
        "",
        "Versions: " + "; ".join(run.versions[k] for k in sorted(run.versions)) + ".",
        "",
    ]
    lines += [f"* {name}: {config}" for name, config in sorted(run.configs.items())]
    lines += [f"* skipped {system}: {why}" for system, why in sorted(run.skipped.items())]
    lines += ["", "| figure | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for f in figures(run.work):
        cells = [_cell(value(run, s, f), f.fmt) for s in systems]
        cells += [ratio(run, f, [m]) for m in MODES]
        lines.append(f"| {f.name} | " + " | ".join(cells) + " |")
    lines += ["", *bars(run)]
    return "\n".join(lines)


def bars(run: Run) -> list[str]:
    """Issue 7's bars, each met or missed by how much."""
    work = run.work
    drain = Figure(f"drain {max(work.drains)}", "", _median(_rate("drain_seconds")), True)
    conveyor = value(run, "conveyor", drain) or 0.0
    best = best_peer(run, drain, list(MODES))
    out = ["| bar | measured | verdict |", "|---|---|---|"]
    if best is not None:
        need = max(BARS["drain_ratio"] * best[0], BARS["drain_rate"])
        out.append(
            f"| drain rate ({max(work.drains):,} tasks) ≥ 10x the best peer's ({best[1]}: "
            f"{best[0]:,.0f}/s) and ≥ 40,000/s, durable acks | {conveyor:,.0f}/s "
            f"({conveyor / best[0]:,.1f}x) | {_verdict(conveyor, need, True)} |"
        )
    latency = _conveyor_lateness(run, "latency", 0.99)
    out.append(
        f"| p99 publish→handler latency at a steady {work.latency_rate:,}/s < 25 ms "
        f"| {latency:.1f} ms | {_verdict(latency, BARS['latency_p99'], False)} |"
    )
    delayed = _conveyor_lateness(run, "delayed", 0.99)
    out.append(
        f"| delayed p99 lateness ≤ 20 ms | {delayed:.1f} ms "
        f"| {_verdict(delayed, BARS['delayed_p99'], False)} |"
    )
    return out


def _conveyor_lateness(run: Run, case: str, q: float) -> float:
    rounds = run.results.get("conveyor", {}).get(case, [])
    return _lateness(q)(rounds) if rounds else float("nan")


def _verdict(measured: float, bar: float, higher_is_better: bool) -> str:
    met = measured >= bar if higher_is_better else measured <= bar
    if met:
        return "met"
    gap = (bar - measured) / bar if higher_is_better else (measured - bar) / bar
    return f"missed by {gap:.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (~3 min)")
    parser.add_argument("--rounds", type=int, help="rounds A B (default: 2, or 1 with --quick)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    parser.add_argument("--write-doc", type=Path)
    parser.add_argument("--keep", type=Path, help="write the run, raw figures included (JSON)")
    parser.add_argument("--render", type=Path, help="measure nothing: report a --keep file")
    args = parser.parse_args()
    if args.render:
        kept = json.loads(args.render.read_text())
        when = kept.pop("when", "unknown")
        run = Run(**{**kept, "work": Workload(**kept["work"])})
        text = table(run, when)
        print(text)
        if args.write_doc:
            write_doc(args.write_doc, text, SECTION)
        return
    peers = [p for p in args.peers.split(",") if p]
    if unknown := set(peers) - set(PEERS):
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    rounds = args.rounds or (1 if args.quick else 2)
    run = Run(QUICK if args.quick else FULL, rounds, peers)
    run.command = "python -m bench.peers.compare" + (" --quick" if args.quick else "")
    began = time.perf_counter()
    measure(run, lambda line: print(line, flush=True))
    run.seconds = time.perf_counter() - began
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = table(run, when)
    print(text)
    if args.keep:
        args.keep.write_text(json.dumps({**dataclasses.asdict(run), "when": when}))
    if args.write_doc:
        write_doc(args.write_doc, text, SECTION)


if __name__ == "__main__":
    main()
