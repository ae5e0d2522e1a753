"""JSON Schema drafts 4, 6, 7 and 2019-09 beside 2020-12: accepted as Confluent's registry
accepts them, validated under their own draft, and compared by what they mean."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest

from conveyor.frontend.registry import jsonschema
from conveyor.frontend.registry._json_drafts import URIS, Draft

Schema = dict[str, object]
D4 = "http://json-schema.org/draft-04/schema#"
D6 = "http://json-schema.org/draft-06/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"
D2020 = "https://json-schema.org/draft/2020-12/schema"
TUPLE_07: Schema = {  # a pair (string, integer) and nothing more, in draft 7's words
    "$schema": D7,
    "type": "array",
    "items": [{"type": "string"}, {"type": "integer"}],
    "additionalItems": False,
}
TUPLE_2020: Schema = {
    "type": "array",
    "prefixItems": [{"type": "string"}, {"type": "integer"}],
    "items": False,
}


def parse(schema: Schema) -> Schema:
    return jsonschema.parse(json.dumps(schema))


def found(reader: Schema, writer: Schema) -> list[tuple[str, str]]:
    return [(b.path, b.rule) for b in jsonschema.check(parse(reader), parse(writer))]


@pytest.mark.parametrize(
    ("schema", "valid", "invalid"),
    [
        (TUPLE_07, ["a", 1], ["a", 1, 2]),
        (
            {"$schema": D7, "type": "object", "dependencies": {"a": ["b"]}},
            {"a": 1, "b": 2},
            {"a": 1},
        ),
        ({"$schema": D2019, "items": [{"type": "string"}]}, ["a", 1], [1]),
        ({"$schema": D2019, "dependentRequired": {"a": ["b"]}}, {"b": 1}, {"a": 1}),
        ({"$schema": D6, "const": 3}, 3, 4),
        ({"$schema": D4, "maximum": 5, "exclusiveMaximum": True}, 4, 5),
        ({"items": [{"type": "string"}]}, ["a"], [1]),  # no $schema: read as draft 7
    ],
)
def test_a_draft_the_reference_registry_accepts_is_accepted_and_validates_as_written(
    schema: Schema, valid: object, invalid: object
) -> None:
    # When a document of an earlier draft is parsed
    parsed = parse(schema)

    # Then it is accepted, and a validator built from it checks instances under its draft
    validator = jsonschema_rs.validator_for(parsed)
    assert validator.is_valid(valid)
    assert not validator.is_valid(invalid)


def test_a_document_without_schema_stays_2020_12_when_it_is_valid_2020_12() -> None:
    # prefixItems means something in 2020-12 only: the document is not re-read as draft 7
    parsed = parse({"type": "array", "prefixItems": [{"type": "string"}]})
    assert "$schema" not in parsed
    assert not jsonschema_rs.validator_for(parsed).is_valid([1])


def test_every_accepted_uri_is_the_draft_the_validator_uses() -> None:
    validators = {
        Draft.DRAFT_4: jsonschema_rs.Draft4Validator,
        Draft.DRAFT_6: jsonschema_rs.Draft6Validator,
        Draft.DRAFT_7: jsonschema_rs.Draft7Validator,
        Draft.DRAFT_2019_09: jsonschema_rs.Draft201909Validator,
        Draft.DRAFT_2020_12: jsonschema_rs.Draft202012Validator,
    }
    assert len(URIS) == 20
    for uri, draft in URIS.items():
        assert isinstance(jsonschema_rs.validator_for({"$schema": uri}), validators[draft])


# (reader, writer, findings): what an instance valid under the writer may break in the reader
CHECKS: dict[str, tuple[Schema, Schema, list[tuple[str, str]]]] = {
    "the same tuple in draft 7 and 2020-12 words": (TUPLE_2020, TUPLE_07, []),
    "and the other way": (TUPLE_07, TUPLE_2020, []),
    "a closed tuple reads an open one's extra items": (
        TUPLE_07,
        {**TUPLE_07, "additionalItems": True},
        [("/items", "type_changed")],
    ),
    "a tuple item's type changed": (
        {**TUPLE_07, "items": [{"type": "integer"}, {"type": "integer"}]},
        TUPLE_07,
        [("/prefixItems/0", "type_changed")],
    ),
    "additionalItems beside a single items schema constrains nothing": (
        {"$schema": D7, "type": "array", "items": {"type": "string"}},
        {"$schema": D7, "type": "array", "items": {"type": "string"}, "additionalItems": False},
        [],
    ),
    "but a reader's is compared as a whole, as Confluent's registry does": (
        {"additionalItems": False},
        {"additionalItems": True},
        [("/", "keyword_changed")],
    ),
    "dependencies (names) as dependentRequired": (
        {"$schema": D2019, "type": "object", "dependentRequired": {"a": ["b"]}},
        {"$schema": D7, "type": "object", "dependencies": {"a": ["b"]}},
        [],
    ),
    "dependencies (names) added": (
        {"$schema": D7, "type": "object", "dependencies": {"a": ["b"]}},
        {"$schema": D7, "type": "object"},
        [("/properties/a", "dependent_required_added")],
    ),
    "dependencies (a schema) kept": (
        {"$schema": D7, "type": "object", "dependencies": {"a": {"required": ["b"]}}},
        {"$schema": D7, "type": "object", "dependencies": {"a": {"required": ["b", "c"]}}},
        [],
    ),
    "dependencies (a schema) added": (
        {"$schema": D7, "type": "object", "dependencies": {"a": {"required": ["b"]}}},
        {"$schema": D7, "type": "object"},
        [("/dependentSchemas/a/properties/b", "required_added")],
    ),
    "a draft-7 $ref hides its siblings": (
        {"type": "string", "maxLength": 3},
        {
            "$schema": D7,
            "$ref": "#/definitions/s",
            "maxLength": 3,
            "definitions": {"s": {"type": "string"}},
        },
        [("/", "length_narrowed")],
    ),
    "a draft-7 format is asserted": (
        {"$schema": D7, "type": "string", "format": "email"},
        {"type": "string", "format": "email"},
        [("/", "keyword_changed")],
    ),
    "a 2020-12 format is not": (
        {"type": "string", "format": "email"},
        {"$schema": D7, "type": "string", "format": "email"},
        [],
    ),
    "one draft-7 format asserted by both": (
        {"$schema": D7, "enum": ["a@b.c"], "format": "email"},
        {"$schema": D7, "enum": ["a@b.c"], "format": "email"},
        [],
    ),
    "a draft-7 format rejects a value of the writer's": (
        {"$schema": D7, "type": "string", "format": "email"},
        {"$schema": D2019, "enum": ["not an email"]},
        [("/", "keyword_changed")],
    ),
    "draft 7 ignores prefixItems, 2020-12 does not": (
        {"type": "array", "prefixItems": [{"type": "string"}]},
        {"$schema": D7, "type": "array", "prefixItems": [{"type": "string"}]},
        [("/prefixItems/0", "type_changed")],
    ),
    "draft 4's boolean exclusive bound": (
        {"type": "number", "exclusiveMaximum": 5},
        {"$schema": D4, "type": "number", "maximum": 5, "exclusiveMaximum": True},
        [],
    ),
    "draft 4's inclusive bound is wider": (
        {"type": "number", "exclusiveMaximum": 5},
        {"$schema": D4, "type": "number", "maximum": 5},
        [("/", "range_narrowed")],
    ),
    "a draft-7 fragment $id is an anchor": (
        {"$schema": D7, "$ref": "#s", "definitions": {"s": {"$id": "#s", "type": "integer"}}},
        {
            "$schema": D7,
            "$ref": "#s",
            "definitions": {"s": {"$id": "#s", "type": "integer", "minimum": 0}},
        },
        [],
    ),
}


def test_an_asserted_format_is_named_format_in_the_finding() -> None:
    [finding] = jsonschema.check(
        parse({"$schema": D7, "type": "string", "format": "email"}),
        parse({"type": "string", "format": "email"}),
    )
    assert (finding.old, finding.new) == (None, '"email"')
    assert "format (asserted by its draft)" in finding.message


@pytest.mark.parametrize(("reader", "writer", "expected"), CHECKS.values(), ids=CHECKS.keys())
def test_documents_of_any_draft_are_compared_by_what_they_mean(
    reader: Schema, writer: Schema, expected: list[tuple[str, str]]
) -> None:
    assert found(reader, writer) == expected


SAMPLES: list[object] = [
    None, True, 0, 4, 5, 6, 4.5, "", "a", "a@b.c", "not an email", [], ["a"], [1], ["a", 1],
    ["a", 1, 2], [1, "a"], {}, {"a": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}, {"b": 1},
]  # fmt: skip


@pytest.mark.parametrize(("reader", "writer", "expected"), CHECKS.values(), ids=CHECKS.keys())
def test_a_compatible_verdict_holds_on_sample_instances_under_each_draft(
    reader: Schema, writer: Schema, expected: list[tuple[str, str]]
) -> None:
    if expected:
        return
    # Validators of each document's own draft, formats asserted where the draft does
    accepts_reader = jsonschema_rs.validator_for(parse(reader)).is_valid
    accepts_writer = jsonschema_rs.validator_for(parse(writer)).is_valid
    assert all(accepts_reader(i) for i in SAMPLES if accepts_writer(i))
