"""Where Conveyor's time goes per event: py-spy profiles of ``conveyor serve`` and the worker.

Starts a real ``conveyor serve`` (SQLite, ``synchronous=FULL``) and a real ``conveyor worker``
running :mod:`bench.timer_lambdas` (:class:`bench.timers.Platform`, as ``bench.peers.compare``
does), warms them up, then attaches ``py-spy record --nonblocking`` (no pause of the target:
it costs the target nothing but a little accuracy) to both processes and drives one load:

* ``--load drain``: N events published in batches of 1,000, 4 requests in flight, drained by
  the worker (the drain benchmark's load);
* ``--load steady``: single publishes at a steady ``--rate``/s (the latency benchmark's load);
* ``--load run-batch``: no processes, no py-spy: the worker's ``Lambda.run_batch`` timed in
  process on a 500-event push with a no-op handler, beside ``asyncio.gather`` of 500 no-op
  coroutines (what one Task per event costs) and the same coroutines awaited in a loop.

Each process's CPU time over the load (utime + stime of all its threads, from /proc) is split
by py-spy's samples into the stages of an event's path (see :data:`STAGES`), then divided by
the events: microseconds of CPU per event, per stage. A sample is put in the stage of the
innermost frame that a rule names, so a stage's time includes what it calls in libraries
(aiohttp, msgspec, sqlite3); frames no rule names (the event loop itself, aiohttp's protocol
callbacks) fall in "event loop + HTTP I/O".

The writer thread's wall time (``--idle`` samples, which include its waits for fsync) is
reported apart: it is the one serial resource of the store. The time in the cyclic garbage
collector, which py-spy cannot see (it is C code inside whatever Python line allocated), is
timed by a ``gc.callbacks`` probe that a ``sitecustomize`` module on the processes'
``PYTHONPATH`` installs (:data:`GC_PROBE`).

Usage: ``python -m bench.profile [--load drain|steady|run-batch] [--events 200000] [--rate 1000]
[--keep DIR] [--write-doc docs/performance.md]``. Needs ``py-spy`` (``.venv-peers``, from
``make bench-peers-venv``, or on PATH) and ptrace rights over the processes it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import msgspec

from bench.drain import ROOT, machine, publish_all, steady, write_doc
from bench.peers.conveyor_side import versions
from bench.timers import Platform
from conveyor import EventContext, Lambda
from conveyor.wire.push import PushEvent, PushRequest

SAMPLE_RATE = 500  # samples per second per process (each py-spy costs CPU too)
# (stage, (file fragment, function or "" for any)): the innermost frame that matches decides.
STAGES: dict[str, list[tuple[str, str]]] = {
    "serve: publish (HTTP handler, decode, validation, ids)": [
        ("conveyor/api/routes.py", "publish"),
        ("conveyor/api/routes.py", "publish_batch"),
        ("conveyor/frontend/", ""),
        ("conveyor/_ids.py", ""),
    ],
    "serve: store, publish part (rows, offsets, INSERT)": [
        ("conveyor/store/sql/_log.py", "_publish"),
        ("conveyor/store/sql/_core.py", "_write_appends"),
        ("conveyor/store/sql/_log.py", "_remember_offsets"),
        ("conveyor/store/sqlite.py", "_write_log"),
    ],
    "serve: store, ack part (cursors, rows)": [
        ("conveyor/store/sql/_progress.py", "_commit_progress"),
        ("conveyor/store/sql/_progress.py", "_check_epochs"),
    ],
    "serve: store, BEGIN/COMMIT and group commit": [
        ("conveyor/store/sql/_core.py", "_run_batch"),
        ("conveyor/store/sql/_core.py", "_execute_batch"),
        ("conveyor/store/base.py", ""),
    ],
    "serve: dispatch (runner: take, admit, settle, progress)": [
        ("conveyor/flow/", ""),
        ("conveyor/scheduler/", ""),
    ],
    "serve: push (encode, HTTP client, decode answers)": [
        ("conveyor/delivery/", ""),
        ("aiohttp/client", ""),
        ("aiohttp/connector.py", ""),
    ],
    "serve: metrics": [("prometheus_client/", ""), ("conveyor/metrics.py", "")],
    "worker: push handler (decode request, encode answer)": [
        ("conveyor/execution/_server.py", ""),
    ],
    "worker: run_batch (a task per event, gate, handler call)": [
        ("conveyor/execution/app.py", ""),
        ("conveyor/execution/_handler.py", ""),
        ("conveyor/execution/context.py", ""),
        ("conveyor/execution/_payload.py", ""),
    ],
    "worker: the handler itself": [("bench/timer_lambdas.py", "")],
}
OTHER = "event loop + HTTP I/O (aiohttp protocol, uvloop)"


def _named(frame: str, function: str) -> bool:
    """Whether a py-spy frame (``Class.method (package/file.py:line)``) is ``function``."""
    name = frame.split(" (", 1)[0]
    return name == function or name.endswith("." + function)


def _stage(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for stage, rules in STAGES.items():
            for fragment, function in rules:
                if fragment in frame and (not function or _named(frame, function)):
                    return stage
    return OTHER


def _root(root: str) -> tuple[int, str]:
    """The thread id and name in py-spy's ``thread (tid): name`` root frame."""
    head, _, name = root.partition("): ")
    return int(head.rpartition("(")[2]), name


def _bookkeeping(thread: str) -> bool:
    """The benchmark's own threads: bench.timer_lambdas' record writer, the GC probe's."""
    return "(_writer)" in thread or "(_gc_probe_dump)" in thread


GC_PROBE = """\
# Written by bench.profile into a temporary folder put first on PYTHONPATH: times every
# collection of the cyclic garbage collector (gc.callbacks) in this process.
import gc, json, os, threading, time

_totals = [0.0, 0.0, 0.0]  # seconds in collections of generation 0, 1, 2
_began = [0.0]


def _gc_probe(phase, info):
    if phase == "start":
        _began[0] = time.perf_counter()
    else:
        _totals[info["generation"]] += time.perf_counter() - _began[0]


def _gc_probe_dump(path):
    while True:
        time.sleep(0.05)
        with open(path + ".tmp", "w") as f:
            json.dump(_totals, f)
        os.replace(path + ".tmp", path)


if os.environ.get("BENCH_GC_DIR"):
    gc.callbacks.append(_gc_probe)
    path = os.path.join(os.environ["BENCH_GC_DIR"], f"{os.getpid()}.json")
    threading.Thread(target=_gc_probe_dump, args=(path,), daemon=True).start()
"""


def _gc_seconds(folder: Path, pid: int) -> list[float]:
    """Seconds the process has spent in collections of each generation so far (its probe's
    file)."""
    try:
        return [float(x) for x in json.loads((folder / f"{pid}.json").read_text())]
    except (OSError, ValueError):
        return [float("nan")] * 3


@dataclass
class Profile:
    """One process over the load: each thread's CPU seconds and samples by stage."""

    gc_seconds: list[float] = field(default_factory=lambda: [0.0] * 3)  # by generation
    cpu: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    stages: dict[int, Counter[str]] = field(default_factory=dict)

    def per_event(self, events: int, process: str) -> dict[str, float]:
        """µs of CPU per event by stage: each thread's CPU split by its samples' stages (a
        stage of the other process, such as the worker's registration requests, is "other")."""
        out: dict[str, float] = {}
        for tid, seconds in self.cpu.items():
            if _bookkeeping(self.names.get(tid, "")):
                continue
            stages = self.stages.get(tid)
            total = sum(stages.values()) if stages else 0
            if not total or stages is None:
                unseen = "threads py-spy never saw running"
                out[unseen] = out.get(unseen, 0.0) + seconds / events * 1e6
                continue
            for stage, count in stages.items():
                name = stage if stage.startswith(f"{process}:") or stage == OTHER else OTHER
                out[name] = out.get(name, 0.0) + seconds * count / total / events * 1e6
        return out

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds by thread name (the benchmark's own thread included, named as such)."""
        return {self.names.get(tid, f"thread {tid}"): s for tid, s in self.cpu.items()}


def parse_raw(path: Path, profile: Profile) -> None:
    """py-spy's raw output with ``--threads``: ``thread (tid): name;frame;… count`` lines."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        tid, name = _root(frames[0])
        profile.names[tid] = name
        profile.stages.setdefault(tid, Counter())[_stage(frames[1:])] += int(count)


def thread_cpu(pid: int) -> dict[int, float]:
    """utime + stime of each thread of a process, in seconds."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def py_spy() -> str:
    found = ROOT / ".venv-peers" / "bin" / "py-spy"
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        raise SystemExit("py-spy not found: make bench-peers-venv (or pip install py-spy)")
    return on_path


def record(pid: int, out: Path, *, idle: bool) -> subprocess.Popen[bytes]:
    command = [py_spy(), "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE)]
    command += ["--format", "raw", "--threads", "--nonblocking", "--output", str(out)]
    if idle:
        command.append("--idle")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(f"{out}.log", "wb"))


def finish(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.kill()


@dataclass
class Result:
    load: str
    events: int
    seconds: float
    serve: Profile
    worker: Profile
    writer_wall: Counter[str]


async def _ran(platform: Platform, n: int, within: float) -> None:
    """Wait until the worker noted ``n`` more handler calls (its count file, every 50 ms)."""
    target = platform.seen + n
    for _ in range(int(within / 0.01)):
        if platform.count() >= target:
            return
        await asyncio.sleep(0.01)


async def _load(
    platform: Platform, session: aiohttp.ClientSession, load: str, n: int, rate: int
) -> int:
    """Drive the load until its last handler call; how many events it was."""
    if load == "drain":
        url = f"{platform.base}/v1/topics/probe/events/batch"
        await publish_all(session, [url], n, 1000, 4)
        n = n // 1000 * 1000
    else:
        await steady(session, f"{platform.base}/v1/topics/probe/events", rate, n / rate)
    await _ran(platform, n, 600)
    return n


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    return {tid: s - before.get(tid, 0.0) for tid, s in after.items()}


async def profile(load: str, events: int, rate: int, keep: Path | None) -> Result:
    with tempfile.TemporaryDirectory(prefix="conveyor-profile-") as tmp:
        d = Path(tmp)
        (d / "probe").mkdir()
        (d / "probe" / "sitecustomize.py").write_text(GC_PROBE)
        (d / "gc").mkdir()
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(d / "probe"), saved]))
        os.environ["BENCH_GC_DIR"] = str(d / "gc")
        try:
            platform = Platform(d)  # its processes inherit the probe
        finally:
            os.environ.pop("BENCH_GC_DIR")
            if saved is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = saved
        serve, worker = Profile(), Profile()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                await platform.start(session)
                await _load(platform, session, "drain", 20_000, rate)  # warm up
                await platform.collect(20_000, 60)
                assert platform.serve is not None
                assert platform.worker is not None
                pids = {"serve": platform.serve.pid, "worker": platform.worker.pid}
                spies = [record(pid, d / f"{name}.txt", idle=False) for name, pid in pids.items()]
                spies.append(record(pids["serve"], d / "serve-idle.txt", idle=True))
                await asyncio.sleep(1.0)  # py-spy attached
                before = {name: thread_cpu(pid) for name, pid in pids.items()}
                gc_before = {name: _gc_seconds(d / "gc", pid) for name, pid in pids.items()}
                began = time.perf_counter()
                done = await _load(platform, session, load, events, rate)
                seconds = time.perf_counter() - began
                serve.cpu = _cpu_delta(before["serve"], thread_cpu(pids["serve"]))
                worker.cpu = _cpu_delta(before["worker"], thread_cpu(pids["worker"]))
                await asyncio.sleep(0.1)  # the probes' files are 50 ms behind
                for name, p in (("serve", serve), ("worker", worker)):
                    gc_after = _gc_seconds(d / "gc", pids[name])
                    p.gc_seconds = [a - b for a, b in zip(gc_after, gc_before[name], strict=True)]
                for spy in spies:
                    finish(spy)
                await platform.collect(done, 60)  # the records, once the window is closed
        finally:
            platform.stop()
        parse_raw(d / "serve.txt", serve)
        parse_raw(d / "worker.txt", worker)
        writer_wall = _writer_wall(d / "serve-idle.txt")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("serve.txt", "worker.txt", "serve-idle.txt"):
                shutil.copy(d / name, keep / name)
    return Result(load, done, seconds, serve, worker, writer_wall)


def _writer_wall(path: Path) -> Counter[str]:
    """The writer thread's wall time by what it did (``--idle``: waits included)."""
    out: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "writer" not in _root(frames[0])[1]:
            continue
        out[_writer_activity(frames[1:])] += int(count)
    return out


WRITER_ACTIVITIES = {
    "_publish": "publish statements",
    "_write_appends": "publish statements",
    "_remember_keys": "publish statements",
    "_commit_progress": "ack/progress statements",
    "_check_epochs": "ack/progress statements",
}


def _writer_activity(frames: list[str]) -> str:
    # _run_batch runs BEGIN and COMMIT itself (through _x) and calls every operation.
    for frame in reversed(frames):
        for function, activity in WRITER_ACTIVITIES.items():
            if _named(frame, function):
                return activity
        if _named(frame, "_run_batch"):
            return "BEGIN/COMMIT (COMMIT = WAL write + fsync)"
    return "waiting for work"


def table(r: Result, when: str) -> str:
    rate = r.events / r.seconds
    what = (
        f"{r.events:,} events published in batches of 1,000, 4 requests in flight"
        if r.load == "drain"
        else f"{r.events:,} single publishes at a steady {rate:,.0f}/s"
    )
    lines = [
        f"Machine: {machine()}; {versions()}",
        f"Run: {when}, `python -m bench.profile --load {r.load} --events {r.events}`: {what}; "
        f"first publish to last handler call {r.seconds:.2f} s ({rate:,.0f} events/s); "
        f"py-spy {SAMPLE_RATE} Hz, --nonblocking",
        "",
        "| stage | µs of CPU per event |",
        "|---|---|",
    ]
    for name, p in (("serve", r.serve), ("worker", r.worker)):
        stages = p.per_event(r.events, name)
        lines.append(f"| **conveyor {name}, all** | **{sum(stages.values()):,.1f}** |")
        gc_us = [seconds / r.events * 1e6 for seconds in p.gc_seconds]
        lines.append(
            f"| … of which in the garbage collector, across the stages (generations 0 / 1 / 2) "
            f"| {sum(gc_us):,.1f} ({gc_us[0]:,.1f} / {gc_us[1]:,.1f} / {gc_us[2]:,.1f}) |"
        )
        ranked = sorted(stages.items(), key=lambda item: -item[1])
        lines += [f"| {stage} | {us:,.1f} |" for stage, us in ranked if us >= 0.05]
    lines.append("")
    for name, p in (("serve", r.serve), ("worker", r.worker)):
        threads = ", ".join(
            f"{t} {s / r.seconds:.0%}" + (" (the benchmark's, left out)" if _bookkeeping(t) else "")
            for t, s in sorted(p.thread_cpu().items(), key=lambda x: -x[1])
            if s > 0.005
        )
        lines.append(f"CPU of conveyor {name}'s threads over the load (of one core): {threads}.")
    wall = sum(r.writer_wall.values()) or 1
    shares = ", ".join(f"{k} {v / wall:.0%}" for k, v in r.writer_wall.most_common())
    lines += ["", f"The store's writer thread over the load (wall time): {shares}."]
    return "\n".join(lines)


async def _time_per_item(run: Callable[[], Awaitable[object]], items: int) -> float:
    """µs per item of ``run`` (which handles ``items``), best of 5 rounds of 100 calls."""
    for _ in range(20):
        await run()
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(100):
            await run()
        best = min(best, (time.perf_counter() - began) / 100 / items * 1e6)
    return best


MICRO = Lambda("micro")


@MICRO.handler("plain", max_batch=500)
async def _plain(payload: dict[str, int]) -> None:
    """A no-op handler that takes the payload only."""


@MICRO.handler("context", max_batch=500)
async def _context(payload: dict[str, int], ctx: EventContext) -> None:
    """A no-op handler that takes the event's context too."""


async def run_batch_costs(events: int = 500) -> list[tuple[str, float]]:
    """The worker's batch execution, in process: (what, µs per event)."""
    app = MICRO

    def push(subscription: str) -> PushRequest:
        raw = msgspec.Raw(b'{"n": 1}')
        return PushRequest(
            subscription,
            [PushEvent(f"{i:026d}", "t", 0, i, raw, 1_700_000_000_000) for i in range(events)],
        )

    async def noop() -> None:
        return None

    async def gathered() -> None:
        await asyncio.gather(*(noop() for _ in range(events)))

    async def awaited() -> None:
        for _ in range(events):
            await noop()

    out = []
    names = [sub.name for sub in app.subscriptions()]  # in the order of registration
    for sub, what in zip(names, ("(payload)", "(payload, ctx)"), strict=True):
        request = push(sub)
        answer = await app.run_batch(request)
        if answer.results[0].status.value != "success":
            raise RuntimeError(f"run_batch did not run the handler: {answer.results[0]}")
        cost = await _time_per_item(lambda r=request: app.run_batch(r), events)  # type: ignore[misc]
        out.append((f"Lambda.run_batch, {events} events, no-op handler {what}", cost))
    out.append(
        (
            f"asyncio.gather of {events} no-op coroutines (a Task each)",
            await _time_per_item(gathered, events),
        )
    )
    out.append(
        (f"the same {events} coroutines awaited in a loop", await _time_per_item(awaited, events))
    )
    return out


def run_batch_table(costs: list[tuple[str, float]], when: str) -> str:
    lines = [
        f"Machine: {machine()}; {versions()}",
        f"Run: {when}, `python -m bench.profile --load run-batch` (in process, uvloop, best of 5)",
        "",
        "| what | µs per event |",
        "|---|---|",
    ]
    lines += [f"| {what} | {us:.2f} |" for what, us in costs]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", choices=("drain", "steady", "run-batch"), default="drain")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1000, help="events/s of the steady load")
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw stacks here")
    parser.add_argument("--write-doc", type=Path)
    args = parser.parse_args()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.load == "run-batch":
        import uvloop

        text = run_batch_table(uvloop.run(run_batch_costs()), when)
    else:
        text = table(asyncio.run(profile(args.load, args.events, args.rate, args.keep)), when)
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, text, f"profile-{args.load}")


if __name__ == "__main__":
    main()
