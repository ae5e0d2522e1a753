"""Protobuf schemas: compatibility of evolutions (parsing and the codec: tests/codecs)."""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path

import pytest

from conveyor.codecs.protobuf import ProtoSchema, parse
from conveyor.frontend.registry.proto_compat import check
from protoc_files import protoc_descriptor_set


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
