"""`make run`: Conveyor on ./conveyor.db with the example lambda, and events flowing.

Starts ``conveyor serve`` (SQLite in ./conveyor.db) and ``conveyor worker examples.hello:app``
as child processes, publishes sample events (now, delayed, keyed, and one that fails its first
attempt), shows each one's state until delivered, then keeps publishing a greeting every two
seconds until Ctrl-C, when both processes stop gracefully.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from conveyor import Client, ConveyorError
from conveyor.wire.connections import DEFAULT_PORT

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
console = Console()


def start(args: list[str], name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(BIN / "conveyor"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def relay() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            console.print(f"[dim]{name:>6} |[/] {line.rstrip()}", highlight=False)

    threading.Thread(target=relay, daemon=True).start()
    return proc


def wait_healthy(client: Client, proc: subprocess.Popen[str]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"conveyor serve exited ({proc.returncode}); is port {DEFAULT_PORT} in use?")
        try:
            client.health()
            return
        except ConveyorError:
            time.sleep(0.05)
    sys.exit("conveyor serve did not start")


def wait_worker(client: Client) -> None:
    for _ in range(200):
        if any(info.endpoints for info in client.list_lambdas()):
            return
        time.sleep(0.05)
    sys.exit("the example worker did not register")


def show(client: Client, ids: dict[str, str], timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        views = {label: client.get_event(eid) for label, eid in ids.items()}
        if all(v.deliveries and v.deliveries[0].state == "succeeded" for v in views.values()):
            break
        time.sleep(0.25)
    table = Table("event", "id", "state", "attempts", "history")
    for label, view in views.items():
        d = view.deliveries[0]
        history = "; ".join(f"#{a.attempt} {a.outcome.value}" for a in d.history) or "-"
        table.add_row(label, view.id[:16] + "…", d.state, str(d.attempts), history)
    console.print(table)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on SIGTERM too
    url = f"http://127.0.0.1:{DEFAULT_PORT}"
    serve = start(["serve", "--store", "conveyor.db"], "serve")
    worker: subprocess.Popen[str] | None = None
    try:
        with Client(url) as client:
            wait_healthy(client, serve)
            worker = start(["worker", "examples.hello:app", "--server", url], "worker")
            wait_worker(client)
            console.rule("publishing sample events")
            ids = {
                "now": client.publish("greetings", {"name": "world"}).id,
                "keyed": client.publish("greetings", {"name": "ada", "times": 2}, key="ada").id,
                "flaky": client.publish("greetings", {"name": "flaky-bob"}).id,
                "in 3 s": client.publish("greetings", {"name": "from the future"}, delay=3).id,
            }
            show(client, ids)
            console.rule("a greeting every 2 s — Ctrl-C stops")
            for n in itertools.count(1):
                time.sleep(2)
                result = client.publish("greetings", {"name": f"visitor {n}"})
                console.print(f"published {result.id[:16]}… (partition {result.partition})")
    except KeyboardInterrupt:
        console.print("\nstopping…")
    finally:
        for proc in (worker, serve):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


if __name__ == "__main__":
    main()
