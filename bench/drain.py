"""The core's benchmark: publish rate, drain rate, latency at a steady rate, peak RSS.

Starts a real ``conveyor serve`` (SQLite, ``synchronous=FULL``: every acknowledged publish is
durable) and a real ``conveyor worker`` whose handlers do nothing, on 127.0.0.1, then:

1. publishes N small events in batches to one topic with one subscription and reports the
   publish rate and the drain rate (N / time from the first publish to the last handler call);
2. publishes single events at a steady rate and reports publish→handler latency p50/p99;
3. reports each process's peak RSS (VmHWM).

Usage: ``python -m bench.drain [--events 100000] [--write-doc docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Figures:
    events: int = 0
    batch: int = 0
    publish_rate: float = 0.0
    drain_rate: float = 0.0
    drain_seconds: float = 0.0
    latency_rate: int = 0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    latency_max_ms: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)
    nodes: int = 1
    store: str = "SQLite"


def pythonpath() -> str:
    """The children's PYTHONPATH: this checkout's ``src`` and root first, so that a bench run
    from another checkout (a baseline in a git worktree) measures that checkout's code, not
    the one the venv has installed."""
    return os.pathsep.join(
        filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])
    )


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def wait_ready(path: Path, proc: subprocess.Popen[bytes], what: str) -> str:
    for _ in range(300):
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def read_stats(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def small_payload(i: int) -> object:
    return {"n": i}


async def publish_all(
    session: aiohttp.ClientSession,
    urls: list[str],
    n: int,
    batch: int,
    concurrency: int,
    *,
    payload: Callable[[int], object] = small_payload,
    keys: int = 0,
) -> float:
    events = [{"payload": payload(i)} | keyed(i, keys) for i in range(batch)]
    body = json.dumps({"events": events}).encode()
    batches = n // batch
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(batches):
        queue.put_nowait(i)

    async def publisher(url: str) -> None:
        while not queue.empty():
            queue.get_nowait()
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"publish failed: {resp.status} {await resp.text()}")
                await resp.read()

    start = time.time()
    await asyncio.gather(*(publisher(urls[i % len(urls)]) for i in range(concurrency)))
    return start


def keyed(i: int, keys: int) -> dict[str, str]:
    """The ``key`` of the ``i``-th event, one of ``keys`` (none when 0)."""
    return {"key": f"k{i % keys}"} if keys else {}


async def steady(
    session: aiohttp.ClientSession, url: str, rate: int, seconds: float, keys: int = 0
) -> None:
    total = int(rate * seconds)
    start = time.perf_counter()
    tasks = []

    async def one(i: int) -> None:
        body = json.dumps({"payload": {"t": time.time()}} | keyed(i, keys)).encode()
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            await resp.read()

    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)


def fresh_store(url: str | None, d: Path) -> str:
    """The store URL for one run: a new SQLite file, or a new schema on the PostgreSQL."""
    if not url:
        return str(d / "bench.db")
    import psycopg

    schema = f"bench_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def drop_store(url: str | None, store: str) -> None:
    if url:
        import psycopg

        schema = store.rsplit("%3D", 1)[1]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def start_serve(store: str, d: Path, n: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(BIN / "conveyor"),
            "serve",
            "--store",
            store,
            "--port",
            "0",
            "--node-id",
            f"bench-{n}",
            "--ready-file",
            str(d / f"ready{n}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(d / f"serve{n}.log", "wb"),
        env=env,
    )


async def run(  # noqa: C901 - one straight-line run, its steps in order
    events: int,
    batch: int,
    rate: int,
    seconds: float,
    store_url: str | None,
    *,
    nodes: int = 1,
    payload: Callable[[int], object] = small_payload,
    prepare: Callable[[aiohttp.ClientSession, str], Awaitable[None]] | None = None,
    keys: int = 0,
) -> Figures:
    """One run: ``prepare`` (given the session and the first node's URL) runs once the
    worker is registered, before anything is published."""
    figures = Figures(events=events, batch=batch, latency_rate=rate)
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        d = Path(tmp)
        env = {**os.environ, "BENCH_STATS": str(d / "stats.json"), "PYTHONPATH": pythonpath()}
        store = fresh_store(store_url, d)
        serves = [start_serve(store, d, 0, env)]
        worker: subprocess.Popen[bytes] | None = None
        try:
            bases = ["http://" + await wait_ready(d / "ready0", serves[0], "conveyor serve")]
            for n in range(1, nodes):
                serves.append(start_serve(store, d, n, env))
                bases.append("http://" + await wait_ready(d / f"ready{n}", serves[n], "serve"))
            base = bases[0]
            worker = subprocess.Popen(
                [
                    str(BIN / "conveyor"),
                    "worker",
                    "bench.noop:app",
                    "--server",
                    ",".join(bases),
                    "--concurrency",
                    "1024",
                ],
                stdout=open(d / "worker.log", "wb"),
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(200):
                    async with session.get(f"{base}/v1/lambdas") as resp:
                        lambdas = await resp.json()
                    if any(item["endpoints"] for item in lambdas):
                        break
                    await asyncio.sleep(0.05)
                stats_path = d / "stats.json"
                if prepare is not None:
                    await prepare(session, base)
                await asyncio.sleep(1.5 if nodes > 1 else 0)  # every node learns the topic
                start = await publish_all(
                    session,
                    [f"{b}/v1/topics/bench/events/batch" for b in bases],
                    events,
                    batch,
                    4,
                    payload=payload,
                    keys=keys,
                )
                published = time.time()
                figures.publish_rate = events / (published - start)
                deadline = time.time() + 300
                while time.time() < deadline:
                    stats = read_stats(stats_path)
                    if int(stats.get("count", 0)) >= events:  # type: ignore[call-overload]
                        break
                    await asyncio.sleep(0.02)
                stats = read_stats(stats_path)
                last = float(stats["last"])  # type: ignore[arg-type]
                figures.drain_seconds = last - start
                figures.drain_rate = int(stats["count"]) / figures.drain_seconds  # type: ignore[call-overload]
                if seconds > 0:
                    await steady(session, f"{base}/v1/topics/latency/events", rate, seconds, keys)
                await asyncio.sleep(1.0)
                raw = read_stats(stats_path).get("latencies", [])
                lat = sorted(float(x) for x in raw) if isinstance(raw, list) else []
                if lat:
                    figures.latency_p50_ms = statistics.median(lat) * 1000
                    figures.latency_p99_ms = lat[int(len(lat) * 0.99) - 1] * 1000
                    figures.latency_max_ms = lat[-1] * 1000
            figures.rss_mb = {
                f"conveyor serve #{n + 1}": peak_rss_mb(p.pid) for n, p in enumerate(serves)
            }
            figures.rss_mb["conveyor worker"] = peak_rss_mb(worker.pid)
            figures.nodes = nodes
            figures.store = "PostgreSQL" if store_url else "SQLite"
        finally:
            for proc in (worker, *serves):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            drop_store(store_url, store)
    return figures


def table(f: Figures, when: str) -> str:
    rss = ", ".join(f"{k} {v:.0f} MB" for k, v in f.rss_mb.items())
    return "\n".join(
        [
            f"Machine: {machine()}",
            f"Store: {f.store}, {f.nodes} node(s). Run: {when}, `make bench` "
            f"(python -m bench.drain --events {f.events})",
            "",
            "| figure | value |",
            "|---|---|",
            f"| publish rate ({f.events:,} events, batches of {f.batch}, 4 concurrent requests) "
            f"| {f.publish_rate:,.0f} events/s |",
            f"| drain rate (first publish → last handler call, durable acks) "
            f"| {f.drain_rate:,.0f} events/s ({f.drain_seconds:.2f} s) |",
            f"| publish→handler latency at a steady {f.latency_rate:,}/s, p50 "
            f"| {f.latency_p50_ms:.1f} ms |",
            f"| … p99 | {f.latency_p99_ms:.1f} ms |",
            f"| … max | {f.latency_max_ms:.1f} ms |",
            f"| peak RSS | {rss} |",
        ]
    )


def write_doc(path: Path, text: str, section: str = "drain") -> None:
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--write-doc", type=Path)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on this PostgreSQL (a fresh schema) instead of SQLite",
    )
    parser.add_argument("--nodes", type=int, default=1, help="conveyor serve processes")
    parser.add_argument("--section", default="drain", help="the doc section to rewrite")
    parser.add_argument("--keys", type=int, default=0, help="key events over N keys (0: none)")
    args = parser.parse_args()
    if args.nodes > 1 and not args.postgres:
        parser.error("several nodes need --postgres (SQLite is embedded, single-node)")
    figures = asyncio.run(
        run(
            args.events,
            args.batch,
            args.rate,
            args.seconds,
            args.postgres,
            nodes=args.nodes,
            keys=args.keys,
        )
    )
    text = table(figures, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, text, args.section)


if __name__ == "__main__":
    main()
