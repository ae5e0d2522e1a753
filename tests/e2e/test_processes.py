"""End to end through real processes: ``conveyor serve`` + ``conveyor worker`` on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from conftest import Platform, wait_for
from conveyor import Client, ConveyorError, InvalidRequest, NotFound, SchemaViolation
from pg import count_rows


def _state(client: Client, event_id: str) -> str:
    return client.get_event(event_id).deliveries[0].state


def test_an_event_published_over_http_reaches_a_worker_process_and_reads_succeeded(
    platform: Platform,
) -> None:
    # Given a worker process serving the e2e lambda
    worker = platform.worker()
    with Client(platform.url) as client:
        # When an event is published over HTTP
        result = client.publish("orders", {"n": 1}, key="k1", attributes={"source": "test"})
        # Then the handler in the other process receives it, and its state reads succeeded
        wait_for(lambda: any(r["id"] == result.id for r in platform.records()))
        wait_for(lambda: _state(client, result.id) == "succeeded")
        view = client.get_event(result.id)
    assert view.deliveries[0].subscription == "e2e.record"
    assert view.key == "k1"
    assert view.attributes == {"source": "test"}
    (record,) = [r for r in platform.records() if r["id"] == result.id]
    assert record["payload"] == {"n": 1}
    assert worker.stop() == 0


def test_kill_9_of_serve_mid_stream_loses_no_acknowledged_event(
    platform: Platform, record_property: Callable[[str, object], None]
) -> None:
    # Given a worker and a publisher streaming batches of acknowledged events
    worker = platform.worker()
    acked: list[str] = []
    stop = threading.Event()

    def publish_forever() -> None:
        with Client(platform.url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                try:
                    results = client.publish_batch(
                        "orders", [{"payload": {"i": i + j}} for j in range(25)]
                    )
                except ConveyorError:
                    stop.wait(0.05)  # not acknowledged: the node is down; try again
                    continue
                acked.extend(r.id for r in results)
                i += 25

    publisher = threading.Thread(target=publish_forever)
    publisher.start()
    try:
        wait_for(lambda: len(acked) >= 3000, timeout=60)
        # When the node is killed with SIGKILL in the middle of the stream, then restarted
        assert platform.proc is not None
        platform.proc.kill9()
        acked_at_kill = len(acked)
        time.sleep(0.3)
        platform.start()
        wait_for(lambda: len(acked) >= acked_at_kill + 1000, timeout=60)
    finally:
        stop.set()
        publisher.join()
    # Then every acknowledged event is delivered at least once
    wait_for(lambda: set(acked) <= {r["id"] for r in platform.records()}, timeout=90)
    delivered = [str(r["id"]) for r in platform.records()]
    duplicates = len(delivered) - len(set(delivered))
    record_property("acknowledged", len(acked))
    record_property("duplicates", duplicates)
    print(
        f"\nkill -9: {len(acked)} acknowledged, {len(set(delivered))} delivered, "
        f"{duplicates} duplicates"
    )
    assert not set(acked) - set(delivered)
    worker.stop()


def test_a_delayed_event_reads_scheduled_and_is_never_delivered_before_its_time(
    platform: Platform,
) -> None:
    # Given a worker whose sync handler records the wall time of each call
    platform.worker()
    with Client(platform.url) as client:
        # When events are published with a delay and with a deliver_at
        delayed = client.publish("later", {"kind": "delay"}, delay=1.2)
        at = datetime.fromtimestamp(time.time() + 0.8, tz=UTC)
        scheduled = client.publish("later", {"kind": "deliver_at"}, deliver_at=at)
        # Then both read scheduled at first
        assert delayed.state == "scheduled"
        assert _state(client, delayed.id) == "scheduled"
        assert delayed.deliver_at is not None
        assert scheduled.deliver_at is not None
        wait_for(lambda: {delayed.id, scheduled.id} <= {r["id"] for r in platform.records()})
        wait_for(lambda: _state(client, delayed.id) == "succeeded")
    # And neither reached its handler before its time
    due = {
        delayed.id: delayed.deliver_at.timestamp(),
        scheduled.id: scheduled.deliver_at.timestamp(),
    }
    for record in platform.records():
        assert float(record["at"]) >= due[str(record["id"])]  # type: ignore[arg-type]


def test_an_ordered_subscription_keeps_key_order_while_other_keys_pass_a_failing_one(
    platform: Platform,
) -> None:
    # Given a worker whose ordered "ledger" handler fails the first events of key "stuck"
    platform.worker()
    with Client(platform.url) as client:
        # When "stuck" publishes a head that fails twice and followers, then "free" publishes
        events = [{"payload": {"n": 0, "fail_until": 2}, "key": "stuck"}]
        events += [{"payload": {"n": n}, "key": "stuck"} for n in range(1, 5)]
        events += [{"payload": {"n": n}, "key": "free"} for n in range(10)]
        client.publish_batch("ledger", events)
        wait_for(lambda: len(platform.records()) >= 15)
    records = platform.records()
    by_key = {k: [r for r in records if r["key"] == k] for k in ("stuck", "free")}
    # Then each key's events arrive in publish order
    assert [r["payload"]["n"] for r in by_key["stuck"]] == [0, 1, 2, 3, 4]  # type: ignore[index]
    assert [r["payload"]["n"] for r in by_key["free"]] == list(range(10))  # type: ignore[index]
    # And the failing head blocked only its own key: "free" finished before "stuck" resumed
    assert by_key["stuck"][0]["attempt"] == 3
    assert float(by_key["free"][-1]["at"]) < float(by_key["stuck"][0]["at"])  # type: ignore[arg-type]


def _log_rows(platform: Platform) -> int:
    return count_rows(platform.db, "log") + count_rows(platform.db, "timers")


def test_bad_input_gets_a_4xx_naming_the_problem_and_stores_nothing(platform: Platform) -> None:
    with Client(platform.url) as client:
        # Given a topic with a schema
        client.create_topic(
            "typed",
            schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
            max_payload_bytes=100,
        )
        before = _log_rows(platform)
        # Then an unknown topic is a 404 naming it
        with pytest.raises(NotFound, match="nowhere"):
            client.publish("nowhere", {"n": 1})
        # And a payload off the schema is a 422 naming the field and the rule
        with pytest.raises(SchemaViolation) as off:
            client.publish("typed", {"n": "one"})
        assert (off.value.field, off.value.rule) == ("/payload/n", "type")
        with pytest.raises(SchemaViolation) as missing:
            client.publish("typed", {})
        assert (missing.value.field, missing.value.rule) == ("/payload/n", "required")
        # And an oversize payload is a 413
        with pytest.raises(InvalidRequest) as big:
            client.publish("typed", {"n": 1, "pad": "x" * 200})
        assert (big.value.status, big.value.rule) == (413, "max_size")
        # And a batch with one bad event stores none of them
        with pytest.raises(InvalidRequest) as batch:
            client.publish_batch("typed", [{"payload": {"n": 1}}, {"payload": {"n": "x"}}])
        assert batch.value.index == 1
    # And malformed JSON is a 400 with rule json
    request = urllib.request.Request(
        f"{platform.url}/v1/topics/typed/events",
        data=b'{"payload": {',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as malformed:
        urllib.request.urlopen(request, timeout=10)
    assert malformed.value.code == 400
    assert b'"rule":"json"' in malformed.value.read()
    # And nothing was stored by any of them
    assert _log_rows(platform) == before


def test_sigterm_stops_serve_gracefully_and_a_restart_redelivers_nothing(
    platform: Platform,
) -> None:
    # Given a worker whose handler takes 50 ms, and a backlog of 400 events (about 1 s)
    worker = platform.worker()
    with Client(platform.url) as client:
        ids = [
            r.id for r in client.publish_batch("slow", [{"payload": {"n": n}} for n in range(400)])
        ]
    wait_for(lambda: len(platform.records()) >= 40)
    # When the node gets SIGTERM while pushes are in flight
    assert platform.proc is not None
    assert platform.proc.stop() == 0
    # And is started again
    platform.start()
    wait_for(lambda: set(ids) <= {r["id"] for r in platform.records()}, timeout=60)
    time.sleep(0.5)
    # Then every event was delivered exactly once: the stop settled in-flight pushes and
    # committed their progress before exiting
    delivered = [str(r["id"]) for r in platform.records()]
    assert len(delivered) == len(set(delivered)) == len(ids)
    worker.stop()
