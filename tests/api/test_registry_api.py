"""The schema registry over HTTP (aiohttp's TestServer on 127.0.0.1), on every real store:
register, check, list, show, compatibility, topics bound to a subject, and the errors a
publisher can act on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conveyor.api.app import build_app
from conveyor.clock import FakeClock
from conveyor.node import Node
from conveyor.settings import NodeSettings

Client = TestClient[web.Request, web.Application]

ORDER_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}],
}
ORDER_V2 = {  # adds a field with a default: BACKWARD compatible
    **ORDER_V1,
    "fields": [*ORDER_V1["fields"], {"name": "note", "type": "string", "default": ""}],
}
ORDER_BAD = {  # changes a type: not compatible
    **ORDER_V1,
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "boolean"}],
}


@pytest.fixture
async def client(store_url: str) -> AsyncIterator[Client]:
    async with (
        Node(NodeSettings(store=store_url), clock=FakeClock()) as node,
        TestClient(TestServer(build_app(node))) as opened,
    ):
        yield opened


def avro(schema: object) -> dict[str, object]:
    return {"schema": json.dumps(schema), "type": "avro"}


async def test_register_list_show_and_reuse_identical_versions(client: Client) -> None:
    first = await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V1))
    again = await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V1))
    second = await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V2))

    assert first.status == 201
    assert again.status == 200
    assert second.status == 201
    one, two = await first.json(), await second.json()
    assert (await again.json())["id"] == one["id"]
    assert (one["version"], two["version"]) == (1, 2)

    subjects = await (await client.get("/v1/subjects")).json()
    assert subjects == [
        {
            "name": "orders",
            "compatibility": "BACKWARD",
            "versions": [1, 2],
            "own_compatibility": False,
        }
    ]
    latest = await (await client.get("/v1/subjects/orders/versions/latest")).json()
    by_id = await (await client.get(f"/v1/schemas/{one['id']}")).json()
    assert (latest["version"], latest["type"]) == (2, "avro")
    assert json.loads(by_id["schema"]) == ORDER_V1
    assert await (await client.get("/v1/subjects/orders/versions")).json() == [1, 2]


async def test_an_incompatible_version_is_a_409_listing_field_rule_old_and_new(
    client: Client,
) -> None:
    await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V1))

    refused = await client.post("/v1/subjects/orders/versions", json=avro(ORDER_BAD))
    dry = await client.post("/v1/subjects/orders/check", json=avro(ORDER_BAD))

    assert refused.status == 409
    error = (await refused.json())["error"]
    assert error["code"] == "incompatible_schema"
    (change,) = error["errors"]
    assert change["rule"] == "type_changed"
    assert "amount" in change["field"]
    assert (change["old"], change["new"]) == ("long", "boolean")
    report = await dry.json()
    assert report["compatible"] is False
    assert report["against"] == [1]
    assert [b["rule"] for b in report["breaking"]] == ["type_changed"]
    assert await (await client.get("/v1/subjects/orders/versions")).json() == [1]


async def test_compatibility_is_set_per_subject_and_by_default(client: Client) -> None:
    await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V1))
    put = await client.put("/v1/subjects/orders/compatibility", json={"compatibility": "NONE"})
    assert (await put.json()) == {"compatibility": "NONE"}
    accepted = await client.post("/v1/subjects/orders/versions", json=avro(ORDER_BAD))
    assert accepted.status == 201

    default = await client.put("/v1/config/compatibility", json={"compatibility": "FULL"})
    assert (await default.json()) == {"compatibility": "FULL"}
    no_mode = await client.put("/v1/config/compatibility", json={"compatibility": None})
    assert no_mode.status == 400
    bad_mode = await client.put("/v1/config/compatibility", json={"compatibility": "SOMETIMES"})
    assert bad_mode.status == 400
    assert (await bad_mode.json())["error"]["field"] == "/compatibility"


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "rule"),
    [
        pytest.param("/v1/subjects/orders/versions", {"schema": "{", "type": "avro"}, 400,
                     "/schema", "schema", id="not JSON"),
        pytest.param("/v1/subjects/orders/versions", avro({"type": "record", "name": "X"}),
                     400, "/schema", "schema", id="a record without fields"),
        pytest.param("/v1/subjects/orders/versions", {"schema": "x", "type": "yaml"}, 400,
                     "/type", None, id="unknown type"),
        pytest.param("/v1/subjects/or ders/versions", avro(ORDER_V1), 400, "/subject",
                     "pattern", id="bad subject name"),
    ],
)  # fmt: skip
async def test_a_bad_registration_names_the_field_and_rule(  # noqa: PLR0917
    client: Client, path: str, body: object, status: int, field: str, rule: str | None
) -> None:
    refused = await client.post(path, json=body)
    assert refused.status == status
    error = (await refused.json())["error"]
    assert error["field"] == field
    if rule is not None:
        assert error["rule"] == rule


async def test_unknown_subjects_versions_and_ids_are_404(client: Client) -> None:
    assert (await client.get("/v1/subjects/nope/versions")).status == 404
    assert (await client.get("/v1/subjects/nope/versions/latest")).status == 404
    assert (await client.get("/v1/schemas/999")).status == 404
    assert (await client.get("/v1/subjects/nope/versions/zero")).status == 400


async def test_a_bound_topic_validates_each_event_and_records_its_schema_id(
    client: Client,
) -> None:
    one = await (await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V1))).json()
    two = await (await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V2))).json()
    bound = await client.post(
        "/v1/topics", json={"name": "orders", "schema_settings": {"subject": "orders"}}
    )
    assert bound.status == 201

    # A valid event is stored with the newest version's id, or the version it names
    latest = await client.post(
        "/v1/topics/orders/events", json={"payload": {"id": "a", "amount": 5, "note": "x"}}
    )
    pinned = await client.post(
        "/v1/topics/orders/events",
        json={"payload": {"id": "b", "amount": 6}, "schema_version": 1},
    )
    assert latest.status == pinned.status == 201
    for answer, schema in ((latest, two), (pinned, one)):
        view = await (await client.get(f"/v1/events/{(await answer.json())['id']}")).json()
        assert view["schema_id"] == schema["id"]

    # An invalid one names the field, the rule, and the schema it broke
    refused = await client.post(
        "/v1/topics/orders/events", json={"payload": {"id": "c", "amount": "many"}}
    )
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert (error["field"], error["rule"]) == ("/payload/amount", "type")
    assert (error["schema_id"], error["schema_version"]) == (two["id"], 2)

    # A version outside the topic's range is refused
    late = await client.post(
        "/v1/topics/orders/events", json={"payload": {"id": "d", "amount": 1}, "schema_version": 7}
    )
    assert late.status == 400
    assert (await late.json())["error"]["rule"] == "exists"


async def test_binding_a_topic_to_an_unknown_subject_is_refused(client: Client) -> None:
    refused = await client.post(
        "/v1/topics", json={"name": "orders", "schema_settings": {"subject": "ghost"}}
    )
    assert refused.status == 400
    error = (await refused.json())["error"]
    assert (error["field"], error["rule"]) == ("/schema_settings/subject", "exists")
    both = await client.post(
        "/v1/topics",
        json={"name": "orders", "schema": {}, "schema_settings": {"subject": "ghost"}},
    )
    assert both.status == 400


async def test_a_partial_batch_stores_the_valid_events_and_lists_the_others(
    client: Client,
) -> None:
    await client.post("/v1/subjects/orders/versions", json=avro(ORDER_V1))
    await client.post(
        "/v1/topics", json={"name": "orders", "schema_settings": {"subject": "orders"}}
    )
    events = [
        {"payload": {"id": "a", "amount": 1}},
        {"payload": {"id": "b", "amount": "two"}},
        {"payload": {"id": "c", "amount": 3}},
    ]

    whole = await client.post("/v1/topics/orders/events/batch", json={"events": events})
    partial = await client.post(
        "/v1/topics/orders/events/batch?partial=true", json={"events": events}
    )
    none_valid = await client.post(
        "/v1/topics/orders/events/batch?partial=true", json={"events": events[1:2]}
    )
    bad_flag = await client.post(
        "/v1/topics/orders/events/batch?partial=maybe", json={"events": events}
    )

    assert whole.status == 422  # all or nothing by default
    assert partial.status == 201
    body = await partial.json()
    assert [r["index"] for r in body["results"]] == [0, 2]
    (rejected,) = body["rejected"]
    assert (rejected["index"], rejected["field"], rejected["rule"], rejected["code"]) == (
        1,
        "/events/1/payload/amount",
        "type",
        "schema_violation",
    )
    assert none_valid.status == 200  # processed, nothing created
    assert (await none_valid.json())["results"] == []
    assert bad_flag.status == 400
    assert (await bad_flag.json())["error"]["field"] == "/query/partial"
    stored = [await (await client.get(f"/v1/events/{r['id']}")).json() for r in body["results"]]
    assert [e["payload"]["id"] for e in stored] == ["a", "c"]


async def test_a_one_member_oneof_registers_and_its_subject_stays_readable(
    client: Client,
) -> None:
    # When a Protobuf schema whose oneof has a single member is registered over HTTP
    proto = 'syntax = "proto3";\nmessage M { oneof o { int32 a = 1; } }\n'
    registered = await client.post(
        "/v1/subjects/m/versions", json={"schema": proto, "type": "protobuf"}
    )

    # Then it is created, and the subject's latest version and the schema by id read back
    assert registered.status == 201
    schema_id = (await registered.json())["id"]
    latest = await client.get("/v1/subjects/m/versions/latest")
    by_id = await client.get(f"/v1/schemas/{schema_id}")
    assert (latest.status, by_id.status) == (200, 200)
    assert (await latest.json())["id"] == schema_id

    # And a topic bound to it takes a valid event and refuses an invalid one
    bound = await client.post("/v1/topics", json={"name": "m", "schema_settings": {"subject": "m"}})
    assert bound.status == 201
    good = await client.post("/v1/topics/m/events", json={"payload": {"a": 7}})
    bad = await client.post("/v1/topics/m/events", json={"payload": {"a": "seven"}})
    assert good.status == 201
    assert bad.status == 422
    assert (await bad.json())["error"]["field"] == "/payload/a"


async def test_draft_07_and_2019_09_documents_register_validate_and_evolve(
    client: Client,
) -> None:
    # Given a draft-07 document with array-form items and dependencies
    v1 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
            "card": {"type": "string"},
            "cvv": {"type": "string"},
        },
        "dependencies": {"card": ["cvv"]},
        "additionalProperties": False,
    }
    # And its next version in 2019-09's words, with one more optional property
    v2 = {
        **v1,
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "properties": {**v1["properties"], "note": {"type": "string"}},  # type: ignore[dict-item]
        "dependentRequired": {"card": ["cvv"]},
    }
    del v2["dependencies"]

    # When both are registered
    first = await client.post("/v1/subjects/pay/versions", json={"schema": json.dumps(v1)})
    second = await client.post("/v1/subjects/pay/versions", json={"schema": json.dumps(v2)})

    # Then both are accepted, the second as BACKWARD compatible
    assert (first.status, second.status) == (201, 201)
    assert (await second.json())["version"] == 2

    # And a bound topic validates payloads under the first version's draft
    bound = await client.post(
        "/v1/topics",
        json={"name": "pay", "schema_settings": {"subject": "pay", "last_version": 1}},
    )
    assert bound.status == 201
    good = await client.post("/v1/topics/pay/events", json={"payload": {"pair": ["a", 1]}})
    no_cvv = await client.post("/v1/topics/pay/events", json={"payload": {"card": "4111"}})
    bad_pair = await client.post("/v1/topics/pay/events", json={"payload": {"pair": [1]}})
    assert good.status == 201
    assert (no_cvv.status, bad_pair.status) == (422, 422)
    assert (await bad_pair.json())["error"]["field"] == "/payload/pair/0"
