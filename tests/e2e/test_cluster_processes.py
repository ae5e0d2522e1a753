"""A cluster of real processes: three ``conveyor serve`` nodes on one PostgreSQL schema.

Each node runs with ``--lease-ttl 2`` on its own port (``--node-id n1/n2/n3``); a real
``conveyor worker`` registers through a node that the test leaves alone. Partition leases,
cursors and the log are read straight from PostgreSQL. The tests need PostgreSQL (the
``pg_server`` fixture: they skip without it locally and fail under ``CI``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pg
from conftest import BIN, START_TIMEOUT, Proc, free_port, start_worker, wait_for
from conveyor import Client, ConveyorError
from conveyor.cluster import owner_of
from conveyor.model import LANES

pytestmark = [pytest.mark.pg, pytest.mark.slow, pytest.mark.timeout(60)]

TTL = 2.0  # --lease-ttl of every node
RENEWAL = TTL / 4  # a node's lease round runs this often
NODES = ("n1", "n2", "n3")
PARTITIONS = 8

Record = dict[str, Any]


class Cluster:
    """Three ``conveyor serve`` processes on one store, and the workers started for a test."""

    def __init__(self, tmp: Path, store: str) -> None:
        self.tmp = tmp
        self.store = store
        self.record = tmp / "record.jsonl"
        self.env = {**os.environ, "RECORD_FILE": str(self.record), "PYTHONUNBUFFERED": "1"}
        self.nodes: dict[str, Proc] = {}
        self.urls: dict[str, str] = {}
        self.workers: list[Proc] = []
        self._db: psycopg.Connection[tuple[Any, ...]] | None = None

    # -- processes ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the nodes and wait until each serves.

        n1 starts alone first: it creates the schema. (Nodes started at once on an empty
        schema race in the migrations: ``duplicate key ... pg_type_typname_nsp_index``.)
        """
        self._start(NODES[:1])
        self._start(NODES[1:])

    def _start(self, nodes: Sequence[str]) -> None:
        ready: dict[str, Path] = {}
        for node in nodes:
            port = free_port()
            ready[node] = self.tmp / f"{node}.ready"
            self.urls[node] = f"http://127.0.0.1:{port}"
            self.nodes[node] = Proc(
                [
                    *(str(BIN / "conveyor"), "serve", "--store", self.store),
                    *("--port", str(port), "--node-id", node, "--lease-ttl", str(TTL)),
                    *("--ready-file", str(ready[node])),
                ],
                self.tmp / f"{node}.log",
                self.env,
                self.tmp,
            )
        deadline = time.monotonic() + START_TIMEOUT
        for node, path in ready.items():
            proc = self.nodes[node]
            while not (path.exists() and path.read_text().strip()):
                if not proc.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"node {node} did not start:\n{proc.output()}")
                time.sleep(0.05)

    def worker(self, ref: str, via: str) -> Proc:
        """A ``conveyor worker`` serving ``ref``, registered through node ``via``."""
        proc = start_worker([ref, "--server", self.urls[via]], self.tmp, self.env)
        self.workers.append(proc)
        return proc

    def signal(self, node: str, sig: signal.Signals) -> None:
        self.nodes[node].popen.send_signal(sig)

    def close(self) -> None:
        """Stop every process (a stopped node is woken first, so that SIGTERM reaches it)."""
        for worker in self.workers:
            worker.stop(timeout=10)
        for proc in self.nodes.values():
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGCONT)
        for proc in self.nodes.values():
            proc.stop(timeout=10)
        if self._db is not None:
            self._db.close()

    # -- what the worker recorded ---------------------------------------------------------------
    def records(self) -> list[Record]:
        """Every handler call, in the order the worker wrote them."""
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    # -- what the store holds -------------------------------------------------------------------
    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        if self._db is None:
            self._db = psycopg.connect(self.store, autocommit=True, connect_timeout=10)
        return self._db.execute(query, params).fetchall()

    def leases(self, topic: str) -> dict[int, tuple[str | None, int, int]]:
        """Partition -> (owner, epoch, lease expiry in ms)."""
        (table,) = self.sql("SELECT coalesce(to_regclass('leases'), 'partitions')::text")[0]
        rows = self.sql(
            f"SELECT l.part, l.owner, l.epoch, l.lease_ms FROM {table} l "
            "JOIN topics t ON t.id = l.topic_id WHERE t.name = %s",
            topic,
        )
        return {int(part): (owner, int(epoch), int(ms)) for part, owner, epoch, ms in rows}

    def heads(self, topic: str) -> dict[int, int]:
        rows = self.sql(
            "SELECT p.part, p.next_off FROM partitions p JOIN topics t ON t.id = p.topic_id "
            "WHERE t.name = %s",
            topic,
        )
        return {int(part): int(head) for part, head in rows}

    def cursors(self, subscription: str) -> dict[int, int]:
        rows = self.sql("SELECT part, cursor FROM cursors WHERE sub = %s", subscription)
        return {int(part): int(cursor) for part, cursor in rows}

    def lock_waits(self) -> list[tuple[Any, ...]]:
        """Sessions of the database waiting on a lock: (pid, query, blocker's state, query)."""
        return self.sql(
            "SELECT w.pid, left(w.query, 80), b.state, left(b.query, 80) "
            "FROM pg_stat_activity w JOIN pg_stat_activity b "
            "ON b.pid = ANY(pg_blocking_pids(w.pid)) WHERE w.datname = current_database()"
        )

    def wait_taken_over(self, topic: str, node: str, parts: set[int], timeout: float) -> None:
        """Wait until no partition of ``parts`` is leased to ``node`` (nor to nobody)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leases = self.leases(topic)
            if all(leases[p][0] not in (None, node) for p in parts):
                return
            time.sleep(0.05)
        pytest.fail(
            f"{node}'s partitions {sorted(parts)} not taken over within {timeout} s: {leases}; "
            f"sessions waiting on a lock: {self.lock_waits()}"
        )

    def wait_balanced(self, topic: str) -> dict[int, str]:
        """Wait until every partition is leased to its rendezvous owner among all nodes."""
        # (every lane of every partition: see model.LANES)
        want = {p: owner_of((topic, p), list(NODES)) for p in range(PARTITIONS * len(LANES))}

        def balanced() -> bool:
            return {p: lease[0] for p, lease in self.leases(topic).items()} == want

        wait_for(balanced, timeout=15)
        return {p: str(o) for p, o in want.items()}


@pytest.fixture
def cluster(pg_server: str, tmp_path: Path) -> Iterator[Cluster]:
    """Three running nodes on a fresh schema; every process is stopped after the test."""
    with pg.fresh_schema(pg_server) as url:
        c = Cluster(tmp_path, url)
        try:
            c.start()
            yield c
        finally:
            c.close()


def roles(owners: dict[int, str]) -> tuple[str, str]:
    """The node to disturb (it leases the most partitions) and one to register through."""
    counts = Counter(owners.values())
    victim = max(NODES, key=lambda n: (counts[n], n))
    return victim, next(n for n in NODES if n != victim)


class Publisher(threading.Thread):
    """Streams batches of keyed events to the nodes round-robin, recording what was acked.

    Each publisher owns its keys and numbers every key's events 1, 2, 3...; it waits for one
    batch's answer before sending the next, so a key's events enter the log in ``seq`` order.
    A batch that is not acknowledged is not retried (its numbers are skipped).
    """

    def __init__(
        self,
        index: int,
        urls: Sequence[str],
        topic: str,
        stop: threading.Event,
        *,
        keys: int = 8,
        batch: int = 20,
        pause: float = 0.05,
        batches: int | None = None,
    ) -> None:
        super().__init__(name=f"publisher-{index}")
        self.index = index
        self.urls = list(urls)
        self.topic = topic
        self.stop_event = stop
        self.keys = [f"p{index}-k{j}" for j in range(keys)]
        self.batch = batch
        self.pause = pause
        self.batches = batches
        self.acked: list[tuple[str, int | None, int | None]] = []  # id, partition, offset
        self.refused = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._stream()
        except BaseException as e:  # surfaced by check()
            self.error = e

    def _stream(self) -> None:
        seq = dict.fromkeys(self.keys, 0)
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(Client(url, timeout=5)) for url in self.urls]
            sent = 0
            while not self.stop_event.is_set() and (self.batches is None or sent < self.batches):
                events: list[dict[str, object]] = []
                for i in range(self.batch):
                    key = self.keys[(sent * self.batch + i) % len(self.keys)]
                    seq[key] += 1
                    events.append({"payload": {"seq": seq[key]}, "key": key})
                client = clients[(self.index + sent) % len(clients)]
                sent += 1
                try:
                    results = client.publish_batch(self.topic, events)
                except ConveyorError:
                    self.refused += 1  # not acknowledged: maybe stored, maybe not
                    continue
                self.acked.extend((r.id, r.partition, r.offset) for r in results)
                if self.pause:
                    self.stop_event.wait(self.pause)

    def check(self) -> None:
        self.join(30)
        assert not self.is_alive(), f"{self.name} did not stop"
        if self.error is not None:
            raise self.error


def first_delivery_order_violations(records: list[Record]) -> list[str]:
    """Keys whose first deliveries are not in increasing ``seq`` order (redeliveries allowed)."""
    seen: set[str] = set()
    last: dict[str, int] = {}
    bad: list[str] = []
    for r in records:
        if r["id"] in seen:
            continue
        seen.add(r["id"])
        key, n = r["key"], int(r["seq"])
        if key in last and n <= last[key]:
            bad.append(f"{key}: {n} after {last[key]}")
        last[key] = n
    return bad


# -- kill -9 under load -----------------------------------------------------------------------
ORDERS = "cl-orders"
ORDERED_SUB = "cl-ordered.ordered"


def test_kill_9_of_a_node_under_load_moves_its_partitions_and_keeps_every_acked_event_in_order(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    # Given three nodes sharing an 8-partition topic by rendezvous, and an ordered worker
    # registered through a node that stays up
    with Client(cluster.urls["n1"]) as client:
        client.create_topic(ORDERS, partitions=PARTITIONS)
    owners = cluster.wait_balanced(ORDERS)
    victim, registrar = roles(owners)
    victim_parts = {p for p, o in owners.items() if o == victim}
    cluster.worker("cluster_lambdas:ordered_app", via=registrar)
    # And three publishers streaming keyed batches to all three nodes round-robin
    stop = threading.Event()
    urls = [cluster.urls[n] for n in NODES]
    publishers = [Publisher(i, urls, ORDERS, stop) for i in range(3)]
    for p in publishers:
        p.start()
    try:
        # (every partition is being delivered, the victim's included)
        wait_for(lambda: len({r["partition"] for r in cluster.records()}) == PARTITIONS, timeout=20)
        wait_for(lambda: len(cluster.records()) >= 1500, timeout=20)
        # When the node that leases the most partitions is killed with SIGKILL
        cluster.nodes[victim].kill9()
        killed_at = time.time()
        cursors_at_kill = cluster.cursors(ORDERED_SUB)
        # Then the survivors take its partitions over
        taken: dict[int, tuple[str, float]] = {}  # partition -> (new owner, lease acquired at)
        deadline = time.monotonic() + 4 * TTL
        while len(taken) < len(victim_parts) and time.monotonic() < deadline:
            for part, (owner, _epoch, lease_ms) in cluster.leases(ORDERS).items():
                if part in victim_parts and part not in taken and owner not in (None, victim):
                    taken[part] = (owner, lease_ms / 1000 - TTL)
            time.sleep(0.02)
        moved_after = time.time() - killed_at
        # (and the stream goes on through the survivors for a while)
        time.sleep(1.0)
    finally:
        stop.set()
        for p in publishers:
            p.check()
    assert set(taken) == victim_parts, (
        f"partitions still leased to {victim}: {cluster.leases(ORDERS)}"
    )
    assert {owner for owner, _ in taken.values()} <= set(NODES) - {victim}
    bound = TTL + RENEWAL + 1.0
    acked = {i for p in publishers for i, _, _ in p.acked}
    wait_for(lambda: acked <= {r["id"] for r in cluster.records()}, timeout=30)
    time.sleep(0.5)  # let late redeliveries land before counting duplicates
    records = cluster.records()
    # And every acknowledged event was delivered at least once
    assert not acked - {r["id"] for r in records}
    # And each key's first deliveries kept publish order across the handover
    assert first_delivery_order_violations(records) == []
    # And duplicates are only events of the victim's partitions it had pushed before the
    # kill without committing their progress (in flight at the kill), each at most twice
    in_flight = {
        r["id"]
        for r in records
        if r["partition"] in victim_parts
        and r["offset"] >= cursors_at_kill.get(r["partition"], 0)
        and r["at"] < taken[r["partition"]][1]
    }
    counts = Counter(r["id"] for r in records)
    duplicated = {i: n - 1 for i, n in counts.items() if n > 1}
    duplicates = sum(duplicated.values())
    record_property("takeover_seconds", round(moved_after, 3))
    record_property("acknowledged", len(acked))
    record_property("in_flight_at_kill", len(in_flight))
    record_property("duplicates", duplicates)
    print(
        f"\nkill -9 {victim} ({len(victim_parts)} partitions): moved in {moved_after:.2f} s "
        f"(bound {bound:.2f} s); {len(acked)} acknowledged, "
        f"{sum(p.refused for p in publishers)} batches refused; {len(in_flight)} in flight "
        f"at the kill, {duplicates} duplicates"
    )
    unexplained = [
        f"partition {r['partition']} ({owners[r['partition']]}) offset {r['offset']} "
        f"at kill{r['at'] - killed_at:+.3f} s"
        for r in records
        if r["id"] in set(duplicated) - in_flight
    ]
    assert unexplained == [], "duplicates not in flight at the victim when it was killed"
    assert max(duplicated.values(), default=0) <= 1
    assert duplicates <= len(in_flight)
    # And the partitions moved within one lease TTL, one renewal period and some slack
    assert moved_after <= bound


# -- SIGSTOP past the lease, then SIGCONT -------------------------------------------------------
SLOW = "cl-slow"
SLOW_SUB = "cl-slow.slow"


def test_a_node_paused_past_its_lease_is_fenced_and_delivers_nothing_after_it_wakes(
    cluster: Cluster, record_property: Callable[[str, object], None]
) -> None:
    # Given three nodes sharing an 8-partition topic, and a worker whose handler takes 50 ms,
    # registered through a node that stays up
    with Client(cluster.urls["n1"]) as client:
        client.create_topic(SLOW, partitions=PARTITIONS)
    owners = cluster.wait_balanced(SLOW)
    zombie, registrar = roles(owners)
    zombie_parts = {p for p, o in owners.items() if o == zombie}
    cluster.worker("cluster_lambdas:slow_app", via=registrar)
    # And a backlog of 3,000 events over 48 keys
    ids: list[str] = []
    with Client(cluster.urls[registrar], timeout=30) as client:
        for _ in range(6):
            events = [{"payload": {"seq": n}, "key": f"k{n % 48}"} for n in range(500)]
            ids += [r.id for r in client.publish_batch(SLOW, events)]
    heads = cluster.heads(SLOW)
    in_zombie_parts = sum(heads[p] for p in zombie_parts)
    wait_for(
        lambda: sum(r["partition"] in zombie_parts for r in cluster.records()) >= 40, timeout=20
    )
    # When the zombie is paused with SIGSTOP while its pushes are in flight
    epochs = {p: lease[1] for p, lease in cluster.leases(SLOW).items()}
    cluster.signal(zombie, signal.SIGSTOP)
    stopped_at = time.time()
    done_at_stop = {r["id"] for r in cluster.records() if r["partition"] in zombie_parts}
    assert len(done_at_stop) < in_zombie_parts, "the zombie's backlog drained before the stop"
    # And stays paused past its lease, until other nodes took its partitions
    cluster.wait_taken_over(SLOW, zombie, zombie_parts, timeout=TTL + 10)
    moved_after = time.time() - stopped_at
    time.sleep(max(0.0, stopped_at + TTL + RENEWAL - time.time()))
    # (and they delivered everything and committed it)
    wait_for(lambda: set(ids) <= {r["id"] for r in cluster.records()}, timeout=30)
    wait_for(lambda: cluster.cursors(SLOW_SUB) == cluster.heads(SLOW), timeout=10)
    # And is then woken with SIGCONT
    woke_at = time.time()
    cluster.signal(zombie, signal.SIGCONT)
    # Then it rejoins: its partitions come back to it by rendezvous, under new epochs
    cluster.wait_balanced(SLOW)
    time.sleep(1.0)
    leases = cluster.leases(SLOW)
    assert all(leases[p][1] >= epochs[p] + 2 for p in zombie_parts)
    # And the progress it had not committed before the pause was refused by fencing
    log = cluster.nodes[zombie].output()
    refusals = log.count("now held under epoch")
    assert refusals > 0, log[-3000:]
    # And no stale write went through: every cursor still stands at its partition's head
    assert cluster.cursors(SLOW_SUB) == cluster.heads(SLOW)
    # And nothing was delivered after it woke (no push from the zombie, no redelivery)
    records = cluster.records()
    late = [r for r in records if r["at"] >= woke_at]
    counts = Counter(r["id"] for r in records)
    duplicates = sum(n - 1 for n in counts.values())
    record_property("takeover_seconds", round(moved_after, 3))
    record_property("duplicates", duplicates)
    print(
        f"\nSIGSTOP {zombie} ({len(zombie_parts)} partitions): taken over "
        f"{moved_after:.2f} s after the stop; {len(ids)} events, {duplicates} redelivered by "
        f"the new owners, {len(late)} delivered after SIGCONT; {refusals} progress commits "
        "refused by fencing"
    )
    assert [
        f"partition {r['partition']} offset {r['offset']} at SIGCONT{r['at'] - woke_at:+.3f} s"
        for r in late
    ] == [], "delivered after the zombie woke"
    # And redeliveries were only of the zombie's partitions (what it had in flight)
    assert [
        f"partition {r['partition']} ({owners[r['partition']]}) offset {r['offset']}"
        for r in records
        if counts[r["id"]] > 1 and r["partition"] not in zombie_parts
    ] == [], "redelivered outside the zombie's partitions"


# -- concurrent publishers on every node ------------------------------------------------------
LOG = "cl-log"


def test_concurrent_publishers_on_every_node_leave_gap_free_offsets_and_every_ack_once(
    cluster: Cluster,
) -> None:
    # Given three nodes and a topic of 8 partitions
    with Client(cluster.urls["n1"]) as client:
        client.create_topic(LOG, partitions=PARTITIONS)
    cluster.wait_balanced(LOG)
    # When six publishers append 1,000 keyed events each through all three nodes at once
    # (2 publishers per node; every batch spans the partitions)
    stop = threading.Event()
    publishers = [
        Publisher(
            i, [cluster.urls[NODES[i % 3]]], LOG, stop, keys=32, batch=25, pause=0, batches=40
        )
        for i in range(6)
    ]
    started = time.monotonic()
    for p in publishers:
        p.start()
    for p in publishers:
        p.check()
    took = time.monotonic() - started
    assert sum(p.refused for p in publishers) == 0
    acked = [a for p in publishers for a in p.acked]
    assert len(acked) == 6 * 40 * 25
    # Then per partition the offsets in the log are gap-free from 0, as many as were acked
    rows = cluster.sql(
        "SELECT l.part, l.off, l.id FROM log l JOIN topics t ON t.id = l.topic_id "
        "WHERE t.name = %s ORDER BY l.part, l.off",
        LOG,
    )
    offsets: dict[int, list[int]] = {}
    for part, off, _ in rows:
        offsets.setdefault(int(part), []).append(int(off))
    acked_per_part = Counter(part for _, part, _ in acked)
    assert len(offsets) == PARTITIONS
    for part, offs in offsets.items():
        assert offs == list(range(acked_per_part[part])), f"partition {part}"
    # And every acknowledged event is in the log exactly once, where its ack said
    logged = {str(i): (int(part), int(off)) for part, off, i in rows}
    assert len(logged) == len(rows) == len(acked)
    assert all(logged[i] == (part, off) for i, part, off in acked)
    # And each partition's head is the next offset to append
    heads = cluster.heads(LOG)
    assert {p: h for p, h in heads.items() if p < PARTITIONS} == {
        p: len(o) for p, o in offsets.items()
    }
    assert all(h == 0 for p, h in heads.items() if p >= PARTITIONS)  # the empty lanes
    print(
        f"\n{len(acked)} events from 6 publishers on 3 nodes in {took:.2f} s; per partition "
        f"{dict(sorted(acked_per_part.items()))}"
    )
