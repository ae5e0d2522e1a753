"""The schema registry through the SDK and ``conveyor schema``, against a real node on
127.0.0.1 (on every store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from conveyor import Client
from conveyor.cli import app
from conveyor.errors import IncompatibleSchema, InvalidRequest, NotFound
from conveyor.model import SchemaSettings
from conveyor.wire.registry import Compatibility
from dead_letters_platform import ThreadedPlatform

V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
V2 = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "int", "default": 0}],
}
BAD = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int"}]}
PROTO = 'syntax = "proto3";\npackage shop;\nmessage Order { string id = 1; int64 amount = 2; }\n'


@pytest.fixture
def client(platform: ThreadedPlatform) -> Iterator[Client]:
    with Client(platform.url) as opened:
        yield opened


def cli(server: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["schema", *args, "--server", server])


def test_the_sdk_registers_checks_lists_and_shows(client: Client) -> None:
    first = client.register_schema("orders", V1, type="avro")
    second = client.register_schema("orders", json.dumps(V2), type="avro")
    proto = client.register_schema("payments", PROTO, type="protobuf", message="shop.Order")

    assert (first.version, second.version, proto.version) == (1, 2, 1)
    assert client.check_schema("orders", BAD, type="avro").compatible is False
    assert [(s.name, s.versions) for s in client.list_subjects()] == [
        ("orders", [1, 2]),
        ("payments", [1]),
    ]
    assert client.get_schema("orders").version == 2
    assert client.get_schema("orders", 1).id == first.id
    assert client.get_schema_by_id(proto.id).message == "shop.Order"
    assert client.set_compatibility("NONE", subject="orders") is Compatibility.NONE
    assert client.get_compatibility(subject="orders") is Compatibility.NONE
    assert client.get_compatibility() is Compatibility.BACKWARD


def test_the_sdk_raises_what_a_caller_can_act_on(client: Client) -> None:
    client.register_schema("orders", V1, type="avro")
    with pytest.raises(IncompatibleSchema) as refused:
        client.register_schema("orders", BAD, type="avro")
    (change,) = refused.value.errors
    assert change.rule == "type_changed"
    with pytest.raises(InvalidRequest) as bad:
        client.register_schema("orders", "message {", type="protobuf")
    assert bad.value.field == "/schema"
    with pytest.raises(NotFound):
        client.get_schema("nope")


def test_the_cli_registers_from_files_and_reports_breaking_changes(
    platform: ThreadedPlatform, tmp_path: Path
) -> None:
    v1, bad, proto = tmp_path / "v1.avsc", tmp_path / "bad.avsc", tmp_path / "order.proto"
    v1.write_text(json.dumps(V1))
    bad.write_text(json.dumps(BAD))
    proto.write_text(PROTO)

    registered = cli(platform.url, "register", "orders", str(v1))
    checked = cli(platform.url, "check", "orders", str(bad))
    refused = cli(platform.url, "register", "orders", str(bad))
    protobuf = cli(platform.url, "register", "payments", str(proto), "--json")
    listed = cli(platform.url, "list", "--json")
    shown = cli(platform.url, "show", "orders", "--version", "1")
    mode = cli(platform.url, "compatibility", "FULL", "--subject", "orders")

    assert registered.exit_code == 0, registered.output
    assert "orders version 1" in registered.output
    assert checked.exit_code == 1
    assert "type_changed" in checked.output
    assert refused.exit_code != 0
    assert "type_changed" in refused.output or "BACKWARD" in refused.output
    assert json.loads(protobuf.stdout)["version"] == 1
    assert [s["name"] for s in json.loads(listed.stdout)] == ["orders", "payments"]
    assert json.loads(json.loads(shown.stdout)["schema"]) == V1
    assert mode.exit_code == 0
    assert "orders: FULL" in mode.output


def test_the_cli_refuses_show_without_a_subject_or_id(platform: ThreadedPlatform) -> None:
    result = cli(platform.url, "show")
    assert result.exit_code == 2
    assert "give a subject, or --id" in result.output


def test_the_sdk_publishes_a_partial_batch(client: Client) -> None:
    client.register_schema("orders", V1, type="avro")
    client.create_topic("invoices", schema_settings=SchemaSettings("orders"))

    result = client.publish_batch_partial(
        "invoices", [{"payload": {"id": "a"}}, {"payload": {"id": 1}}, {"payload": {"id": "c"}}]
    )

    assert [r.index for r in result.results] == [0, 2]
    (rejected,) = result.rejected
    assert (rejected.index, rejected.field, rejected.rule) == (1, "/events/1/payload/id", "type")
    assert client.get_event(result.results[1].id).schema_id is not None
