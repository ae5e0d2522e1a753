"""The schema registry over a real store (SQLite and PostgreSQL): versions, ids, modes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import IncompatibleSchema, InvalidRequest, NotFound
from conveyor.frontend.registry.modes import Compatibility
from conveyor.frontend.registry.registry import SchemaRegistry
from conveyor.model import SchemaType
from conveyor.node import open_store
from conveyor.store.base import Store

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
