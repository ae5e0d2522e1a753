"""Formats out, end to end: ``conveyor serve`` + ``conveyor worker`` on 127.0.0.1.

An Avro and a Protobuf subject are registered, a topic is bound to each, and events are
published as JSON and as binary data. Each subscription of ``schema_lambdas`` receives them
in its own format (JSON, Avro, Protobuf, a reader version, CloudEvents) and its handler
records what the SDK decoded: the original payload every time.
"""

from __future__ import annotations

import io
import json
import urllib.request
from collections import Counter

import fastavro
import pytest
from schema_lambdas import AVRO_TOPIC, AVRO_V1, AVRO_V2, PROTO, PROTO_TOPIC, SUBSCRIPTIONS

from conftest import Platform, wait_for
from conveyor.codecs import protobuf

pytestmark = pytest.mark.slow

AVRO_ORDERS: list[dict[str, object]] = [
    {"id": 1, "sku": "A-1", "note": "fragile", "blob": "\u00ff\u0000x"},
    {"id": 2, "sku": "B-2", "note": None, "blob": ""},
]
AVRO_BINARY_ORDER: dict[str, object] = {
    "id": 3,
    "sku": "C-3",
    "note": "from Avro",
    "blob": "\u0001",
}
PROTO_ORDERS: list[dict[str, object]] = [
    {"id": 1, "sku": "A-1", "qty": 2, "tags": ["x", "y"]},
    {"id": 2, "sku": "B-2", "qty": 5},
]
PROTO_BINARY_ORDER: dict[str, object] = {"id": 3, "sku": "C-3", "qty": 1, "tags": ["z"]}


def call(
    platform: Platform,
    method: str,
    path: str,
    body: object | bytes,
    headers: dict[str, str] | None = None,
) -> dict[str, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        platform.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
    return answer


def avro_binary(schema: dict[str, object], value: dict[str, object]) -> bytes:
    datum = {
        k: v.encode("latin-1") if isinstance(v, str) and k == "blob" else v
        for k, v in value.items()
    }
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(dict(schema)), datum)
    return out.getvalue()


def register(platform: Platform, subject: str, kind: str, schema: str) -> int:
    body = {"schema": schema, "type": kind}
    answer = call(platform, "POST", f"/v1/subjects/{subject}/versions", body)
    schema_id = answer["id"]
    assert isinstance(schema_id, int)
    return schema_id


def test_each_subscription_receives_the_original_payload_in_its_own_format(
    platform: Platform,
) -> None:
    # Given an Avro subject (two versions) and a Protobuf subject, a topic bound to each,
    ids = {
        "avro1": register(platform, "orders-avro", "avro", json.dumps(AVRO_V1)),
        "avro2": register(platform, "orders-avro", "avro", json.dumps(AVRO_V2)),
        "proto1": register(platform, "orders-proto", "protobuf", PROTO),
    }
    for topic, subject in ((AVRO_TOPIC, "orders-avro"), (PROTO_TOPIC, "orders-proto")):
        body = {"name": topic, "schema_settings": {"subject": subject}}
        call(platform, "PUT", f"/v1/topics/{topic}", body)
    # and a worker whose subscriptions take JSON, Avro, Protobuf, version 2 and CloudEvents
    platform.worker("schema_lambdas:app")

    # When events are published as JSON (Avro ones written with version 1), and as binary
    published: dict[str, tuple[str, dict[str, object]]] = {}
    for order in AVRO_ORDERS:
        event = {"payload": order, "schema_version": 1, "key": f"k{order['id']}"}
        answer = call(platform, "POST", f"/v1/topics/{AVRO_TOPIC}/events", event)
        published[str(answer["id"])] = (AVRO_TOPIC, order)
    for order in PROTO_ORDERS:
        answer = call(platform, "POST", f"/v1/topics/{PROTO_TOPIC}/events", {"payload": order})
        published[str(answer["id"])] = (PROTO_TOPIC, order)
    answer = call(
        platform,
        "POST",
        f"/v1/topics/{AVRO_TOPIC}/events",
        avro_binary(AVRO_V1, AVRO_BINARY_ORDER),
        {"Content-Type": "application/vnd.apache.avro", "Conveyor-Schema-Version": "1"},
    )
    published[str(answer["id"])] = (AVRO_TOPIC, AVRO_BINARY_ORDER)
    answer = call(
        platform,
        "POST",
        f"/v1/topics/{PROTO_TOPIC}/events",
        protobuf.encode(protobuf.parse(PROTO), PROTO_BINARY_ORDER),
        {"Content-Type": "application/x-protobuf", "Conveyor-Schema-Version": "1"},
    )
    published[str(answer["id"])] = (PROTO_TOPIC, PROTO_BINARY_ORDER)

    # Then every subscription gets every event of its topic once, decoded to the original
    per_topic = Counter(topic for topic, _ in published.values())
    expected = {sub: per_topic[topic] for topic, subs in SUBSCRIPTIONS.items() for sub in subs}
    wait_for(lambda: len(platform.records()) >= sum(expected.values()), timeout=30)
    records = platform.records()
    assert Counter(str(r["sub"]) for r in records) == expected
    for record in records:
        sub = str(record["sub"])
        topic, original = published[str(record["id"])]
        assert sub in SUBSCRIPTIONS[topic]
        if sub == "avro-v2":
            # Version 2 of each event: note dropped, currency at its default
            v2 = {k: v for k, v in original.items() if k != "note"}
            assert record["payload"] == {**v2, "currency": "EUR"}, record
            assert (record["schema_id"], record["schema_version"]) == (ids["avro2"], 2)
            continue
        assert record["payload"] == original, record
        writer = ids["avro1"] if topic == AVRO_TOPIC else ids["proto1"]
        assert (record["schema_id"], record["schema_version"]) == (writer, 1)
    # And the context tells each format
    by_sub = {str(r["sub"]): r for r in records}
    assert by_sub["avro-json"]["content_type"] == "application/json"
    assert by_sub["avro-avro"]["content_type"] == "application/vnd.apache.avro"
    assert by_sub["proto-proto"]["content_type"] == "application/x-protobuf"
    assert by_sub["proto-ce"]["content_type"] == "application/x-protobuf"
    for sub in ("avro-ce", "avro-json-ce", "proto-ce"):
        cloudevent = by_sub[sub]["cloudevent"]
        topic, _ = published[str(by_sub[sub]["id"])]
        assert isinstance(cloudevent, dict)
        assert cloudevent["id"] == by_sub[sub]["id"]
        assert (cloudevent["specversion"], cloudevent["type"]) == ("1.0", topic)
        assert cloudevent["source"] == f"conveyor://{topic}"
    for sub in ("avro-json", "avro-avro", "avro-v2", "proto-json", "proto-proto"):
        assert by_sub[sub]["cloudevent"] is None
