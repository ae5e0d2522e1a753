"""Payload checks against a topic's JSON Schema: the field as a JSON pointer, and the rule."""

from __future__ import annotations

import msgspec
import pytest

from conveyor.codecs.validation import check_payload, compile_schema, pointer
from conveyor.errors import InvalidRequest, SchemaViolation


def violation(schema: dict[str, object], value: object) -> SchemaViolation:
    validator = compile_schema(schema)
    with pytest.raises(SchemaViolation) as caught:
        check_payload(validator, msgspec.json.encode(value), index=None)
    return caught.value


def fields(**properties: object) -> dict[str, object]:
    return {"type": "object", "properties": properties}


@pytest.mark.parametrize(
    ("schema", "value", "field", "rule"),
    [
        (fields(a={"type": "integer"}), {"a": "x"}, "/payload/a", "type"),
        (fields(a={"minimum": 5}), {"a": 1}, "/payload/a", "minimum"),
        (fields(a={"maxLength": 2}), {"a": "abc"}, "/payload/a", "max_length"),
        (fields(a={"enum": [1, 2]}), {"a": 3}, "/payload/a", "enum"),
        ({"type": "array", "items": {"type": "string"}}, ["x", 1], "/payload/1", "type"),
        (fields(n={"type": "object", "required": ["x"]}), {"n": {}}, "/payload/n/x", "required"),
    ],
    ids=["type", "minimum", "max_length", "enum", "array item", "nested required"],
)
def test_a_violation_names_the_field_and_the_rule(
    schema: dict[str, object], value: object, field: str, rule: str
) -> None:
    # When a payload breaks the schema
    error = violation(schema, value)

    # Then the error points at the field under /payload and names the rule, as a 422
    assert (error.field, error.rule, error.status) == (field, rule, 422)


def test_a_property_name_with_slash_or_tilde_is_escaped_in_the_pointer() -> None:
    # When the failing properties' names hold "/" and "~"
    slash = violation(fields(**{"a/b": {"type": "string"}}), {"a/b": 1})
    tilde = violation(fields(**{"c~d": {"type": "string"}}), {"c~d": 1})

    # Then they are escaped as RFC 6901 says
    assert (slash.field, tilde.field) == ("/payload/a~1b", "/payload/c~0d")
    assert pointer(["a/b", 0, "c~d"]) == "/a~1b/0/c~0d"


def test_an_unexpected_property_is_named_by_its_own_pointer() -> None:
    # Given a schema that allows only "a"
    schema = {**fields(a={}), "additionalProperties": False}

    # When a payload carries "b" too
    error = violation(schema, {"a": 1, "b": 2})

    # Then the field names "b", as a missing property is named by "required"
    assert (error.field, error.rule) == ("/payload/b", "additional_properties")


def test_a_payload_that_conforms_passes() -> None:
    validator = compile_schema(fields(a={"type": "integer"}))
    check_payload(validator, b'{"a": 1}')


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"type": 5}, "/schema/type"),
        ({"properties": {"a": {"minimum": "x"}}}, "/schema/properties/a/minimum"),
        ({"required": "a"}, "/schema/required"),
    ],
    ids=["bad type", "nested bad minimum", "required not a list"],
)
def test_an_invalid_json_schema_is_refused_pointing_inside_it(
    schema: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        compile_schema(schema)
    assert (caught.value.field, caught.value.rule, caught.value.status) == (
        field,
        "json_schema",
        400,
    )
