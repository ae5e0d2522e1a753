"""Protobuf schemas: parsing, compatibility of evolutions, the codec and its JSON Schema."""

from __future__ import annotations

import base64
import math
import re
import subprocess
import sys
import time
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema_rs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import SchemaViolation
from conveyor.frontend.registry.protobuf import (
    ProtoSchema,
    check,
    decode,
    encode,
    parse,
    to_json_schema,
)
from conveyor.frontend.validation import check_payload, compile_schema


@cache
def schema(text: str, message: str | None = None) -> ProtoSchema:
    """Parsing runs protoc in a child process: parse each distinct text once."""
    return parse(text, message)


# -- compatibility: a table of evolutions ---------------------------------------------------

ENUM = "enum Status { STATUS_UNSPECIFIED = 0; PAID = 1; SHIPPED = 2; }"
FIELDS = """
  int64 id = 1;
  int32 amount = 2;
  string note = 3;
  Status status = 4;
  oneof payment { string card = 5; string iban = 6; }
  string coupon = 7;
  Address ship_to = 8;
  map<string, int32> tags = 9;
  sint32 delta = 10;
"""
ADDRESS = "message Address { string city = 1; }"


def order(
    fields: str = FIELDS, *, enum: str = ENUM, address: str = ADDRESS, name: str = "Order"
) -> str:
    """The first message of a file is the schema's: Order comes before what it uses."""
    return f'syntax = "proto3";\npackage shop;\nmessage {name} {{{fields}}}\n{enum}\n{address}\n'


def edit(old: str, new: str) -> str:
    """The base message with one declaration replaced."""
    assert old in FIELDS
    return order(FIELDS.replace(old, new))


def item(fields: str) -> str:
    return f'syntax = "proto2";\npackage shop;\nmessage Item {{ {fields} }}\n'


ITEM = "optional string sku = 1; optional int32 qty = 2;"
F = "/messages/Order/fields/"

# (old .proto, new .proto, check(new, old) finds, check(old, new) finds), as {(path, rule)}
EVOLUTIONS: dict[str, tuple[str, str, set[tuple[str, str]], set[tuple[str, str]]]] = {
    "add a field": (order(), order(FIELDS + "string channel = 11;"), set(), set()),
    "remove a field": (order(), edit("string note = 3;", ""), set(), set()),
    "remove a field and reserve it": (
        order(),
        edit("string note = 3;", 'reserved 3; reserved "note";'),
        set(),
        set(),
    ),
    "reuse a number with another type": (
        order(),
        edit("string note = 3;", "int32 priority = 3;"),
        {(F + "priority", "number_reused")},
        {(F + "note", "number_reused")},
    ),
    "reuse a number with a compatible type": (
        order(),
        edit("int32 amount = 2;", "int64 customer = 2;"),
        {(F + "amount", "field_removed")},
        {(F + "customer", "field_removed")},
    ),
    "int32 to int64": (order(), edit("int32 amount = 2;", "int64 amount = 2;"), set(), set()),
    "int32 to bool": (order(), edit("int32 amount = 2;", "bool amount = 2;"), set(), set()),
    "enum to int32": (order(), edit("Status status = 4;", "int32 status = 4;"), set(), set()),
    "string to bytes": (order(), edit("string note = 3;", "bytes note = 3;"), set(), set()),
    "int32 to string": (
        order(),
        edit("int32 amount = 2;", "string amount = 2;"),
        {(F + "amount", "type_changed")},
        {(F + "amount", "type_changed")},
    ),
    "sint32 to int32": (
        order(),
        edit("sint32 delta = 10;", "int32 delta = 10;"),
        {(F + "delta", "type_changed")},
        {(F + "delta", "type_changed")},
    ),
    "message to string": (
        order(),
        edit("Address ship_to = 8;", "string ship_to = 8;"),
        {(F + "ship_to", "type_changed")},
        {(F + "ship_to", "type_changed")},
    ),
    "nested field type changed": (
        order(),
        order(address="message Address { int64 city = 1; }"),
        {("/messages/Address/fields/city", "type_changed")},
        {("/messages/Address/fields/city", "type_changed")},
    ),
    "map value type changed": (
        order(),
        edit("map<string, int32> tags = 9;", "map<string, string> tags = 9;"),
        {("/messages/Order.TagsEntry/fields/value", "type_changed")},
        {("/messages/Order.TagsEntry/fields/value", "type_changed")},
    ),
    "rename a field": (order(), edit("int32 amount = 2;", "int32 total = 2;"), set(), set()),
    "rename a nested message": (  # a message type is known by its name, as in Confluent's
        order(),
        order(
            FIELDS.replace("Address ship_to", "Location ship_to"),
            address=ADDRESS.replace("Address", "Location"),
        ),
        {("/messages/Address", "message_removed"), (F + "ship_to", "type_changed")},
        {("/messages/Location", "message_removed"), (F + "ship_to", "type_changed")},
    ),
    "a field's type becomes another message with the same fields": (
        order(),
        order(
            FIELDS.replace("Address ship_to", "Location ship_to"),
            address=ADDRESS + "\nmessage Location { string city = 1; }",
        ),
        {(F + "ship_to", "type_changed")},
        {("/messages/Location", "message_removed"), (F + "ship_to", "type_changed")},
    ),
    "a map becomes a repeated message of the entry's shape": (
        order(),
        edit(
            "map<string, int32> tags = 9;",
            "repeated TagsEntry tags = 9; message TagsEntry { string key = 1; int32 value = 2; }",
        ),
        {(F + "tags", "type_changed")},
        {("/messages/Order.TagsEntry", "message_removed"), (F + "tags", "type_changed")},
    ),
    "add a message to the file": (
        order(),
        order(address=ADDRESS + "\nmessage Extra { int32 x = 1; }"),
        set(),
        {("/messages/Extra", "message_removed")},
    ),
    "a nested message of another message changes": (
        order(address="message Address { string city = 1; message Geo { double lat = 1; } }"),
        order(address="message Address { string city = 1; message Geo { string lat = 1; } }"),
        {("/messages/Address.Geo/fields/lat", "type_changed")},
        {("/messages/Address.Geo/fields/lat", "type_changed")},
    ),
    "rename the message": (
        order(),
        order(name="Purchase"),
        {("/messages/Purchase", "message_renamed")},
        {("/messages/Order", "message_renamed")},
    ),
    "enum value added": (
        order(),
        order(enum=ENUM.replace("SHIPPED = 2;", "SHIPPED = 2; REFUNDED = 3;")),
        set(),
        {("/enums/Status/values/REFUNDED", "enum_value_removed")},
    ),
    "enum value removed": (
        order(),
        order(enum=ENUM.replace(" SHIPPED = 2;", "")),
        {("/enums/Status/values/SHIPPED", "enum_value_removed")},
        set(),
    ),
    "enum value renamed": (
        order(),
        order(enum=ENUM.replace("SHIPPED", "SENT")),
        set(),
        set(),
    ),
    "move a field into an existing oneof": (
        order(),
        order(
            FIELDS.replace("string coupon = 7;", "").replace(
                "string iban = 6;", "string iban = 6; string coupon = 7;"
            )
        ),
        {
            (F + "card", "oneof_changed"),
            (F + "iban", "oneof_changed"),
            (F + "coupon", "oneof_changed"),
        },
        set(),  # the old reader's fields are independent: any one set by a writer reads fine
    ),
    "move a field out of a oneof": (
        order(),
        edit("string iban = 6;", "").replace(
            "string coupon = 7;", "string coupon = 7; string iban = 6;"
        ),
        set(),
        {(F + "card", "oneof_changed"), (F + "iban", "oneof_changed")},
    ),
    "remove a field from a oneof": (
        order(),
        edit("string iban = 6;", ""),
        {(F + "iban", "oneof_field_removed")},
        set(),
    ),
    "drop a oneof member while renaming the oneof": (
        order(),
        edit(
            "oneof payment { string card = 5; string iban = 6; }",
            "oneof method { string card = 5; }",
        ),
        {(F + "iban", "oneof_field_removed")},
        set(),
    ),
    "rename a oneof": (
        order(),
        edit("oneof payment {", "oneof method {"),
        set(),
        set(),
    ),
    "remove a whole oneof": (
        order(),
        edit("oneof payment { string card = 5; string iban = 6; }", ""),
        set(),
        set(),
    ),
    "move one field into a new oneof": (
        order(),
        edit("string coupon = 7;", "oneof promo { string coupon = 7; }"),
        set(),
        set(),
    ),
    "add a field to a oneof": (
        order(),
        edit("string iban = 6;", "string iban = 6; string paypal = 12;"),
        set(),
        {(F + "paypal", "oneof_field_removed")},
    ),
    "make a field optional (explicit presence)": (
        order(),
        edit("string coupon = 7;", "optional string coupon = 7;"),
        set(),
        set(),
    ),
    "singular to repeated": (
        order(),
        edit("int32 amount = 2;", "repeated int32 amount = 2;"),
        {(F + "amount", "label_changed")},
        {(F + "amount", "label_changed")},
    ),
    "proto2 required added": (
        item(ITEM),
        item(ITEM + " required string warehouse = 3;"),
        {("/messages/Item/fields/warehouse", "required_changed")},
        {("/messages/Item/fields/warehouse", "required_changed")},
    ),
    "proto2 optional made required": (
        item(ITEM),
        item(ITEM.replace("optional int32 qty", "required int32 qty")),
        {("/messages/Item/fields/qty", "required_changed")},
        {("/messages/Item/fields/qty", "required_changed")},
    ),
    "proto2 required removed": (
        item(ITEM.replace("optional int32 qty", "required int32 qty")),
        item(ITEM.replace(" optional int32 qty = 2;", "")),
        {("/messages/Item/fields/qty", "required_changed")},
        {("/messages/Item/fields/qty", "required_changed")},
    ),
}


@pytest.mark.parametrize(
    ("old", "new", "backward", "forward"), EVOLUTIONS.values(), ids=EVOLUTIONS.keys()
)
def test_an_evolution_breaks_exactly_the_rules_it_should(
    old: str, new: str, backward: set[tuple[str, str]], forward: set[tuple[str, str]]
) -> None:
    # Given two versions of a message
    before, after = schema(old), schema(new)

    # When the new one reads the old one's data, and the old one the new one's
    found_backward = check(after, before)
    found_forward = check(before, after)

    # Then exactly the expected rules are reported, where expected
    assert {(b.path, b.rule) for b in found_backward} == backward
    assert {(b.path, b.rule) for b in found_forward} == forward
    assert all(b.message for b in found_backward + found_forward)


def test_a_reused_number_describes_the_writers_field_as_old_and_the_readers_as_new() -> None:
    # Given a field removed and its number reused with another type
    before = schema(order())
    after = schema(edit("string note = 3;", "int32 priority = 3;"))

    # When the new schema reads the old one's data
    [found] = check(after, before)

    # Then old is the writer's field, new the reader's, and the sentence says what to do
    assert (found.old, found.new) == ("note: string", "priority: int32")
    assert "reserve" in found.message


def test_a_message_moved_into_an_imported_file_is_removed_from_the_schemas_file(
    tmp_path: Path,
) -> None:
    # Given a file declaring Order and the Address it uses, and a next version that imports
    # the same Address (same package, same fields) from another file
    before = schema(order())
    imported = {"address.proto": f'syntax = "proto3";\npackage shop;\n{ADDRESS}\n'}
    text = order(address="").replace("package shop;\n", 'package shop;\nimport "address.proto";\n')
    data = protoc_descriptor_set(text, tmp_path, files=imported)
    after = parse(base64.b64encode(data).decode())

    # When each reads the other's data
    found_backward = check(after, before)
    found_forward = check(before, after)

    # Then the whole file is compared, not only Order: Address left the schema's file (as
    # Confluent's registry says), while the reverse move, out of an import, is compatible
    assert after.message_name == before.message_name == "shop.Order"
    assert [(b.path, b.rule, b.old) for b in found_backward] == [
        ("/messages/Address", "message_removed", "shop.Address")
    ]
    assert found_forward == []


def test_a_recursive_message_is_checked_and_the_walk_ends() -> None:
    # Given a tree whose nodes hold nodes, before and after a nested type change
    tree = 'syntax = "proto3";\nmessage Node {{ {} value = 1; repeated Node children = 2; }}\n'

    # When one is checked against the other
    found = check(schema(tree.format("string")), schema(tree.format("double")))

    # Then the change is found once
    assert [(b.path, b.rule) for b in found] == [("/messages/Node/fields/value", "type_changed")]


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


def protoc_descriptor_set(
    text: str, tmp_path: Path, *, imports: bool = True, files: dict[str, str] | None = None
) -> bytes:
    """What a user would upload: protoc's own output, with source info (``files``: the other
    files ``text`` imports, by name)."""
    (tmp_path / "schema.proto").write_text(text)
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    include = resources.files("grpc_tools").joinpath("_proto")
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"-I{include}"]
    command += ["--include_source_info", "--descriptor_set_out=out.pb", "schema.proto"]
    if imports:
        command.append("--include_imports")
    subprocess.run(command, cwd=tmp_path, check=True)
    return (tmp_path / "out.pb").read_bytes()


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
