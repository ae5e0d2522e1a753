"""Avro schema compatibility: the specification's resolution rules, and every mode."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from conveyor.frontend.registry import avro
from conveyor.frontend.registry.modes import breaking_changes
from conveyor.wire.registry import Compatibility

MODES = list(Compatibility)
PASSES = {
    # The strongest mode an evolution passes, and so every mode it passes.
    "FULL": set(MODES),
    "BACKWARD": {Compatibility.NONE, Compatibility.BACKWARD, Compatibility.BACKWARD_TRANSITIVE},
    "FORWARD": {Compatibility.NONE, Compatibility.FORWARD, Compatibility.FORWARD_TRANSITIVE},
    "NONE": {Compatibility.NONE},
}


def parse(schema: object) -> avro.AvroSchema:
    return avro.parse(json.dumps(schema))


def order(*fields: dict[str, object], name: str = "Order", **extra: object) -> dict[str, object]:
    """A record ``shop.Order`` with an ``id`` field and ``fields``."""
    return {
        "type": "record",
        "name": name,
        "namespace": "shop",
        **extra,
        "fields": [{"name": "id", "type": "int"}, *fields],
    }


def field(name: str, type_: object, **extra: object) -> dict[str, object]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, **extra: object) -> dict[str, object]:
    return {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}


def address(zip_type: str, *more: dict[str, object]) -> dict[str, object]:
    return {
        "type": "record",
        "name": "Address",
        "fields": [{"name": "zip", "type": zip_type}, *more],
    }


def fixed(size: int) -> dict[str, object]:
    return {"type": "fixed", "name": "Hash", "size": size}


def decimal(scale: int) -> dict[str, object]:
    return {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": scale}


Finding = tuple[str, str]  # (path, rule)


@dataclass(frozen=True)
class Evolution:
    """Version ``old`` then ``new``; what BACKWARD and FORWARD report; the strongest mode."""

    old: dict[str, object]
    new: dict[str, object]
    backward: tuple[Finding, ...]
    forward: tuple[Finding, ...]
    passes: str


EVOLUTIONS = [
    pytest.param(
        Evolution(
            order(),
            order(field("note", ["null", "string"], default=None)),
            (),
            (),
            "FULL",
        ),
        id="add optional field with default",
    ),
    pytest.param(
        Evolution(
            order(),
            order(field("note", ["null", "string"])),
            (("/fields/note", "field_added_without_default"),),
            (),
            "FORWARD",
        ),
        id="add optional field without default",
    ),
    pytest.param(
        Evolution(
            order(),
            order(field("amount", "double")),
            (("/fields/amount", "field_added_without_default"),),
            (),
            "FORWARD",
        ),
        id="add required field",
    ),
    pytest.param(
        Evolution(order(field("note", "string", default="")), order(), (), (), "FULL"),
        id="remove field that had a default",
    ),
    pytest.param(
        Evolution(
            order(field("note", "string")),
            order(),
            (),
            (("/fields/note", "field_added_without_default"),),
            "BACKWARD",
        ),
        id="remove field that had no default",
    ),
    pytest.param(
        Evolution(
            order(field("qty", "int")),
            order(field("qty", "string")),
            (("/fields/qty", "type_changed"),),
            (("/fields/qty", "type_changed"),),
            "NONE",
        ),
        id="change type int to string",
    ),
    pytest.param(
        Evolution(
            order(field("qty", "int")),
            order(field("qty", "long")),
            (),
            (("/fields/qty", "type_changed"),),
            "BACKWARD",
        ),
        id="promote int to long",
    ),
    pytest.param(
        Evolution(
            order(field("price", "float")),
            order(field("price", "double")),
            (),
            (("/fields/price", "type_changed"),),
            "BACKWARD",
        ),
        id="promote float to double",
    ),
    pytest.param(
        Evolution(order(field("b", "string")), order(field("b", "bytes")), (), (), "FULL"),
        id="string to bytes both ways",
    ),
    pytest.param(
        Evolution(
            order(field("amount", "double")),
            order(field("total", "double")),
            (("/fields/total", "field_added_without_default"),),
            (("/fields/amount", "field_added_without_default"),),
            "NONE",
        ),
        id="rename field without alias",
    ),
    pytest.param(
        Evolution(
            order(field("amount", "double")),
            order(field("total", "double", aliases=["amount"])),
            (),
            (("/fields/amount", "field_added_without_default"),),
            "BACKWARD",
        ),
        id="rename field with alias",
    ),
    pytest.param(
        Evolution(
            order(),
            order(name="Purchase"),
            (("/", "name_changed"),),
            (("/", "name_changed"),),
            "NONE",
        ),
        id="rename record without alias",
    ),
    pytest.param(
        Evolution(
            order(),
            order(name="Purchase", aliases=["Order"]),
            (),
            (("/", "name_changed"),),
            "BACKWARD",
        ),
        id="rename record with alias",
    ),
    pytest.param(
        Evolution(
            order(field("status", enum("A", "B"))),
            order(field("status", enum("A", "B", "C"))),
            (),
            (("/fields/status", "enum_narrowed"),),
            "BACKWARD",
        ),
        id="enum widen without default",
    ),
    pytest.param(
        Evolution(
            order(field("status", enum("A", "B", "C"))),
            order(field("status", enum("A", "B"))),
            (("/fields/status", "enum_narrowed"),),
            (),
            "FORWARD",
        ),
        id="enum narrow without default",
    ),
    pytest.param(
        Evolution(
            order(field("status", enum("A", "B", default="A"))),
            order(field("status", enum("A", "B", "C", default="A"))),
            (),
            (),
            "FULL",
        ),
        id="enum widen with default",
    ),
    pytest.param(
        Evolution(
            order(field("status", enum("A", "B", "C", default="A"))),
            order(field("status", enum("A", "B", default="A"))),
            (),
            (),
            "FULL",
        ),
        id="enum narrow with default",
    ),
    pytest.param(
        Evolution(
            order(field("v", ["null", "int"])),
            order(field("v", ["null", "int", "string"])),
            (),
            (("/fields/v/string", "union_narrowed"),),
            "BACKWARD",
        ),
        id="union widen",
    ),
    pytest.param(
        Evolution(
            order(field("v", ["null", "int", "string"])),
            order(field("v", ["null", "int"])),
            (("/fields/v/string", "union_narrowed"),),
            (),
            "FORWARD",
        ),
        id="union narrow",
    ),
    pytest.param(
        Evolution(
            order(field("v", ["null", "int"])),
            order(field("v", "int")),
            (("/fields/v/null", "union_narrowed"),),
            (),
            "FORWARD",
        ),
        id="union narrowed to its one remaining type",
    ),
    pytest.param(
        Evolution(
            order(field("v", "int")),
            order(field("v", ["null", "int"])),
            (),
            (("/fields/v/null", "union_narrowed"),),
            "BACKWARD",
        ),
        id="type widened to a union",
    ),
    pytest.param(
        Evolution(
            order(field("hash", fixed(16))),
            order(field("hash", fixed(32))),
            (("/fields/hash", "size_changed"),),
            (("/fields/hash", "size_changed"),),
            "NONE",
        ),
        id="fixed size change",
    ),
    pytest.param(
        Evolution(
            order(field("address", address("string"))),
            order(field("address", address("int"))),
            (("/fields/address/fields/zip", "type_changed"),),
            (("/fields/address/fields/zip", "type_changed"),),
            "NONE",
        ),
        id="nested record field type change",
    ),
    pytest.param(
        Evolution(
            order(field("address", address("string"))),
            order(field("address", address("string", field("city", "string", default="")))),
            (),
            (),
            "FULL",
        ),
        id="nested record gains a field with default",
    ),
    pytest.param(
        Evolution(
            order(field("tags", {"type": "array", "items": "int"})),
            order(field("tags", {"type": "array", "items": "long"})),
            (),
            (("/fields/tags/items", "type_changed"),),
            "BACKWARD",
        ),
        id="array item promoted",
    ),
    pytest.param(
        Evolution(
            order(field("tags", {"type": "array", "items": "string"})),
            order(field("tags", {"type": "array", "items": "int"})),
            (("/fields/tags/items", "type_changed"),),
            (("/fields/tags/items", "type_changed"),),
            "NONE",
        ),
        id="array item type change",
    ),
    pytest.param(
        Evolution(
            order(field("attrs", {"type": "map", "values": "string"})),
            order(field("attrs", {"type": "map", "values": "int"})),
            (("/fields/attrs/values", "type_changed"),),
            (("/fields/attrs/values", "type_changed"),),
            "NONE",
        ),
        id="map value type change",
    ),
    pytest.param(
        Evolution(
            order(field("attrs", {"type": "map", "values": "float"})),
            order(field("attrs", {"type": "map", "values": "double"})),
            (),
            (("/fields/attrs/values", "type_changed"),),
            "BACKWARD",
        ),
        id="map value promoted",
    ),
    pytest.param(
        Evolution(
            order(field("price", decimal(2))),
            order(field("price", decimal(4))),
            (("/fields/price", "logical_type_changed"),),
            (("/fields/price", "logical_type_changed"),),
            "NONE",
        ),
        id="decimal scale change (conservative: the spec ignores logical types)",
    ),
    pytest.param(
        Evolution(order(), {**order(), "namespace": "billing"}, (), (), "FULL"),
        id="namespace change (records match by unqualified name)",
    ),
]


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("case", EVOLUTIONS)
def test_an_evolution_has_the_expected_verdict_under_every_mode(
    case: Evolution, mode: Compatibility
) -> None:
    # Given two versions, When the new one is checked in a mode, Then it passes or not
    found = breaking_changes(mode, parse(case.new), [parse(case.old)], avro.check)
    assert (found == []) is (mode in PASSES[case.passes]), found


@pytest.mark.parametrize("case", EVOLUTIONS)
def test_an_evolution_reports_each_breaking_change_with_its_path_and_rule(
    case: Evolution,
) -> None:
    old, new = parse(case.old), parse(case.new)
    backward = breaking_changes(Compatibility.BACKWARD, new, [old], avro.check)
    forward = breaking_changes(Compatibility.FORWARD, new, [old], avro.check)
    assert [(b.path, b.rule) for b in backward] == list(case.backward)
    assert [(b.path, b.rule) for b in forward] == list(case.forward)
    assert all(b.message for b in [*backward, *forward])


def test_old_and_new_describe_the_old_and_new_schema_in_both_directions() -> None:
    old = parse(order(field("qty", "int")))
    new = parse(order(field("qty", "long")))
    back = breaking_changes(Compatibility.BACKWARD, old, [new], avro.check)
    fwd = breaking_changes(Compatibility.FORWARD, new, [old], avro.check)
    # long → int breaks in both checks; "old" is the earlier version's type each time
    assert [(b.old, b.new) for b in back] == [("long", "int")]
    assert [(b.old, b.new) for b in fwd] == [("int", "long")]


# Three versions: the new one is compatible with the latest, not with the first.
V1 = order(field("a", "int"))
V2 = order()
V3 = order(field("a", "string", default=""))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (Compatibility.NONE, []),
        (Compatibility.BACKWARD, []),
        (Compatibility.BACKWARD_TRANSITIVE, [("/fields/a", "type_changed")]),
        (Compatibility.FORWARD, []),
        (Compatibility.FORWARD_TRANSITIVE, [("/fields/a", "type_changed")]),
        (Compatibility.FULL, []),
        # both directions break: int cannot be read as string, nor string as int
        (Compatibility.FULL_TRANSITIVE, [("/fields/a", "type_changed")] * 2),
    ],
    ids=str,
)
def test_transitive_modes_check_every_earlier_version(
    mode: Compatibility, expected: list[Finding]
) -> None:
    # Given v1 {a: int}, v2 {} and v3 {a: string = ""}: v3 reads v2 (default) but not v1
    found = breaking_changes(mode, parse(V3), [parse(V1), parse(V2)], avro.check)
    assert [(b.path, b.rule) for b in found] == expected


def test_a_transitive_enum_narrowing_is_caught_against_the_first_version() -> None:
    v1 = order(field("s", enum("A", "B", "C")))
    v2 = order(field("s", enum("A", "B")))
    v3 = order(field("s", enum("A", "B", "D")))
    history = [parse(v1), parse(v2)]
    assert breaking_changes(Compatibility.BACKWARD, parse(v3), history, avro.check) == []
    found = breaking_changes(Compatibility.BACKWARD_TRANSITIVE, parse(v3), history, avro.check)
    assert [(b.path, b.rule, b.old, b.new) for b in found] == [
        ("/fields/s", "enum_narrowed", "{A, B, C}", "{A, B, D}")
    ]


def test_the_first_version_is_compatible_under_every_mode() -> None:
    assert all(breaking_changes(m, parse(V1), [], avro.check) == [] for m in MODES)


# The specification's promotions, verbatim: the writer's type may be read as the reader's.
PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
    ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string"),
}  # fmt: skip
PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]


@pytest.mark.parametrize("reader", PRIMITIVES)
@pytest.mark.parametrize("writer", PRIMITIVES)
def test_spec_primitives_match_when_equal_or_promotable(writer: str, reader: str) -> None:
    # Spec: "both schemas are primitives of the same type", or the writer's is promotable
    found = avro.check(parse(reader), parse(writer))
    if writer == reader or (writer, reader) in PROMOTIONS:
        assert found == []
    else:
        assert [(b.path, b.rule, b.old, b.new) for b in found] == [
            ("/", "type_changed", writer, reader)
        ]


SPEC = [
    pytest.param(
        order(field("a", "int")),
        order(field("a", "int"), field("b", "string")),
        [],
        id="spec: writer field not in reader is ignored",
    ),
    pytest.param(
        order(field("a", "int"), field("b", "string", default="x")),
        order(field("a", "int")),
        [],
        id="spec: reader field not in writer uses its default",
    ),
    pytest.param(
        order(field("a", "int"), field("b", "string")),
        order(field("a", "int")),
        [("/fields/b", "field_added_without_default")],
        id="spec: reader field not in writer without default is an error",
    ),
    pytest.param(
        order(field("renamed", "int", aliases=["a"])),
        order(field("a", "int")),
        [],
        id="spec: reader field alias matches writer field",
    ),
    pytest.param(
        order(field("a", "long")),
        order(field("a", "int")),
        [],
        id="spec: fields are matched by name and their schemas recursively resolved",
    ),
    pytest.param(
        {**order(), "namespace": "other"},
        order(),
        [],
        id="spec: records match by unqualified name",
    ),
    pytest.param(
        order(name="Purchase", aliases=["shop.Order"]),
        order(),
        [],
        id="spec: reader alias (full name) matches the writer's record name",
    ),
    pytest.param(
        enum("A", "B", default="A"),
        enum("A", "B", "C"),
        [],
        id="spec: writer symbol not in reader enum uses the reader's default",
    ),
    pytest.param(
        enum("A", "B"),
        enum("A", "B", "C"),
        [("/", "enum_narrowed")],
        id="spec: writer symbol not in reader enum without default is an error",
    ),
    pytest.param(
        {**enum("A"), "name": "Other"},
        enum("A"),
        [("/", "name_changed")],
        id="spec: enums must have the same unqualified name",
    ),
    pytest.param(
        ["null", "long", "string"],
        ["int", "null"],
        [],
        id="spec: both unions, each writer branch resolves against the first matching",
    ),
    pytest.param(
        ["null", "string"],
        ["null", "int"],
        [("/int", "union_narrowed")],
        id="spec: both unions, a writer branch matching no reader branch is an error",
    ),
    pytest.param(
        ["null", "double"],
        "int",
        [],
        id="spec: reader union, writer not: the first branch the writer matches",
    ),
    pytest.param(
        ["null", "string"],
        "int",
        [("/", "type_changed")],
        id="spec: reader union, writer not: no branch matches is an error",
    ),
    pytest.param(
        "long",
        ["int", "long"],
        [],
        id="spec: writer union, reader not: every branch matches the reader",
    ),
    pytest.param(
        "long",
        ["int", "string"],
        [("/string", "union_narrowed")],
        id="spec: writer union, reader not: a branch that does not match is an error",
    ),
    pytest.param(
        fixed(16),
        fixed(16),
        [],
        id="spec: fixeds with the same size and name",
    ),
    pytest.param(
        {**fixed(16), "name": "Digest"},
        fixed(16),
        [("/", "name_changed")],
        id="spec: fixeds with another name do not match",
    ),
    pytest.param(
        {"type": "array", "items": "double"},
        {"type": "array", "items": "float"},
        [],
        id="spec: arrays whose item types match",
    ),
    pytest.param(
        {"type": "map", "values": "bytes"},
        {"type": "map", "values": "string"},
        [],
        id="spec: maps whose value types match",
    ),
    pytest.param(
        {"type": "array", "items": "int"},
        {"type": "map", "values": "int"},
        [("/", "type_changed")],
        id="spec: an array does not match a map",
    ),
    pytest.param(
        {
            "type": "record",
            "name": "Node",
            "fields": [
                {"name": "value", "type": "long"},
                {"name": "next", "type": ["null", "Node"]},
                {"name": "label", "type": "string", "default": ""},
            ],
        },
        {
            "type": "record",
            "name": "Node",
            "fields": [
                {"name": "value", "type": "int"},
                {"name": "next", "type": ["null", "Node"]},
            ],
        },
        [],
        id="spec: named type references resolve recursively",
    ),
    pytest.param(
        {
            "type": "record",
            "name": "Node",
            "fields": [{"name": "next", "type": ["null", "Node"]}, {"name": "v", "type": "int"}],
        },
        {
            "type": "record",
            "name": "Node",
            "fields": [{"name": "next", "type": ["null", "Node"]}, {"name": "v", "type": "long"}],
        },
        [("/fields/v", "type_changed")],
        id="spec: a recursive type that does not resolve is reported once",
    ),
]


@pytest.mark.parametrize(("reader", "writer", "expected"), SPEC)
def test_spec_schema_resolution_rule(
    reader: object, writer: object, expected: list[Finding]
) -> None:
    found = avro.check(parse(reader), parse(writer))
    assert [(b.path, b.rule) for b in found] == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not JSON"),
        ('"nope"', "nope"),
        ('{"type": "fixed", "name": "F"}', "'size'"),
        ('{"type": "record", "name": "R"}', "no 'fields' list"),
        ('{"type": "record", "name": "1R", "fields": []}', "'1R' is not a valid Avro name"),
        ('["int", "int"]', "two branches of type 'int'"),
        ('[["int"]]', "may not immediately contain a union"),
        (
            '{"type": "record", "name": "R", "fields": '
            '[{"name": "a", "type": "int"}, {"name": "a", "type": "long"}]}',
            "two fields named 'a'",
        ),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "unique"),
        (
            '{"type": "record", "name": "R", "fields": '
            '[{"name": "a", "type": "int", "default": "x"}]}',
            "Default value",
        ),
    ],
)
def test_an_invalid_schema_is_a_value_error_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="schema") as raised:
        avro.parse(text)
    assert problem in str(raised.value)


def test_the_fingerprint_ignores_formatting_docs_and_namespace_spelling() -> None:
    a = '{"type":"record","name":"shop.Order","fields":[{"name":"id","type":"int"}]}'
    b = """{"namespace": "shop", "doc": "an order", "name": "Order", "type": "record",
            "fields": [{"type": {"type": "int"}, "name": "id", "doc": "its id"}]}"""
    assert avro.fingerprint(a) == avro.fingerprint(b)
    assert len(avro.fingerprint(a)) == 64


def test_the_fingerprint_tells_apart_what_changes_resolution() -> None:
    base = order(field("note", "string"))
    variants = [
        base,
        order(field("note", "string", default="")),
        order(field("note", "string", aliases=["memo"])),
        order(field("note", "bytes")),
        order(field("memo", "string")),
        order(field("note", "string"), aliases=["Purchase"]),
    ]
    assert len({avro.fingerprint(json.dumps(v)) for v in variants}) == len(variants)
