"""Delayed events: how late a timer fires at 5,000 due/s, beside Celery, and 1,000,000 pending.

Starts a real ``conveyor serve`` (SQLite, ``synchronous=FULL``) and a real ``conveyor worker``
running :mod:`bench.timer_lambdas`, whose handlers note, per event, the scheduled
``ctx.deliver_at`` and ``time.time()`` at entry: lateness = entry - deliver_at (one clock).

A. 100,000 events, each with a delay drawn uniformly from 2 to 10 s, published in batches of
   500 at a steady 5,000 events/s for 20 s. An event published at p is due at p + U(2, 10), so
   the due rate ramps up from 2 s, holds 5,000/s from 10 s to 22 s (every second's events are
   then spread over the 8 s that follow) and ramps down to 30 s: at most 5,000 due/s, with
   publishes arriving at the same time. Reports p50/p99/max lateness, events delivered,
   early ones (lateness < 0, a defect) and the peak due rate (1 s bins).
B. The countdown case through Celery on a throwaway ``redis-server`` (:mod:`bench.celery_countdown`,
   run by ``.venv-peers``): 2,000 tasks with ``countdown=2`` enqueued one ``apply_async`` at a
   time as fast as the producer goes; then the same through Conveyor: 2,000 single publishes
   with ``delay: 2`` at the rate Celery's producer reached, so both see the same due rate.
C. A small lateness probe (10,000 events, 5,000/s for 2 s, delays U(2, 3)), then 1,000,000
   events delayed 1 h to 30 days published in batches of 10,000, the serve process's RSS
   before and after, and the same probe again with the 1,000,000 pending.

Usage: ``python -m bench.timers [--quick] [--write-doc docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.drain import BIN, ROOT, machine, start_serve, wait_ready, write_doc
from bench.peers.redis_server import RedisServer, redis_server_path

PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
SECTION = "timers"
JSON = {"Content-Type": "application/json"}

Record = tuple[str, str, float | None, float, float | None]
"""(topic, event id, deliver_at, handler entry, the publisher's send time) as noted."""


@dataclass
class Lateness:
    """Lateness figures of one case, in milliseconds."""

    expected: int = 0
    delivered: int = 0
    duplicates: int = 0
    early: int = 0
    p50: float = 0.0
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0
    peak_due_rate: int = 0
    within_20ms: float = 0.0

    @property
    def missing(self) -> int:
        return self.expected - (self.delivered - self.duplicates)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (as bench.drain reads p99)."""
    if not values:
        return float("nan")
    return values[max(0, min(len(values) - 1, int(len(values) * q + 0.999999) - 1))]


def summarize(lateness: list[float], expected: int, due: list[float] | None = None) -> Lateness:
    lat = sorted(lateness)
    out = Lateness(expected=expected, delivered=len(lat))
    if lat:
        out.early = sum(1 for x in lat if x < 0)
        out.p50 = percentile(lat, 0.50) * 1000
        out.p99 = percentile(lat, 0.99) * 1000
        out.p999 = percentile(lat, 0.999) * 1000
        out.max = lat[-1] * 1000
        out.within_20ms = sum(1 for x in lat if x <= 0.020) / len(lat)
    if due:
        bins: dict[int, int] = {}
        for t in due:
            bins[int(t)] = bins.get(int(t), 0) + 1
        out.peak_due_rate = max(bins.values())
    return out


def from_records(records: list[Record], expected: int) -> Lateness:
    due = [r[2] for r in records if r[2] is not None]
    out = summarize([r[3] - r[2] for r in records if r[2] is not None], expected, due)
    out.duplicates = len(records) - len({r[1] for r in records})
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


@dataclass
class CeleryFigures:
    skipped: str = ""
    lateness: Lateness = field(default_factory=Lateness)
    enqueue_rate: float = 0.0
    versions: str = ""
    pool: str = ""


@dataclass
class Figures:
    quick: bool = False
    interval: float = 0.1
    case_a: Lateness = field(default_factory=Lateness)
    case_a_events: int = 0
    case_a_rate: int = 0
    case_a_seconds: float = 0.0
    case_a_pushed: dict[float, float] = field(default_factory=dict)
    celery: CeleryFigures = field(default_factory=CeleryFigures)
    countdown: Lateness = field(default_factory=Lateness)
    countdown_rate: float = 0.0
    countdown_client_p99: float = 0.0
    countdown_tasks: int = 0
    far_events: int = 0
    far_publish_rate: float = 0.0
    rss_before: dict[str, float] = field(default_factory=dict)
    rss_after: dict[str, float] = field(default_factory=dict)
    db_mb: float = 0.0
    probe_events: int = 0
    probe_idle: Lateness = field(default_factory=Lateness)
    probe_backlog: Lateness = field(default_factory=Lateness)
    worker_hwm_mb: float = 0.0
    seconds: float = 0.0


class Platform:
    """A ``conveyor serve`` and a ``conveyor worker`` serving bench.timer_lambdas."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.records_dir = d / "records"
        self.records_dir.mkdir()
        self.env = {
            **os.environ,
            "BENCH_TIMERS_DIR": str(self.records_dir),
            # ROOT holds no ``conveyor`` package: a PYTHONPATH naming another checkout's src
            # (a baseline) still decides which Conveyor runs.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.serve: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.seen = 0
        self.dumps = 0

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.serve = start_serve(str(self.d / "bench.db"), self.d, 0, self.env)
        try:
            ready = await wait_ready(self.d / "ready0", self.serve, "conveyor serve")
        except RuntimeError as e:
            log = (self.d / "serve0.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{e}:\n{log}") from e
        self.base = "http://" + ready
        self.worker = subprocess.Popen(
            [
                str(BIN / "conveyor"),
                "worker",
                "bench.timer_lambdas:app",
                "--server",
                self.base,
                "--concurrency",
                "1024",
            ],
            stdout=open(self.d / "worker.log", "wb"),
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
        )
        for _ in range(400):
            async with session.get(f"{self.base}/v1/lambdas") as resp:
                lambdas = await resp.json()
            if any(item["endpoints"] for item in lambdas):
                break
            if self.worker.poll() is not None:
                raise RuntimeError("conveyor worker exited; see its log")
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("conveyor worker did not register")
        # Warm up every topic's path (first push, connection pool) before measuring.
        for topic in ("delayed", "countdown", "probe"):
            async with session.post(
                f"{self.base}/v1/topics/{topic}/events", data=b'{"payload": {}}', headers=JSON
            ) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"warm-up publish failed: {resp.status}")
        await self.collect(3, 30)

    def count(self) -> int:
        try:
            return int((self.records_dir / "count").read_text())
        except (OSError, ValueError):
            return 0

    async def collect(self, expected: int, within: float) -> list[Record]:
        """Wait for ``expected`` more handler calls (at most ``within`` s); their records."""
        for _ in range(int(within / 0.05)):
            if self.count() >= self.seen + expected:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # stragglers and duplicates of this case
        self.dumps += 1
        (self.records_dir / "dump.req.tmp").write_text(str(self.dumps))
        os.replace(self.records_dir / "dump.req.tmp", self.records_dir / "dump.req")
        path = self.records_dir / f"dump-{self.dumps}.jsonl"
        for _ in range(600):
            if path.exists():
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the worker did not dump its records")
        records: list[Record] = [tuple(json.loads(line)) for line in path.read_text().splitlines()]
        self.seen += len(records)
        return records

    def stop(self) -> None:
        for proc in (self.worker, self.serve):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


async def paced_batches(
    session: aiohttp.ClientSession, url: str, bodies: list[bytes], interval: float
) -> None:
    """POST one body every ``interval`` seconds, without waiting for the answers in between."""

    async def post(body: bytes) -> None:
        async with session.post(url, data=body, headers=JSON) as resp:
            if resp.status != 201:
                raise RuntimeError(f"publish failed: {resp.status} {await resp.text()}")
            await resp.read()

    tasks = []
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        pause = start + i * interval - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        tasks.append(asyncio.create_task(post(body)))
    await asyncio.gather(*tasks)


def delayed_bodies(
    events: int, batch: int, low: float, high: float, rng: random.Random
) -> list[bytes]:
    return [
        json.dumps(
            {
                "events": [
                    {"payload": {}, "delay": round(rng.uniform(low, high), 3)}
                    for _ in range(min(batch, events - start))
                ]
            }
        ).encode()
        for start in range(0, events, batch)
    ]


async def lateness_run(
    platform: Platform,
    session: aiohttp.ClientSession,
    topic: str,
    *,
    events: int,
    rate: int,
    low: float,
    high: float,
    rng: random.Random,
    interval: float = 0.1,
) -> Lateness:
    """Publish ``events`` at ``rate``/s, a batch every ``interval`` s, delays U(low, high)."""
    batch = max(1, round(rate * interval))
    bodies = delayed_bodies(events, batch, low, high, rng)
    url = f"{platform.base}/v1/topics/{topic}/events/batch"
    await paced_batches(session, url, bodies, batch / rate)
    records = await platform.collect(events, high + 60)
    return from_records(records, events)


async def probe(
    platform: Platform,
    session: aiohttp.ClientSession,
    events: int,
    rng: random.Random,
    interval: float,
) -> Lateness:
    """Case C's probe: ``events`` at 5,000/s, delays U(2, 3) s."""
    return await lateness_run(
        platform,
        session,
        "probe",
        events=events,
        rate=5000,
        low=2,
        high=3,
        rng=rng,
        interval=interval,
    )


async def countdown_run(
    platform: Platform, session: aiohttp.ClientSession, tasks: int, rate: float
) -> tuple[Lateness, float, float]:
    """Single publishes with ``delay: 2`` at ``rate``/s; (lateness, client p99, rate reached)."""
    url = f"{platform.base}/v1/topics/countdown/events"

    async def one() -> None:
        body = json.dumps({"payload": {"t": time.time()}, "delay": 2}).encode()
        async with session.post(url, data=body, headers=JSON) as resp:
            if resp.status != 201:
                raise RuntimeError(f"publish failed: {resp.status} {await resp.text()}")
            await resp.read()

    pending = []
    start = time.perf_counter()
    for i in range(tasks):
        pause = start + i / rate - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        pending.append(asyncio.create_task(one()))
    reached = tasks / (time.perf_counter() - start)
    await asyncio.gather(*pending)
    records = await platform.collect(tasks, 60)
    client = sorted(r[3] - (r[4] + 2) for r in records if r[4] is not None)
    return from_records(records, tasks), percentile(client, 0.99) * 1000, reached


def run_celery(tasks: int, d: Path) -> tuple[CeleryFigures, list[float]]:
    """Celery's countdown case on a throwaway Redis, or why it was skipped."""
    figures = CeleryFigures()
    if redis_server_path() is None:
        figures.skipped = "redis-server is not installed (apt-get install redis-server)"
        return figures, []
    if not (ROOT / ".venv-peers" / ".installed").exists():
        figures.skipped = ".venv-peers is missing (make bench-peers-venv)"
        return figures, []
    try:
        return _run_celery(tasks, d)
    except (OSError, RuntimeError, subprocess.SubprocessError, ValueError, KeyError) as e:
        figures.skipped = f"the Celery run failed: {e!r}"[:300]
        return figures, []


def _run_celery(tasks: int, d: Path) -> tuple[CeleryFigures, list[float]]:
    figures = CeleryFigures()
    out = d / "celery.json"
    with RedisServer() as redis:
        proc = subprocess.run(
            [
                str(PEERS_PYTHON),
                "-m",
                "bench.celery_countdown",
                "--broker",
                redis.url,
                "--tasks",
                str(tasks),
                "--rate",
                "0",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        version = redis.version()
    if proc.returncode != 0:
        figures.skipped = f"the Celery run failed: {proc.stderr.strip()[-500:]}"
        return figures, []
    result = json.loads(out.read_text())
    lateness = [float(x) for x in result["lateness"]]
    figures.lateness = summarize(lateness, tasks)
    figures.enqueue_rate = tasks / float(result["enqueue_seconds"])
    figures.versions = f"{result['versions']}, Redis {version}"
    figures.pool = f"{result['pool']}, concurrency {result['concurrency']}"
    eta = [float(x) for x in result["lateness_eta"]]
    return figures, eta


async def pushed_lateness(
    session: aiohttp.ClientSession, base: str, subscription: str
) -> dict[float, float]:
    """The platform's own view: share of pushes started within each lateness bucket.

    ``conveyor_delivery_lateness_seconds`` is push start - deliver_at, observed by the
    serve process before the HTTP push: the gap to the handler's figure is the push itself.
    """
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.text()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("conveyor_delivery_lateness_seconds_bucket{") and (
            f'subscription="{subscription}"' in line
        ):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    total = buckets.get(float("inf"), 0.0)
    return {le: n / total for le, n in sorted(buckets.items())} if total else {}


async def far_publish(
    platform: Platform, session: aiohttp.ClientSession, events: int, rng: random.Random
) -> float:
    """Publish ``events`` delayed 1 h to 30 days, batches of 10,000, 4 at once; the rate."""
    batch = min(10_000, events)
    distinct = delayed_bodies(batch * 8, batch, 3600, 30 * 86400, rng)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(events // batch):
        queue.put_nowait(distinct[i % len(distinct)])
    url = f"{platform.base}/v1/topics/far/events/batch"

    async def publisher() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, data=body, headers=JSON) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"publish failed: {resp.status} {await resp.text()}")
                await resp.read()

    start = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(4)))
    return (events // batch * batch) / (time.perf_counter() - start)


async def run(quick: bool, seed: int, keep: Path | None, interval: float) -> Figures:
    rng = random.Random(seed)
    began = time.perf_counter()
    f = Figures(quick=quick, interval=interval)
    f.case_a_rate = 5000
    f.case_a_seconds = 4.0 if quick else 20.0
    f.case_a_events = int(f.case_a_rate * f.case_a_seconds)
    f.countdown_tasks = 500 if quick else 2000
    f.probe_events = 5000 if quick else 10_000
    f.far_events = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-timers-") as tmp:
        d = Path(tmp)
        platform = Platform(d)
        try:
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as session:
                await platform.start(session)
                print("B: Celery countdown ...", flush=True)
                f.celery, _ = await asyncio.to_thread(run_celery, f.countdown_tasks, d)
                if f.celery.skipped:
                    print(f"B: skipping the Celery countdown case: {f.celery.skipped}", flush=True)
                rate = f.celery.enqueue_rate or 2000.0
                print(f"B: Conveyor countdown at {rate:,.0f}/s ...", flush=True)
                f.countdown, f.countdown_client_p99, f.countdown_rate = await countdown_run(
                    platform, session, f.countdown_tasks, rate
                )
                print(f"A: {f.case_a_events:,} events, delays 2-10 s ...", flush=True)
                f.case_a = await lateness_run(
                    platform,
                    session,
                    "delayed",
                    events=f.case_a_events,
                    rate=f.case_a_rate,
                    low=2,
                    high=10,
                    rng=rng,
                    interval=interval,
                )
                f.case_a_pushed = await pushed_lateness(session, platform.base, "timers.delayed")
                print("C: probe without backlog ...", flush=True)
                f.probe_idle = await probe(platform, session, f.probe_events, rng, interval)
                assert platform.serve is not None
                assert platform.worker is not None
                f.rss_before = memory_mb(platform.serve.pid)
                print(f"C: publishing {f.far_events:,} far timers ...", flush=True)
                f.far_publish_rate = await far_publish(platform, session, f.far_events, rng)
                await asyncio.sleep(1.0)
                print("C: probe with the backlog pending ...", flush=True)
                f.probe_backlog = await probe(platform, session, f.probe_events, rng, interval)
                f.rss_after = memory_mb(platform.serve.pid)
                f.worker_hwm_mb = memory_mb(platform.worker.pid).get("VmHWM", 0.0)
                f.db_mb = sum(p.stat().st_size for p in d.glob("bench.db*") if p.is_file()) / (
                    1024 * 1024
                )
                far_delivered = sum(1 for r in await platform.collect(0, 0) if r[0] == "far")
                if far_delivered:
                    print(f"C: {far_delivered} far timers fired early!", flush=True)
                    f.probe_backlog.early += far_delivered
        finally:
            platform.stop()
            if keep is not None:
                shutil.copytree(d / "records", keep, dirs_exist_ok=True)
                for log in d.glob("*.log"):
                    shutil.copy(log, keep)
    f.seconds = time.perf_counter() - began
    return f


def _row(name: str, lat: Lateness) -> str:
    extra = f"{lat.delivered - lat.duplicates:,}/{lat.expected:,}"
    if lat.duplicates:
        extra += f" (+{lat.duplicates} duplicates)"
    return f"| {name} | {lat.p50:.1f} | {lat.p99:.1f} | {lat.max:.1f} | {extra} | {lat.early} |"


def _shares(buckets: dict[float, float]) -> str:
    picked = [
        f"{share:.1%} within {le * 1000:.0f} ms" for le, share in buckets.items() if le <= 0.05
    ]
    return ", ".join(picked) or "not reported"


def table(f: Figures, when: str) -> str:
    cmd = "python -m bench.timers" + (" --quick" if f.quick else "")
    if f.interval != 0.1:
        cmd += f" --publish-interval {f.interval}"
    rss_growth = f.rss_after.get("VmRSS", 0.0) - f.rss_before.get("VmRSS", 0.0)
    peak_growth = f.rss_after.get("VmHWM", 0.0) - f.rss_before.get("VmRSS", 0.0)
    lines = [
        f"Machine: {machine()}",
        f"Store: SQLite, 1 node. Run: {when}, `make bench` ({cmd}, {f.seconds:.0f} s)",
        "",
        "| case | p50 ms | p99 ms | max ms | delivered | early |",
        "|---|---|---|---|---|---|",
        _row(
            f"A: {f.case_a_events:,} events, delays U(2, 10) s, published at "
            f"{f.case_a_rate:,}/s for {f.case_a_seconds:.0f} s (a batch of "
            f"{round(f.case_a_rate * f.interval):,} every {f.interval * 1000:.0f} ms); "
            f"peak due rate {f.case_a.peak_due_rate:,}/s",
            f.case_a,
        ),
    ]
    if f.celery.skipped:
        lines.append(f"| B: Celery, skipped: {f.celery.skipped} | | | | | |")
    else:
        lines.append(
            _row(
                f"B: Celery, {f.countdown_tasks:,} tasks, countdown=2, enqueued at "
                f"{f.celery.enqueue_rate:,.0f}/s ({f.celery.pool})",
                f.celery.lateness,
            )
        )
    lines += [
        _row(
            f"B: Conveyor, {f.countdown_tasks:,} single publishes, delay 2 s, at "
            f"{f.countdown_rate:,.0f}/s (p99 against send time + 2 s: "
            f"{f.countdown_client_p99:.1f} ms)",
            f.countdown,
        ),
        _row(
            f"C: probe, {f.probe_events:,} events, delays U(2, 3) s at 5,000/s, nothing else "
            "pending",
            f.probe_idle,
        ),
        _row(
            f"C: the same probe with {f.far_events:,} timers pending (due in 1 h to 30 days)",
            f.probe_backlog,
        ),
        "",
        f"Case A seen from the serve process (push start - deliver_at, "
        f"`conveyor_delivery_lateness_seconds`): {_shares(f.case_a_pushed)}; at the "
        f"handler: {f.case_a.within_20ms:.1%} within 20 ms, p99.9 {f.case_a.p999:.1f} ms.",
        "",
        "| pending timers | value |",
        "|---|---|",
        f"| publish rate of {f.far_events:,} delayed events (batches of 10,000, 4 at once) "
        f"| {f.far_publish_rate:,.0f} events/s |",
        f"| conveyor serve RSS before → after (VmRSS) | {f.rss_before.get('VmRSS', 0):.0f} MB → "
        f"{f.rss_after.get('VmRSS', 0):.0f} MB (+{rss_growth:.0f} MB) |",
        f"| conveyor serve peak RSS (VmHWM) before → after | {f.rss_before.get('VmHWM', 0):.0f} "
        f"MB → {f.rss_after.get('VmHWM', 0):.0f} MB (peak - RSS before: +{peak_growth:.0f} MB) |",
        f"| conveyor worker peak RSS (VmHWM) | {f.worker_hwm_mb:.0f} MB |",
        f"| SQLite files after the run | {f.db_mb:,.0f} MB |",
    ]
    if not f.celery.skipped:
        lines += ["", f"Celery side: {f.celery.versions}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller smoke run (~1 min)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--write-doc", type=Path)
    parser.add_argument("--keep", type=Path, help="copy the raw records and logs here")
    parser.add_argument(
        "--publish-interval",
        type=float,
        default=0.1,
        help="seconds between the batches of cases A and C (a batch = 5,000/s x this)",
    )
    args = parser.parse_args()
    figures = asyncio.run(run(args.quick, args.seed, args.keep, args.publish_interval))
    text = table(figures, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, text, SECTION)


if __name__ == "__main__":
    main()
