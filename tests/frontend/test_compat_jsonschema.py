"""JSON Schema compatibility: a table of evolutions under every mode, and properties."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.frontend.registry import jsonschema
from conveyor.frontend.registry.breaking import join
from conveyor.frontend.registry.modes import breaking_changes
from conveyor.wire.registry import Compatibility

Schema = dict[str, object]
Finding = tuple[str, str]  # (path, rule)

MODES = list(Compatibility)
PASSES = {
    "FULL": set(MODES),
    "BACKWARD": {Compatibility.NONE, Compatibility.BACKWARD, Compatibility.BACKWARD_TRANSITIVE},
    "FORWARD": {Compatibility.NONE, Compatibility.FORWARD, Compatibility.FORWARD_TRANSITIVE},
    "NONE": {Compatibility.NONE},
}
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}


def obj(closed: bool = False, required: tuple[str, ...] = (), **properties: object) -> Schema:
    """An object schema; ``closed`` sets ``additionalProperties: false``."""
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def order(
    closed: bool = False, required: tuple[str, ...] = ("id",), **properties: object
) -> Schema:
    return obj(closed, required, id=INTEGER, **properties)


def union(*types: str) -> Schema:
    return {"anyOf": [{"type": t} for t in types]}


def payment(kind: str) -> Schema:
    return obj(True, ("kind",), kind={"const": kind}, ref=STRING)


@dataclass(frozen=True)
class Evolution:
    """Version ``old`` then ``new``; what BACKWARD and FORWARD report; the strongest mode."""

    old: Schema
    new: Schema
    backward: tuple[Finding, ...]
    forward: tuple[Finding, ...]
    passes: str


EVOLUTIONS = [
    pytest.param(
        Evolution(
            order(True),
            order(True, note=STRING),
            (),
            (("/properties/note", "field_removed"),),
            "BACKWARD",
        ),
        id="add optional property to a closed model",
    ),
    pytest.param(
        Evolution(
            order(),
            order(note=STRING),
            (("/properties/note", "property_added_to_open_model"),),
            (),
            "FORWARD",
        ),
        id="add optional property to an open model (conservative, as Confluent)",
    ),
    pytest.param(
        Evolution(order(), order(note={"description": "free text"}), (), (), "FULL"),
        id="add unconstrained optional property to an open model",
    ),
    pytest.param(
        Evolution(
            order(True),
            order(True, ("id", "note"), note=STRING),
            (("/properties/note", "required_added"),),
            (("/properties/note", "field_removed"),),
            "NONE",
        ),
        id="add required property",
    ),
    pytest.param(
        Evolution(
            order(True, note=STRING),
            order(True),
            (("/properties/note", "field_removed"),),
            (),
            "FORWARD",
        ),
        id="remove property from a closed model",
    ),
    pytest.param(
        Evolution(
            order(note=STRING),
            order(),
            (),
            (("/properties/note", "property_added_to_open_model"),),
            "BACKWARD",
        ),
        id="remove property from an open model",
    ),
    pytest.param(
        Evolution(
            order(note={"type": "string", "default": ""}),
            order(),
            (),
            (("/properties/note", "property_added_to_open_model"),),
            "BACKWARD",
        ),
        id="remove property that had a default (default is only an annotation)",
    ),
    pytest.param(
        Evolution(
            order(required=("id", "note"), note=STRING),
            order(note=STRING),
            (),
            (("/properties/note", "required_added"),),
            "BACKWARD",
        ),
        id="make a required property optional",
    ),
    pytest.param(
        Evolution(
            order(qty=STRING),
            order(qty=INTEGER),
            (("/properties/qty", "type_changed"),),
            (("/properties/qty", "type_changed"),),
            "NONE",
        ),
        id="change type string to integer",
    ),
    pytest.param(
        Evolution(
            order(qty=INTEGER),
            order(qty={"type": "number"}),
            (),
            (("/properties/qty", "type_changed"),),
            "BACKWARD",
        ),
        id="widen integer to number",
    ),
    pytest.param(
        Evolution(
            order(note=STRING),
            order(note={"type": ["string", "null"]}),
            (),
            (("/properties/note", "type_changed"),),
            "BACKWARD",
        ),
        id="make a type nullable",
    ),
    pytest.param(
        Evolution(
            order(True, amount={"type": "number"}),
            order(True, total={"type": "number"}),
            (("/properties/amount", "field_removed"),),
            (("/properties/total", "field_removed"),),
            "NONE",
        ),
        id="rename property (JSON Schema has no aliases)",
    ),
    pytest.param(
        Evolution(
            order(status={"enum": ["new", "paid"]}),
            order(status={"enum": ["new", "paid", "shipped"]}),
            (),
            (("/properties/status", "enum_narrowed"),),
            "BACKWARD",
        ),
        id="enum widen",
    ),
    pytest.param(
        Evolution(
            order(status={"enum": ["new", "paid", "shipped"]}),
            order(status={"enum": ["new", "paid"]}),
            (("/properties/status", "enum_narrowed"),),
            (),
            "FORWARD",
        ),
        id="enum narrow",
    ),
    pytest.param(
        Evolution(
            order(status=STRING),
            order(status={"type": "string", "enum": ["new", "paid"]}),
            (("/properties/status", "enum_narrowed"),),
            (),
            "FORWARD",
        ),
        id="enum added to a free string",
    ),
    pytest.param(
        Evolution(
            order(v=union("string", "integer")),
            order(v=union("string", "integer", "null")),
            (),
            (("/properties/v", "union_narrowed"),),
            "BACKWARD",
        ),
        id="anyOf widen",
    ),
    pytest.param(
        Evolution(
            order(v=union("string", "integer", "null")),
            order(v=union("string", "integer")),
            (("/properties/v", "union_narrowed"),),
            (),
            "FORWARD",
        ),
        id="anyOf narrow",
    ),
    pytest.param(
        Evolution(
            order(pay={"oneOf": [payment("card"), payment("cash")]}),
            order(pay={"oneOf": [payment("card"), payment("cash"), payment("voucher")]}),
            (),
            (("/properties/pay", "union_narrowed"),),
            "BACKWARD",
        ),
        id="oneOf widen with a discriminator",
    ),
    pytest.param(
        Evolution(
            order(n={"type": "integer", "minimum": 0}),
            order(n={"type": "integer", "minimum": 10}),
            (("/properties/n", "range_narrowed"),),
            (),
            "FORWARD",
        ),
        id="minimum narrowed",
    ),
    pytest.param(
        Evolution(
            order(n={"type": "number", "exclusiveMaximum": 100}),
            order(n={"type": "number", "maximum": 100}),
            (),
            (("/properties/n", "range_narrowed"),),
            "BACKWARD",
        ),
        id="exclusive maximum widened to inclusive",
    ),
    pytest.param(
        Evolution(
            order(code={"type": "string", "maxLength": 10}),
            order(code={"type": "string", "maxLength": 5}),
            (("/properties/code", "length_narrowed"),),
            (),
            "FORWARD",
        ),
        id="maxLength narrowed",
    ),
    pytest.param(
        Evolution(
            order(code={"type": "string", "pattern": "^[a-z]+$"}),
            order(code={"type": "string", "pattern": "^[a-z0-9]+$"}),
            (("/properties/code", "pattern_changed"),),
            (("/properties/code", "pattern_changed"),),
            "NONE",
        ),
        id="pattern changed (regex inclusion is not decided: conservative)",
    ),
    pytest.param(
        Evolution(
            order(address=obj(zip=STRING)),
            order(address=obj(zip=INTEGER)),
            (("/properties/address/properties/zip", "type_changed"),),
            (("/properties/address/properties/zip", "type_changed"),),
            "NONE",
        ),
        id="nested object property type change",
    ),
    pytest.param(
        Evolution(
            {"$defs": {"A": obj(zip=STRING)}, **order(address={"$ref": "#/$defs/A"})},
            {"$defs": {"A": obj(zip=INTEGER)}, **order(address={"$ref": "#/$defs/A"})},
            (("/properties/address/properties/zip", "type_changed"),),
            (("/properties/address/properties/zip", "type_changed"),),
            "NONE",
        ),
        id="nested change through a local $ref",
    ),
    pytest.param(
        Evolution(
            order(tags={"type": "array", "items": INTEGER}),
            order(tags={"type": "array", "items": {"type": "number"}}),
            (),
            (("/properties/tags/items", "type_changed"),),
            "BACKWARD",
        ),
        id="array item widened",
    ),
    pytest.param(
        Evolution(
            order(tags={"type": "array", "items": STRING}),
            order(tags={"type": "array", "items": INTEGER}),
            (("/properties/tags/items", "type_changed"),),
            (("/properties/tags/items", "type_changed"),),
            "NONE",
        ),
        id="array item type change",
    ),
    pytest.param(
        Evolution(
            order(attrs={"type": "object", "additionalProperties": STRING}),
            order(attrs={"type": "object", "additionalProperties": INTEGER}),
            (("/properties/attrs/additionalProperties", "type_changed"),),
            (("/properties/attrs/additionalProperties", "type_changed"),),
            "NONE",
        ),
        id="map value type change",
    ),
    pytest.param(
        Evolution(
            order(),
            order(True),
            (("/additionalProperties", "additional_properties_closed"),),
            (),
            "FORWARD",
        ),
        id="close an open content model",
    ),
    pytest.param(
        Evolution(
            {"allOf": [{"$ref": "#/$defs/Base"}], "$defs": {"Base": order(True)}},
            {"allOf": [{"$ref": "#/$defs/Base"}], "$defs": {"Base": order(True, note=STRING)}},
            (),
            (("/properties/note", "field_removed"),),
            "BACKWARD",
        ),
        id="allOf over a $ref gains an optional property",
    ),
]


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("case", EVOLUTIONS)
def test_an_evolution_has_the_expected_verdict_under_every_mode(
    case: Evolution, mode: Compatibility
) -> None:
    found = breaking_changes(mode, case.new, [case.old], jsonschema.check)
    assert (found == []) is (mode in PASSES[case.passes]), found


@pytest.mark.parametrize("case", EVOLUTIONS)
def test_an_evolution_reports_each_breaking_change_with_its_path_and_rule(
    case: Evolution,
) -> None:
    for version in (case.old, case.new):
        assert jsonschema.parse(json.dumps(version)) == version  # the table's schemas are valid
    backward = breaking_changes(Compatibility.BACKWARD, case.new, [case.old], jsonschema.check)
    forward = breaking_changes(Compatibility.FORWARD, case.new, [case.old], jsonschema.check)
    assert [(b.path, b.rule) for b in backward] == list(case.backward)
    assert [(b.path, b.rule) for b in forward] == list(case.forward)
    assert all(b.message for b in [*backward, *forward])


V1 = order(s={"enum": ["x", "y", "z"]})
V2 = order(s={"enum": ["x", "y"]})
V3 = order(s={"enum": ["x", "y", "w"]})


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (Compatibility.NONE, []),
        (Compatibility.BACKWARD, []),
        (Compatibility.BACKWARD_TRANSITIVE, [("/properties/s", "enum_narrowed", '["x","y","z"]')]),
        (Compatibility.FORWARD, [("/properties/s", "enum_narrowed", '["x","y"]')]),
        (
            Compatibility.FORWARD_TRANSITIVE,
            [
                ("/properties/s", "enum_narrowed", '["x","y"]'),
                ("/properties/s", "enum_narrowed", '["x","y","z"]'),
            ],
        ),
        (Compatibility.FULL, [("/properties/s", "enum_narrowed", '["x","y"]')]),
        (
            Compatibility.FULL_TRANSITIVE,
            [
                ("/properties/s", "enum_narrowed", '["x","y"]'),
                ("/properties/s", "enum_narrowed", '["x","y","z"]'),
                ("/properties/s", "enum_narrowed", '["x","y","z"]'),
            ],
        ),
    ],
    ids=str,
)
def test_transitive_modes_check_every_earlier_version(
    mode: Compatibility, expected: list[tuple[str, str, str]]
) -> None:
    # Given v1 {x,y,z}, v2 {x,y}, v3 {x,y,w}: v3 reads all v2 wrote, but not v1's "z"
    found = breaking_changes(mode, V3, [V1, V2], jsonschema.check)
    # (latest version first; "old" always describes the earlier version)
    assert [(b.path, b.rule, b.old) for b in found] == expected


CHECKS = [
    pytest.param(
        {"oneOf": [{"type": "number"}, INTEGER]},
        INTEGER,
        [("/", "one_of_overlap")],
        id="an integer matches two branches of the reader's oneOf",
    ),
    pytest.param(
        {"oneOf": [STRING, INTEGER, {"type": "null"}]},
        {"oneOf": [STRING, INTEGER]},
        [],
        id="oneOf gains a branch of another type",
    ),
    pytest.param(
        {"anyOf": [STRING, obj(a=INTEGER)]},
        {"anyOf": [STRING, obj(a={"type": "number"})]},
        [("/properties/a", "type_changed")],
        id="the one plausible anyOf branch gives its details",
    ),
    pytest.param(
        {"type": "number", "multipleOf": 0.5},
        {"type": "number", "multipleOf": 1.5},
        [],
        id="multiples of 1.5 are multiples of 0.5",
    ),
    pytest.param(
        {"type": "number", "multipleOf": 2},
        {"type": "number"},
        [("/", "multiple_of_changed")],
        id="multipleOf added",
    ),
    pytest.param(
        {"type": "array", "items": STRING, "uniqueItems": True},
        {"type": "array", "items": STRING},
        [("/", "unique_items_added")],
        id="uniqueItems added",
    ),
    pytest.param(
        {"type": "array", "prefixItems": [STRING, {"type": "number"}]},
        {"type": "array", "prefixItems": [STRING, INTEGER], "items": False},
        [],
        id="tuple item widened",
    ),
    pytest.param(
        {**obj(), "dependentRequired": {"card": ["cvc"]}},
        obj(),
        [("/properties/card", "dependent_required_added")],
        id="dependentRequired added",
    ),
    pytest.param(
        {"type": "object", "patternProperties": {"^x-": STRING}},
        {"type": "object", "patternProperties": {"^x-": STRING}, "additionalProperties": False},
        [],
        id="same patternProperties",
    ),
    pytest.param(
        {"type": "object", "patternProperties": {"^y-": STRING}},
        {"type": "object"},
        [("/", "pattern_properties_changed")],
        id="patternProperties changed",
    ),
    pytest.param(
        {"type": "string", "not": {"const": ""}},
        STRING,
        [("/", "keyword_changed")],
        id="a keyword compared only by equality",
    ),
    pytest.param(
        {"const": "a"},
        {"type": "string", "enum": ["a"]},
        [],
        id="const holds the writer's only value",
    ),
    pytest.param(
        {"type": "boolean", "enum": [True, False]},
        {"type": "boolean"},
        [],
        id="an enum of every boolean",
    ),
    pytest.param(
        {"enum": [1]},
        {"enum": [True]},
        [("/", "enum_narrowed")],
        id="true is not 1",
    ),
    pytest.param(
        obj(next={"$ref": "#"}, v=INTEGER),
        obj(next={"$ref": "#"}, v={"type": "number"}),
        [("/properties/v", "type_changed")],
        id="a recursive schema is compared once per pair",
    ),
    pytest.param(
        {"type": "object", "unevaluatedProperties": False, "properties": {"a": STRING}},
        {"type": "object", "unevaluatedProperties": False, "properties": {"a": STRING}},
        [],
        id="identical unevaluatedProperties",
    ),
    pytest.param(
        {"type": "object", "unevaluatedProperties": False, "properties": {"a": STRING}},
        {"type": "object", "properties": {"a": STRING}},
        [("/", "keyword_changed")],
        id="unevaluatedProperties proven only when identical",
    ),
    pytest.param(
        {"type": "string", "format": "email"},
        STRING,
        [],
        id="format is an annotation in 2020-12",
    ),
    pytest.param(
        {"minimum": 0},
        {},
        [("/", "range_narrowed")],
        id="an unconstrained writer may write any number",
    ),
]


@pytest.mark.parametrize(("reader", "writer", "expected"), CHECKS)
def test_check_reports_what_it_cannot_prove(
    reader: Schema, writer: Schema, expected: list[Finding]
) -> None:
    for schema in (reader, writer):
        jsonschema.parse(json.dumps(schema))
    assert [(b.path, b.rule) for b in jsonschema.check(reader, writer)] == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not JSON"),
        ("[]", "must be a JSON object"),
        ("true", "must be a JSON object"),
        ('{"type": "strin"}', "at /type"),
        ('{"properties": {"a": {"minimum": "0"}}}', "at /properties/a/minimum"),
        ('{"$ref": "https://example.com/s.json"}', "points outside the schema"),
        ('{"$schema": "http://json-schema.org/draft-03/schema#"}', "draft this registry accepts"),
        ('{"$schema": 7}', "draft this registry accepts"),
        ('{"items": [{"type": "strin"}]}', "at /items"),  # neither valid 2020-12 nor draft 7
        ('{"properties": {"a": {"$ref": "#/$defs/missing"}}}', "missing"),
        ('{"pattern": "(("}', "regex"),
    ],
)
def test_an_invalid_schema_is_a_value_error_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="schema") as raised:
        jsonschema.parse(text)
    assert problem in str(raised.value)


def test_the_fingerprint_is_the_canonical_json_hash() -> None:
    a = '{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}'
    b = '{"properties":{"id":{"type":"integer"}},"required":["id"],"type":"object"}'
    assert jsonschema.fingerprint(a) == jsonschema.fingerprint(b)
    assert jsonschema.fingerprint(a) != jsonschema.fingerprint(b.replace("integer", "number"))
    with pytest.raises(ValueError, match="not JSON"):
        jsonschema.fingerprint("{")


# -- properties over generated object schemas -------------------------------------------------

LEAVES: list[Schema] = [
    STRING,
    INTEGER,
    {"type": "number", "minimum": 0},
    {"type": "boolean"},
    {"type": ["string", "null"]},
    {"enum": ["a", "b"]},
    {"type": "string", "maxLength": 8, "pattern": "^[a-z]*$"},
    {"type": "array", "items": STRING},
    {"type": "object", "additionalProperties": INTEGER},
]
NAMES = st.text(alphabet="abcdef", min_size=1, max_size=3)


def _object(children: st.SearchStrategy[Schema]) -> st.SearchStrategy[Schema]:
    def build(properties: dict[str, tuple[Schema, bool]], closed: bool) -> Schema:
        required = tuple(n for n, (_, needed) in properties.items() if needed)
        return obj(closed, required, **{n: s for n, (s, _) in properties.items()})

    return st.builds(
        build, st.dictionaries(NAMES, st.tuples(children, st.booleans()), max_size=4), st.booleans()
    )


SCHEMAS = _object(st.recursive(st.sampled_from(LEAVES), _object, max_leaves=8))


def _objects(schema: Schema, path: str = "/") -> list[tuple[str, Schema]]:
    """Every object schema in ``schema`` with its pointer, ``schema`` itself first."""
    found = [(path, schema)]
    properties = schema.get("properties")
    assert isinstance(properties, dict)
    for name, child in properties.items():
        if child.get("type") == "object" and "properties" in child:
            found += _objects(child, join(path, "properties", name))
    return found


def _with_property(
    schema: Schema, which: int, leaf: Schema, *, required: bool
) -> tuple[Schema, str, bool]:
    """``schema`` with a new property ``new_one`` in its ``which``-th object (cyclically)."""
    changed = copy.deepcopy(schema)
    path, target = _objects(changed)[which % len(_objects(changed))]
    properties = target["properties"]
    assert isinstance(properties, dict)
    properties["new_one"] = leaf
    if required:
        target["required"] = [*target.get("required", []), "new_one"]  # type: ignore[misc]
    return changed, join(path, "properties", "new_one"), target.get("additionalProperties") is False


@given(SCHEMAS)
def test_every_schema_is_compatible_with_itself(schema: Schema) -> None:
    assert jsonschema.check(schema, schema) == []
    assert jsonschema.check(schema, copy.deepcopy(schema)) == []


@given(SCHEMAS, st.integers(0, 20), st.sampled_from(LEAVES))
def test_adding_an_optional_property_keeps_backward_compatibility(
    schema: Schema, which: int, leaf: Schema
) -> None:
    # Given any object schema, When an optional property is added to one of its objects
    new, pointer, closed = _with_property(schema, which, leaf, required=False)
    found = breaking_changes(Compatibility.BACKWARD, new, [schema], jsonschema.check)
    # Then BACKWARD holds on a closed model; on an open one the old writer may already have
    # written that property with any value, which is the one (conservative) finding
    if closed:
        assert found == []
    else:
        assert [(b.path, b.rule) for b in found] == [(pointer, "property_added_to_open_model")]


@given(SCHEMAS, st.integers(0, 20), st.sampled_from(LEAVES))
def test_adding_a_required_property_breaks_backward_compatibility_at_its_pointer(
    schema: Schema, which: int, leaf: Schema
) -> None:
    new, pointer, _ = _with_property(schema, which, leaf, required=True)
    found = breaking_changes(Compatibility.BACKWARD, new, [schema], jsonschema.check)
    assert (pointer, "required_added") in [(b.path, b.rule) for b in found]
    assert {b.path for b in found} == {pointer}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 12) | st.sampled_from([0.5, -1.5, "", "a", "ab"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "new_one", "z"]), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    SCHEMAS,
    st.integers(0, 20),
    st.sampled_from(LEAVES),
    st.booleans(),
    st.lists(JSON_VALUES, min_size=20, max_size=20),
)
def test_a_compatible_verdict_is_sound_on_sample_instances(
    schema: Schema, which: int, leaf: Schema, required: bool, instances: list[object]
) -> None:
    # Given a schema and a variant with one more property, in either order
    variant, _, _ = _with_property(schema, which, leaf, required=required)
    for reader, writer in ((schema, variant), (variant, schema)):
        # When check finds nothing, Then every instance the writer accepts the reader accepts
        if jsonschema.check(reader, writer):
            continue
        accepts_reader = jsonschema_rs.validator_for(reader).is_valid
        accepts_writer = jsonschema_rs.validator_for(writer).is_valid
        assert all(accepts_reader(i) for i in instances if accepts_writer(i))
