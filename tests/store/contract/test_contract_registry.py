"""RegistryPort: schema versions per subject, and compatibility modes."""

from __future__ import annotations

import contract_kit
import pytest

from conveyor.errors import Conflict, ConveyorError
from conveyor.store.base import StoredSchema
from conveyor.store.ports import RegistryPort

store_fixture = contract_kit.opened_store


def candidate(fingerprint: str) -> StoredSchema:
    return StoredSchema(0, "orders-value", 0, "json", "{}", None, fingerprint, 5)


def accept(versions: list[StoredSchema], mode: str) -> None:
    del versions, mode


async def test_versions_number_from_one_and_a_known_schema_is_not_stored_again(
    store: RegistryPort,
) -> None:
    first, created = await store.register_schema(candidate("a"), "BACKWARD", accept)
    assert (first.version, created) == (1, True)
    second, _ = await store.register_schema(candidate("b"), "BACKWARD", accept)
    again, created = await store.register_schema(candidate("a"), "BACKWARD", accept)
    assert (second.version, again, created) == (2, first, False)
    assert await store.schemas_of("orders-value") == [first, second]
    assert await store.schema_by_id(second.id) == second
    assert await store.schema_by_id(second.id + 100) is None


async def test_a_refused_schema_stores_no_version(store: RegistryPort) -> None:
    seen: list[str] = []

    def refuse(versions: list[StoredSchema], mode: str) -> None:
        seen.append(mode)
        raise Conflict("no")

    await store.set_compatibility("orders-value", "FULL")
    with pytest.raises(ConveyorError):
        await store.register_schema(candidate("a"), "BACKWARD", refuse)
    assert seen == ["FULL"]
    (subject,) = await store.list_subjects()
    assert (subject.name, subject.compatibility, subject.versions) == ("orders-value", "FULL", [])


async def test_the_default_compatibility_is_set_and_cleared(store: RegistryPort) -> None:
    assert await store.default_compatibility() is None
    await store.set_compatibility(None, "NONE")
    assert await store.default_compatibility() == "NONE"
    await store.set_compatibility(None, None)
    assert await store.default_compatibility() is None
