"""Protobuf: parsing a schema, the binary <-> canonical JSON codec, and the JSON Schema of
the canonical form."""

from __future__ import annotations

import base64
import math
import re
import time
from functools import cache
from pathlib import Path

import jsonschema_rs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.codecs.protobuf import ProtoSchema, decode, encode, parse
from conveyor.codecs.validation import check_payload, compile_schema
from conveyor.errors import SchemaViolation
from conveyor.frontend.registry.proto_json import to_json_schema
from protoc_files import protoc_descriptor_set


@cache
def schema(text: str, message: str | None = None) -> ProtoSchema:
    """Parsing runs protoc in a child process: parse each distinct text once."""
    return parse(text, message)


def item(fields: str) -> str:
    return f'syntax = "proto2";\npackage shop;\nmessage Item {{ {fields} }}\n'


ITEM = "optional string sku = 1; optional int32 qty = 2;"


# -- parsing ----------------------------------------------------------------------------------

WELL_KNOWN = """syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Shipment { string id = 1; google.protobuf.Timestamp at = 2; }
message Other { int32 x = 1; }
"""


def test_a_syntax_error_is_reported_with_protocs_line_and_column() -> None:
    # When the third line lacks a semicolon
    text = 'syntax = "proto3";\nmessage A {\n  int32 x = 1\n}\n'
    with pytest.raises(ValueError, match=r"schema\.proto:4:1: ") as caught:
        parse(text)

    # Then the message is protoc's, without the temporary directory
    assert 'Expected ";"' in str(caught.value)
    assert "/tmp" not in str(caught.value)


def test_an_unknown_type_and_a_missing_import_are_refused() -> None:
    with pytest.raises(ValueError, match=r"schema\.proto:2:\d+: .*Nope"):
        parse('syntax = "proto3";\nmessage A { Nope x = 1; }\n')
    with pytest.raises(ValueError, match=r"missing\.proto"):
        parse('syntax = "proto3";\nimport "missing.proto";\nmessage A { int32 x = 1; }\n')


def test_the_first_message_is_chosen_unless_one_is_named() -> None:
    # When the well-known-type file is parsed with and without a message name
    first, named = parse(WELL_KNOWN), parse(WELL_KNOWN, "shop.Other")

    # Then the first message is the default, a named one is used, and the two differ
    assert (first.message_name, named.message_name) == ("shop.Shipment", "shop.Other")
    assert first.fingerprint() != named.fingerprint()
    assert first.descriptor_set == named.descriptor_set


def test_a_missing_message_or_a_file_without_messages_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'shop\.Nope' is not in the schema.*shop\.Shipment"):
        parse(WELL_KNOWN, "shop.Nope")
    with pytest.raises(ValueError, match="declares no message"):
        parse('syntax = "proto3";\nenum E { E0 = 0; }\n')


def test_a_descriptor_set_is_the_same_schema_as_its_source(tmp_path: Path) -> None:
    # Given protoc's descriptor set for the source, base64-encoded and wrapped at 76 columns
    data = protoc_descriptor_set(WELL_KNOWN, tmp_path)
    wrapped = "\n".join(re.findall(".{1,76}", base64.b64encode(data).decode()))

    # When both forms are parsed
    from_text, from_set = parse(WELL_KNOWN), parse(wrapped)

    # Then they are one schema, with one fingerprint, that decodes alike
    assert from_set == from_text
    assert from_set.fingerprint() == from_text.fingerprint()
    payload = {"id": "s-1", "at": "2024-05-01T12:00:00.250Z"}
    assert decode(from_set, encode(from_text, payload)) == payload


def test_a_descriptor_set_without_its_imports_or_not_a_set_is_refused(tmp_path: Path) -> None:
    data = protoc_descriptor_set(WELL_KNOWN, tmp_path, imports=False)
    with pytest.raises(ValueError, match=r"lacks google/protobuf/timestamp\.proto"):
        parse(base64.b64encode(data).decode())
    with pytest.raises(ValueError, match="FileDescriptorSet"):
        parse(base64.b64encode(b"\xff\xff\xff").decode())


# -- codec --------------------------------------------------------------------------------------

EVENT = """syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
enum Kind { KIND_UNSPECIFIED = 0; SALE = 1; REFUND = 2; }
message Line { string sku = 1; uint32 qty = 2; }
message Event {
  int32 i32 = 1;
  int64 i64 = 2;
  uint64 u64 = 3;
  sint32 s32 = 4;
  fixed64 f64 = 5;
  double dbl = 6;
  float flt = 7;
  bool flag = 8;
  string text = 9;
  bytes blob = 10;
  Kind kind = 11;
  repeated int32 numbers = 12;
  map<string, int64> counts = 13;
  Line line = 14;
  repeated Line lines = 15;
  google.protobuf.Timestamp at = 16;
  oneof target { string email = 17; int64 user = 18; }
  optional string memo = 19;
}
"""


def json_float(x: float) -> float | str:
    """Protobuf's JSON form spells the non-finite floats as strings."""
    if math.isnan(x):
        return "NaN"
    return x if math.isfinite(x) else ("Infinity" if x > 0 else "-Infinity")


lines = st.fixed_dictionaries({}, optional={"sku": st.text(), "qty": st.integers(0, 2**32 - 1)})
events = st.fixed_dictionaries(
    {},
    optional={
        "i32": st.integers(-(2**31), 2**31 - 1),
        "i64": st.integers(-(2**63), 2**63 - 1),
        "u64": st.integers(0, 2**64 - 1).map(str),
        "s32": st.integers(-(2**31), 2**31 - 1),
        "f64": st.integers(0, 2**64 - 1),
        "dbl": st.floats().map(json_float),
        "flt": st.floats(width=32).map(json_float),
        "flag": st.booleans(),
        "text": st.text(),
        "blob": st.binary().map(lambda b: base64.b64encode(b).decode()),
        "kind": st.sampled_from(["KIND_UNSPECIFIED", "SALE", "REFUND"]),
        "numbers": st.lists(st.integers(-(2**31), 2**31 - 1)),
        "counts": st.dictionaries(st.text(), st.integers(-(2**63), 2**63 - 1)),
        "line": lines,
        "lines": st.lists(lines, max_size=3),
        "at": st.integers(0, 253402300799).map(
            lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))
        ),
        "memo": st.text(),
    },
).flatmap(
    lambda value: st.one_of(
        st.just(value),
        st.fixed_dictionaries({"email": st.text()}).map(lambda t: {**value, **t}),
        st.fixed_dictionaries({"user": st.integers(-(2**63), 2**63 - 1)}).map(
            lambda t: {**value, **t}
        ),
    )
)


@settings(max_examples=300, deadline=None)
@given(value=events)
def test_binary_round_trips_through_the_canonical_json_form_which_fits_the_json_schema(
    value: dict[str, object],
) -> None:
    # Given a message encoded from generated field values
    event = schema(EVENT, "shop.Event")
    data = encode(event, value)

    # When it is decoded to its canonical JSON form and encoded again
    canonical = decode(event, data)

    # Then the bytes are the same, and the JSON form satisfies the JSON Schema
    assert encode(event, canonical) == data
    assert decode(event, encode(event, canonical)) == canonical
    validator = jsonschema_rs.validator_for(to_json_schema(event))
    assert validator.is_valid(canonical), list(validator.iter_errors(canonical))


def test_the_canonical_form_uses_proto_names_strings_for_64_bits_and_enum_names() -> None:
    event = schema(EVENT, "shop.Event")
    value = {"i64": 7, "kind": "SALE", "line": {"sku": "a", "qty": 2}, "counts": {"b": 1}}
    assert decode(event, encode(event, value)) == {
        "i64": "7",
        "kind": "SALE",
        "line": {"sku": "a", "qty": 2},
        "counts": {"b": "1"},
    }


@pytest.mark.parametrize(
    "data",
    [b"\x08", b"\x0a\x05ab", b"\xff\xff\xff\xff", b"\x72\x03\x0a\x05a"],
    ids=["truncated varint", "short length", "bad tag", "bad nested message"],
)
def test_bytes_that_are_not_the_message_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"not a valid shop\.Event message"):
        decode(schema(EVENT, "shop.Event"), data)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"nope": 1}, "nope"),
        ({"i32": "x"}, "i32"),
        ({"i32": 2**40}, "i32"),
        ({"kind": "LOST"}, "kind"),
        ({"line": {"qty": -1}}, "qty"),
        ({"numbers": ["a"]}, "numbers"),
    ],
    ids=["unknown field", "string for int", "out of range", "unknown enum", "nested", "item"],
)
def test_a_value_that_does_not_fit_is_refused_naming_the_field(
    value: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        encode(schema(EVENT, "shop.Event"), value)


def test_a_proto2_required_field_is_enforced_both_ways() -> None:
    # Given a proto2 message with a required field
    with_required = schema(item(ITEM + " required string warehouse = 3;"))

    # Then it cannot be encoded without it, nor decoded from bytes without it
    with pytest.raises(ValueError, match="warehouse"):
        encode(with_required, {"sku": "a"})
    with pytest.raises(ValueError, match=r"required.*warehouse"):
        decode(with_required, encode(schema(item(ITEM)), {"sku": "a"}))
    assert decode(with_required, encode(with_required, {"warehouse": "w"})) == {"warehouse": "w"}


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        ({"i32": "x"}, "/payload/i32", "type"),
        ({"i32": 2**31}, "/payload/i32", "maximum"),
        ({"kind": "LOST"}, "/payload/kind", "any_of"),
        ({"line": {"qty": "two"}}, "/payload/line/qty", "type"),
        ({"numbers": [1, "b"]}, "/payload/numbers/1", "type"),
        ({"nope": 1}, "/payload/nope", "additional_properties"),
        ({"email": "a@b", "user": 1}, "/payload", "not"),
        ({"at": "yesterday"}, "/payload/at", "pattern"),
    ],
)
def test_the_json_schema_points_at_the_field_that_does_not_fit(
    payload: dict[str, object], field: str, rule: str
) -> None:
    # Given the JSON Schema of the message, compiled as a topic's schema
    validator = compile_schema(to_json_schema(schema(EVENT, "shop.Event")))

    # When a payload that protobuf would refuse is checked
    with pytest.raises(SchemaViolation) as caught:
        check_payload(validator, msgspec.json.encode(payload))

    # Then the error points at the field
    assert (caught.value.field, caught.value.rule) == (field, rule)


def test_decode_throughput_of_a_ten_field_message_is_measured() -> None:
    # Given a typical ten-field event, encoded
    text = """syntax = "proto3";
    import "google/protobuf/timestamp.proto";
    message OrderPlaced {
      string order_id = 1; int64 customer_id = 2; double amount = 3; string currency = 4;
      google.protobuf.Timestamp placed_at = 5; repeated string skus = 6; int32 quantity = 7;
      bool gift = 8; string country = 9; map<string, string> attributes = 10;
    }"""
    placed = schema(text)
    value = {
        "order_id": "ord-000123",
        "customer_id": "4711",
        "amount": 99.5,
        "currency": "EUR",
        "placed_at": "2024-05-01T12:00:00Z",
        "skus": ["A-1", "B-22", "C-333"],
        "quantity": 3,
        "gift": True,
        "country": "DE",
        "attributes": {"channel": "web", "campaign": "spring"},
    }
    data = encode(placed, value)

    # When it is decoded to JSON-ready dicts for a while on one core
    n, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < 0.5:
        for _ in range(500):
            decoded = decode(placed, data)
        n += 500

    # Then it decodes right; the rate is printed, never asserted (bench/ measures speed)
    assert decoded == value
    print(f"\nprotobuf decode + to-JSON: {n / elapsed:,.0f} events/s on one core")


def test_float32_extremes_round_trip_through_the_canonical_json_form() -> None:
    # protobuf's JSON writes FLT_MAX as 3.4028235e+38, past FLT_MAX as a double; found by
    # the round-trip property above
    schema = parse(
        'syntax = "proto3"; message N { float g = 1; }\n'
        "message E { float f = 1; repeated float r = 2; map<string, float> m = 3;"
        " N n = 4; map<string, N> mn = 5; }",
        "E",
    )
    top = 3.4028234663852886e38
    value = {"f": -top, "r": [top], "m": {"a": top}, "n": {"g": top}, "mn": {"x": {"g": -top}}}
    data = encode(schema, value)
    assert decode(schema, data) == value
    assert encode(schema, decode(schema, data)) == data
