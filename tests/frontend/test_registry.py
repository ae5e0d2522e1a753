"""The schema registry over a real store (SQLite and PostgreSQL): versions, ids, modes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from conveyor.clock import FakeClock
from conveyor.codecs import protobuf
from conveyor.errors import IncompatibleSchema, InvalidRequest, NotFound
from conveyor.frontend.registry import registry as registry_module
from conveyor.frontend.registry.registry import SchemaRegistry
from conveyor.model import SchemaType
from conveyor.node import open_store
from conveyor.store.base import Store, StoredSchema
from conveyor.wire.registry import Compatibility

JSON = SchemaType.JSON


def obj(required: list[str], **props: str) -> str:
    return json.dumps(
        {
            "type": "object",
            "properties": {name: {"type": kind} for name, kind in props.items()},
            "required": required,
            "additionalProperties": False,  # (a closed model: adding a property is compatible)
        }
    )


V1 = obj(["id"], id="string")
V2 = obj(["id"], id="string", note="string")  # adds an optional property
BREAKING = obj(["id", "amount"], id="string", amount="number")  # adds a required one


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def registry(store: Store) -> SchemaRegistry:
    return SchemaRegistry(store, FakeClock())


async def test_versions_are_numbered_per_subject_with_ids_global_and_identical_ones_reused(
    registry: SchemaRegistry,
) -> None:
    one, created_one = await registry.register("orders", JSON, V1)
    again, created_again = await registry.register("orders", JSON, json.dumps(json.loads(V1)))
    two, _ = await registry.register("orders", JSON, V2)
    other, _ = await registry.register("refunds", JSON, V1)

    assert (one.version, created_one) == (1, True)
    assert (again.id, again.version, created_again) == (one.id, 1, False)
    assert two.version == 2
    assert other.version == 1
    assert len({one.id, two.id, other.id}) == 3
    assert [v.version for v in await registry.versions("orders")] == [1, 2]
    assert (await registry.version("orders", None)).id == two.id
    assert (await registry.by_id(one.id)).stored.definition == V1


async def test_an_incompatible_version_is_refused_listing_each_breaking_change(
    registry: SchemaRegistry,
) -> None:
    await registry.register("orders", JSON, V1)

    with pytest.raises(IncompatibleSchema) as refused:
        await registry.register("orders", JSON, BREAKING)

    error = refused.value
    assert error.status == 409
    assert "BACKWARD" in error.message
    assert [(e.field, e.rule) for e in error.errors] == [("/properties/amount", "required_added")]
    # And nothing was stored
    assert [v.version for v in await registry.versions("orders")] == [1]


async def test_a_dry_run_reports_without_storing(registry: SchemaRegistry) -> None:
    await registry.register("orders", JSON, V1)

    bad = await registry.check("orders", JSON, BREAKING)
    good = await registry.check("orders", JSON, V2)

    assert (bad.compatible, bad.mode, bad.against) == (False, Compatibility.BACKWARD, [1])
    assert [b.rule for b in bad.breaking] == ["required_added"]
    assert (good.compatible, good.breaking) == (True, [])
    assert [v.version for v in await registry.versions("orders")] == [1]


async def test_modes_are_per_subject_with_a_registry_default(registry: SchemaRegistry) -> None:
    await registry.register("orders", JSON, V1)
    await registry.register("refunds", JSON, V1)

    assert await registry.set_compatibility("orders", Compatibility.NONE) is Compatibility.NONE
    accepted, _ = await registry.register("orders", JSON, BREAKING)
    assert accepted.version == 2
    with pytest.raises(IncompatibleSchema):
        await registry.register("refunds", JSON, BREAKING)

    await registry.set_compatibility(None, Compatibility.FORWARD)
    assert await registry.compatibility("refunds") is Compatibility.FORWARD
    assert await registry.compatibility("orders") is Compatibility.NONE
    assert await registry.set_compatibility("orders", None) is Compatibility.FORWARD


async def test_a_schema_that_does_not_parse_is_refused_naming_the_field(
    registry: SchemaRegistry,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await registry.register("orders", JSON, '{"type": "objekt"}')
    assert (refused.value.field, refused.value.rule) == ("/schema", "schema")
    with pytest.raises(NotFound):
        await registry.versions("orders")


async def test_a_subject_keeps_its_schema_type(registry: SchemaRegistry) -> None:
    await registry.register("orders", JSON, V1)
    avro = json.dumps({"type": "record", "name": "Order", "fields": []})
    with pytest.raises(IncompatibleSchema) as refused:
        await registry.register("orders", SchemaType.AVRO, avro)
    (change,) = refused.value.errors
    assert (change.rule, change.old, change.new) == ("type_changed", "json", "avro")


async def test_concurrent_registrations_get_distinct_versions(registry: SchemaRegistry) -> None:
    await registry.register("orders", JSON, V1)
    await registry.set_compatibility("orders", Compatibility.NONE)  # (numbering is the point)
    extras = [obj(["id"], id="string", **{f"f{i}": "string"}) for i in range(4)]

    await asyncio.gather(*(registry.register("orders", JSON, text) for text in extras))

    assert [v.version for v in await registry.versions("orders")] == [1, 2, 3, 4, 5]


# -- a registration is atomic: what is stored can be read (issue 13, item 4) ----------------

ONE_MEMBER_ONEOF = 'syntax = "proto3";\nmessage M { oneof o { int32 a = 1; } }\n'


async def test_a_one_member_oneof_registers_and_its_subject_stays_readable(
    store: Store, registry: SchemaRegistry
) -> None:
    # When a Protobuf schema whose oneof has one member is registered
    registered, created = await registry.register("m", SchemaType.PROTOBUF, ONE_MEMBER_ONEOF)

    # Then it is stored, and a registry that never saw it (another node) reads it back
    other = SchemaRegistry(store, FakeClock())
    latest = await other.version("m", None)
    by_id = await other.by_id(registered.id)
    assert created
    assert latest.id == by_id.id == registered.id
    # And its payloads are validated: the member is an int32
    assert latest.validator.is_valid({"a": 7})
    assert latest.validator.is_valid({})
    assert not latest.validator.is_valid({"a": "seven"})


async def test_an_empty_avro_union_registers_and_admits_no_payload(
    store: Store, registry: SchemaRegistry
) -> None:
    registered, _ = await registry.register("nothing", SchemaType.AVRO, "[]")

    schema = await SchemaRegistry(store, FakeClock()).by_id(registered.id)
    assert not schema.validator.is_valid(None)
    assert not schema.validator.is_valid({})


async def test_a_derived_form_that_does_not_build_stores_nothing(
    store: Store, registry: SchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a fault in building a derived form (the validator of the JSON form): no schema
    # is known to make one fail any more, so the fault is injected
    def broken(schema: object) -> object:
        raise InvalidRequest("schema is not a valid JSON Schema: injected", field="/schema")

    monkeypatch.setattr(registry_module, "compile_schema", broken)

    # When a valid schema is registered
    with pytest.raises(InvalidRequest) as refused:
        await registry.register("m", SchemaType.PROTOBUF, ONE_MEMBER_ONEOF)

    # Then neither the version nor the subject was stored, and the refusal names the schema
    assert await store.schemas_of("m") == []
    assert await store.list_subjects() == []
    assert (refused.value.field, refused.value.rule) == ("/schema", "schema")
    assert "injected" in refused.value.message


async def test_a_store_holding_a_version_written_by_the_broken_build_is_readable(
    store_url: str,
) -> None:
    # Given a store in which the build before issue 13 committed the one-member oneof and
    # then failed (the row is the one it wrote: the text, message and fingerprint are right;
    # only the JSON Schema it derived in memory was invalid)
    proto = protobuf.parse(ONE_MEMBER_ONEOF)
    row = StoredSchema(
        0, "m", 0, "protobuf", ONE_MEMBER_ONEOF, "M", proto.fingerprint(), 1_700_000_000_000
    )

    def accept(versions: list[StoredSchema], mode: str) -> None:
        del versions, mode

    async with open_store(store_url) as store:
        written, _ = await store.register_schema(row, "BACKWARD", accept)

    # When the store is opened again (its migrations run) by this build
    async with open_store(store_url) as store:
        registry = SchemaRegistry(store, FakeClock())
        latest = await registry.version("m", None)
        by_id = await registry.by_id(written.id)
        again, created = await registry.register("m", SchemaType.PROTOBUF, ONE_MEMBER_ONEOF)

    # Then the subject reads again, and registering the same schema finds that version
    assert latest.id == by_id.id == again.id == written.id
    assert not created
    assert latest.validator.is_valid({"a": 1})


async def test_a_protobuf_version_dropping_a_oneof_member_is_refused_in_backward(
    registry: SchemaRegistry,
) -> None:
    # Given a subject whose message has a oneof of two members
    two = 'syntax = "proto3";\nmessage M { oneof o { int32 a = 1; string b = 2; } }\n'
    one = 'syntax = "proto3";\nmessage M { oneof p { int32 a = 1; } }\n'
    await registry.register("m", SchemaType.PROTOBUF, two)

    # When a version drops a member while renaming the oneof
    with pytest.raises(IncompatibleSchema) as refused:
        await registry.register("m", SchemaType.PROTOBUF, one)

    # Then it is refused naming the dropped member, and nothing is stored
    assert [(e.field, e.rule) for e in refused.value.errors] == [
        ("/messages/M/fields/b", "oneof_field_removed")
    ]
    assert [v.version for v in await registry.versions("m")] == [1]
