"""Properties of validation against registry schemas: generated valid payloads always pass;
generated mutations that break the schema are always refused, at the right pointer, with the
right rule. Schemas are generated as JSON Schema and as Avro records (validated through the
JSON Schema of the Avro canonical JSON form, as the publish path does)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.codecs.validation import check_payload, compile_schema
from conveyor.errors import SchemaViolation
from conveyor.frontend.registry import avro
from conveyor.frontend.registry.avro_json import to_json_schema

NAMES = st.text("abcdefghij", min_size=1, max_size=6)
SCALARS = ("string", "integer", "boolean", "number")
WRONG: dict[str, object] = {"string": 7, "integer": "seven", "boolean": "yes", "number": "x"}


@dataclass(frozen=True)
class Field:
    """A generated field: a scalar type, or a nested record of fields."""

    kind: str  # one of SCALARS, or "object"
    children: tuple[tuple[str, Field], ...] = ()


def fields(depth: int = 2) -> st.SearchStrategy[tuple[tuple[str, Field], ...]]:
    leaf = st.sampled_from(SCALARS).map(Field)
    node = (
        leaf if depth == 0 else st.one_of(leaf, fields(depth - 1).map(lambda c: Field("object", c)))
    )
    return st.dictionaries(NAMES, node, min_size=1, max_size=4).map(lambda d: tuple(d.items()))


def json_schema(children: tuple[tuple[str, Field], ...]) -> dict[str, object]:
    return {
        "type": "object",
        "properties": {
            name: json_schema(f.children) if f.kind == "object" else {"type": f.kind}
            for name, f in children
        },
        "required": [name for name, _ in children],
        "additionalProperties": False,
    }


AVRO_TYPES = {"string": "string", "integer": "long", "boolean": "boolean", "number": "double"}


def avro_schema(children: tuple[tuple[str, Field], ...], name: str = "R") -> dict[str, object]:
    return {
        "type": "record",
        "name": name,
        "fields": [
            {
                "name": field_name,
                "type": avro_schema(f.children, f"{name}_{field_name}")
                if f.kind == "object"
                else AVRO_TYPES[f.kind],
            }
            for field_name, f in children
        ],
    }


def value(field: Field) -> st.SearchStrategy[object]:
    if field.kind == "object":
        return instance(field.children)
    return {
        "string": st.text(max_size=5),
        "integer": st.integers(-(2**40), 2**40),
        "boolean": st.booleans(),
        "number": st.floats(allow_nan=False, allow_infinity=False, width=32),
    }[field.kind]


def instance(children: tuple[tuple[str, Field], ...]) -> st.SearchStrategy[object]:
    return st.fixed_dictionaries({name: value(f) for name, f in children})


def paths(children: tuple[tuple[str, Field], ...], prefix: str = "") -> list[tuple[str, Field]]:
    out: list[tuple[str, Field]] = []
    for name, f in children:
        out.append((f"{prefix}/{name}", f))
        if f.kind == "object":
            out += paths(f.children, f"{prefix}/{name}")
    return out


def mutate(payload: object, pointer: str, how: str, kind: str) -> object:
    """A copy of the payload broken at ``pointer``: the wrong type, removed, or an extra field
    beside it."""
    copy = json.loads(json.dumps(payload))
    *parents, last = pointer.strip("/").split("/")
    target = copy
    for part in parents:
        target = target[part]
    if how == "type":
        target[last] = WRONG.get(kind, 7)
    elif how == "required":
        del target[last]
    else:
        target["zz_unknown"] = 1
    return copy


def expected(pointer: str, how: str) -> tuple[str, str]:
    if how == "additional_properties":
        parent = pointer.rsplit("/", 1)[0]
        return f"/payload{parent}/zz_unknown", "additional_properties"
    return f"/payload{pointer}", how


@st.composite
def cases(draw: st.DrawFn) -> tuple[tuple[tuple[str, Field], ...], object, str, str, str]:
    children = draw(fields())
    payload = draw(instance(children))
    pointer, field = draw(st.sampled_from(paths(children)))
    hows = ["required", "additional_properties"] + (["type"] if field.kind != "object" else [])
    how = draw(st.sampled_from(hows))
    return children, payload, pointer, field.kind, how


def validators(children: tuple[tuple[str, Field], ...], kind: str) -> object:
    if kind == "json":
        return compile_schema(json_schema(children))
    avro.parse(json.dumps(avro_schema(children)))  # a schema the registry accepts
    return compile_schema(to_json_schema(avro_schema(children)))


@pytest.mark.parametrize("kind", ["json", "avro"])
@settings(max_examples=150, deadline=None)
@given(data=cases())
def test_valid_payloads_pass_and_each_mutation_is_refused_at_its_pointer(
    kind: str, data: tuple[tuple[tuple[str, Field], ...], object, str, str, str]
) -> None:
    children, payload, pointer, field_kind, how = data
    validator = validators(children, kind)

    check_payload(validator, json.dumps(payload).encode())  # type: ignore[arg-type]

    broken = mutate(payload, pointer, how, field_kind)
    with pytest.raises(SchemaViolation) as refused:
        check_payload(validator, json.dumps(broken).encode())  # type: ignore[arg-type]
    field, rule = expected(pointer, how)
    assert (refused.value.field, refused.value.rule) == (field, rule)
