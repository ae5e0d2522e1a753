"""Protobuf compatibility: can bytes written with one message schema be read with another?

``check(reader, writer)`` walks the two top-level messages side by side, matching fields by
*number* (the only identity on the wire), recursing into message-typed fields (and map
entries, which are messages) and comparing enums value by value; then it compares the whole
file the schema's message is declared in, message by message, as Confluent's registry does
(``BACKWARD`` is ``check(new, old)``, Confluent's diff of ``old`` to ``new``; the verdicts
match its own examples except where noted as stricter below). A field name is not on the
wire, so renaming a field, an enum value or a oneof is compatible; the canonical JSON form
does use names, and is the caller's concern.

Paths are JSON pointers through names relative to the reader's package:
``/messages/Order/fields/amount``, ``/messages/Order.Item/fields/sku``,
``/enums/Status/values/SHIPPED``. ``old`` describes the writer's side and ``new`` the
reader's (``modes.breaking_changes`` re-orients them to the earlier/later schema).

Rules:

``message_renamed``
    The top-level messages have different fully-qualified names. The bytes could still
    parse, but producers and consumers name the message they mean (a ``google.protobuf.Any``
    type URL, a generated class, a registry's message name); a changed name is another
    message, not a new version of this one.
``message_removed``
    The writer's file declares a message (at any depth, matched by name within its parent)
    that the reader's file does not: removed, renamed, or moved into an imported file.
    Confluent's registry refuses it, as a schema is the whole file there. Map entries are
    not declarations. In a FORWARD check this is a message *added* to the file, which
    Confluent refuses too.
``type_changed``
    A field keeps its name and number but the writer's type cannot be read as the
    reader's. Wire-compatible groups (the reader truncates or reinterprets, never fails):
    int32, uint32, int64, uint64, bool (varints); enum with int32, uint32, int64, uint64
    (not bool); sint32, sint64 (zigzag varints); fixed32, sfixed32; fixed64, sfixed64;
    string, bytes (the bytes must be UTF-8 to read as a string). Anything else — float,
    double, a message against a scalar, a group against a message — is another wire type or
    another meaning and is breaking. Two message types must have the same name within their
    packages (then they are compared field by field), even when their fields are the same:
    a message type is known by its name, as in Confluent's registry. A map is not a
    repeated message of its entry's shape. Two enum types are compared value by value,
    whatever their names.
``number_reused``
    A number carries a field of another name *and* an incompatible type: a field was removed
    without ``reserved N;`` and its number given to a new field. Old data would fail to parse
    or be misread.
``field_removed``
    A number carries a field of another name and another, wire-compatible type (``int32
    count = 3`` became ``int64 user_id = 3``): the bytes parse, but old values land in a field
    that means something else. A plain rename (same type) is allowed; removing a field
    is allowed too (readers skip unknown numbers, writers leave the field at its default), and
    is reported only through this rule or ``number_reused`` when its number comes back.
``label_changed``
    A field is repeated on one side and singular on the other. The guide allows this for
    strings, bytes and messages (a singular reader keeps the last element) and packed scalars
    are not readable as singular by every runtime, so we are conservative and refuse both
    directions: the reader would silently drop all but one element, or see a list of one.
    (Stricter than Confluent, which allows it for strings, bytes and messages.)
``oneof_changed``
    The fields that share a reader's real ``oneof`` with a field (among the numbers both
    sides know) are not all in one oneof of the writer: fields that were independent, or
    in two oneofs, would become exclusive, and the reader would keep only the last one set.
    A reader's oneof may be narrower than the writer's: moving fields out of a oneof,
    moving one field into a new oneof of its own, and adding new fields to a oneof are
    allowed, as in the guide and Confluent's registry. proto3 ``optional`` (a synthetic
    oneof) is not a oneof.
``oneof_field_removed``
    A member of a writer's real oneof is gone from the reader while the oneof lives on (its
    name, or another of its members, is still in the reader): data that set it reads as if
    no member were set. Removing a oneof whole is allowed (as in Confluent's registry). In
    a FORWARD check this is a field added to an existing oneof.
``required_changed``
    One side's field is proto2 ``required`` (or editions ``LEGACY_REQUIRED``) and the other's
    is not, or lacks it. A reader that requires a field the writer may omit refuses the
    message (required added); a required field removed or made optional breaks the readers
    that still require it. The guide calls required "forever", and Confluent refuses both.
    (Stricter than Confluent for a string, bytes or message field made optional, which it
    allows.)
``enum_value_removed``
    The writer's enum has a number the reader's does not. A proto2 (closed) enum reader moves
    the value to unknown fields, so the field reads as unset; a proto3 (open) reader keeps a
    bare number that no code or JSON name handles. Adding a value is compatible only for the
    reader that has it, so it is reported in the other direction. Renaming a value is
    compatible (numbers are on the wire, names are not). (Stricter than Confluent, which
    allows removing an enum value.)

Not reported, as wire-compatible: adding or removing fields (reserved or not) outside a
oneof, renaming fields, oneofs or enum values; adding messages to the file (BACKWARD);
explicit versus implicit presence (proto3 ``optional``); packed versus unpacked encoding
(parsers accept both); proto2 default values (they are not on the wire).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from google.protobuf import descriptor_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf.descriptor import (  # type: ignore[import-untyped, unused-ignore]
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    FileDescriptor,
    OneofDescriptor,
)

from conveyor.frontend.registry.breaking import Breaking, join

if TYPE_CHECKING:
    from conveyor.codecs.protobuf import ProtoSchema

_F = FieldDescriptor
_TYPE_NAMES: dict[int, str] = {
    _F.TYPE_DOUBLE: "double",
    _F.TYPE_FLOAT: "float",
    _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64",
    _F.TYPE_INT32: "int32",
    _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32",
    _F.TYPE_BOOL: "bool",
    _F.TYPE_STRING: "string",
    _F.TYPE_GROUP: "group",
    _F.TYPE_MESSAGE: "message",
    _F.TYPE_BYTES: "bytes",
    _F.TYPE_UINT32: "uint32",
    _F.TYPE_ENUM: "enum",
    _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64",
    _F.TYPE_SINT32: "sint32",
    _F.TYPE_SINT64: "sint64",
}
_INTEGERS = frozenset({_F.TYPE_INT32, _F.TYPE_UINT32, _F.TYPE_INT64, _F.TYPE_UINT64})
# Invariant: two types are wire-compatible when equal or both in one of these groups.
_COMPATIBLE = (
    _INTEGERS | {_F.TYPE_BOOL},
    _INTEGERS | {_F.TYPE_ENUM},
    frozenset({_F.TYPE_SINT32, _F.TYPE_SINT64}),
    frozenset({_F.TYPE_FIXED32, _F.TYPE_SFIXED32}),
    frozenset({_F.TYPE_FIXED64, _F.TYPE_SFIXED64}),
    frozenset({_F.TYPE_STRING, _F.TYPE_BYTES}),
)


def check(reader: ProtoSchema, writer: ProtoSchema) -> list[Breaking]:
    """Can every message written with ``writer`` be read with ``reader``?

    Args:
        reader: the schema reading the bytes.
        writer: the schema that wrote them.

    Returns:
        One ``Breaking`` per problem (see the module docstring for the rules); empty when
        compatible.
    """
    checker = _Checker(reader.descriptor.file.package)
    renamed = writer.descriptor if reader.message_name != writer.message_name else None
    if renamed is not None:
        checker.add(
            join("/", "messages", checker.local(reader.message_name)),
            "message_renamed",
            writer.message_name,
            reader.message_name,
            f"the message is {reader.message_name!r} for the reader but "
            f"{writer.message_name!r} for the writer",
        )
    checker.message(reader.descriptor, writer.descriptor)
    checker.file(reader.descriptor.file, writer.descriptor.file, renamed)
    return checker.found


def local_name(full_name: str, package: str) -> str:
    """``full_name`` without the leading ``package.``, when it is in that package."""
    prefix = f"{package}." if package else ""
    return full_name.removeprefix(prefix) if prefix else full_name


def type_name(message: Descriptor) -> str:
    """A message's name within its own file's package (``Order.Item`` for ``shop.Order.Item``)."""
    return local_name(message.full_name, message.file.package)


def is_map_entry(message: Descriptor) -> bool:
    """Whether the message is the entry type protoc generates for a ``map<K, V>`` field."""
    return bool(message.GetOptions().map_entry)


def real_oneofs(message: Descriptor) -> Iterator[OneofDescriptor]:
    """The message's oneofs, without the synthetic ones of proto3 ``optional`` fields."""
    proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(proto)
    synthetic = {f.oneof_index for f in proto.field if f.proto3_optional}
    for index, oneof in enumerate(message.oneofs):
        if index not in synthetic:
            yield oneof


def describe(field: FieldDescriptor) -> str:
    """The field's type as written in ``.proto`` (``repeated int32``, ``map<string, Item>``)."""
    message, enum = field.message_type, field.enum_type
    if message is not None and message.GetOptions().map_entry:
        key, value = message.fields_by_number[1], message.fields_by_number[2]
        return f"map<{describe(key)}, {describe(value)}>"
    if message is not None:
        base: str = message.full_name
    elif enum is not None:
        base = enum.full_name
    else:
        base = _TYPE_NAMES[field.type]
    if field.is_repeated:
        return f"repeated {base}"
    return f"required {base}" if field.is_required else base


def _wire_compatible(reader: int, writer: int) -> bool:
    return reader == writer or any(reader in g and writer in g for g in _COMPATIBLE)


class _Checker:
    """Collects the problems of one check; remembers the pairs of types already compared."""

    def __init__(self, package: str) -> None:
        self.found: list[Breaking] = []
        self._package = package
        self._seen: set[tuple[str, str]] = set()

    def local(self, full_name: str) -> str:
        return local_name(full_name, self._package)

    def add(self, path: str, rule: str, old: str | None, new: str | None, message: str) -> None:
        self.found.append(Breaking(path=path, rule=rule, old=old, new=new, message=message))

    def message(self, reader: Descriptor, writer: Descriptor) -> None:
        # Invariant: each (reader, writer) pair of types is compared once, which also ends
        # the walk of recursive messages.
        key = (reader.full_name, writer.full_name)
        if key in self._seen:
            return
        self._seen.add(key)
        for field in reader.fields:
            self._required(reader, field, writer.fields_by_number.get(field.number))
        for field in writer.fields:
            if field.number not in reader.fields_by_number:
                self._writer_only(reader, writer, field)
        common = set(reader.fields_by_number) & set(writer.fields_by_number)
        reader_groups = _oneof_groups(reader, common)
        writer_groups = _oneof_groups(writer, common)
        for number in sorted(common):
            r, w = reader.fields_by_number[number], writer.fields_by_number[number]
            path = self._field_path(reader, r)
            if w.is_required and not r.is_required:
                self._required_dropped(path, r, w)
            # A reader's oneof may be narrower than the writer's (a writer sets at most one of
            # a wider group), never wider: fields once independent cannot become exclusive.
            if not reader_groups[number] <= writer_groups[number]:
                self._oneof(path, r, w, reader_groups[number], writer_groups[number])
            if r.is_repeated != w.is_repeated:
                self.add(
                    path,
                    "label_changed",
                    describe(w),
                    describe(r),
                    f"field {r.name!r} (number {number}) is {describe(r)} for the reader but "
                    f"{describe(w)} for the writer",
                )
            self._type(reader, writer, r, w)

    def enum(self, reader: EnumDescriptor, writer: EnumDescriptor) -> None:
        key = (reader.full_name, writer.full_name)
        if key in self._seen:
            return
        self._seen.add(key)
        for value in writer.values:
            if value.number not in reader.values_by_number:
                self.add(
                    join("/", "enums", self.local(writer.full_name), "values", value.name),
                    "enum_value_removed",
                    f"{value.name} = {value.number}",
                    None,
                    f"the writer's enum {writer.full_name} has {value.name} = {value.number}, "
                    f"which the reader's enum {reader.full_name} lacks",
                )

    def file(
        self, reader: FileDescriptor, writer: FileDescriptor, renamed: Descriptor | None
    ) -> None:
        """Every message the writer's file declares, the reader's must declare too.

        Messages are matched by name within their package, scope by scope (nested messages
        within their parent), and compared field by field. The schema's own message, when
        renamed, is reported once as ``message_renamed``. Map entries are not declarations.
        """
        self._scope(
            list(reader.message_types_by_name.values()),
            list(writer.message_types_by_name.values()),
            renamed,
        )

    def _scope(
        self, readers: list[Descriptor], writers: list[Descriptor], renamed: Descriptor | None
    ) -> None:
        by_name = {m.name: m for m in readers if not is_map_entry(m)}
        for written in writers:
            if is_map_entry(written):
                continue
            read = by_name.get(written.name)
            if read is not None:
                self.message(read, written)
                self._scope(list(read.nested_types), list(written.nested_types), renamed)
            elif written is not renamed:
                self.add(
                    join("/", "messages", self.local(written.full_name)),
                    "message_removed",
                    written.full_name,
                    None,
                    f"the writer's file declares message {written.full_name}, which the "
                    "reader's does not (moved to an imported file, renamed or removed)",
                )

    def _writer_only(self, reader: Descriptor, writer: Descriptor, field: FieldDescriptor) -> None:
        """A writer's field the reader lacks: removed, which a oneof or ``required`` forbids."""
        path = join("/", "messages", self.local(writer.full_name), "fields", field.name)
        if field.is_required:
            self._required_dropped(path, None, field)
            return
        oneof = field.containing_oneof
        if oneof is None or oneof not in real_oneofs(writer):
            return
        # A oneof deleted whole (its name gone, none of its fields left) is a plain removal.
        names = {o.name for o in real_oneofs(reader)}
        if oneof.name in names or any(f.number in reader.fields_by_number for f in oneof.fields):
            self.add(
                path,
                "oneof_field_removed",
                f"{field.name}: {describe(field)} in oneof {oneof.name}",
                None,
                f"field {field.name!r} (number {field.number}) of the writer's oneof "
                f"{oneof.name} is gone from the reader, which would read such a message as "
                "if no member were set",
            )

    def _required_dropped(
        self, path: str, reader: FieldDescriptor | None, writer: FieldDescriptor
    ) -> None:
        self.add(
            path,
            "required_changed",
            describe(writer),
            "absent" if reader is None else describe(reader),
            f"field {writer.name!r} (number {writer.number}) is required by the writer but "
            f"{'absent from' if reader is None else 'optional for'} the reader: required is "
            "forever, as a reader that still requires it refuses data without it",
        )

    def _field_path(self, message: Descriptor, field: FieldDescriptor) -> str:
        return join("/", "messages", self.local(message.full_name), "fields", field.name)

    def _required(
        self, message: Descriptor, reader: FieldDescriptor, writer: FieldDescriptor | None
    ) -> None:
        if not reader.is_required or (writer is not None and writer.is_required):
            return
        self.add(
            self._field_path(message, reader),
            "required_changed",
            "absent" if writer is None else describe(writer),
            describe(reader),
            f"field {reader.name!r} (number {reader.number}) is required by the reader but "
            "the writer may leave it out",
        )

    def _oneof(
        self,
        path: str,
        reader: FieldDescriptor,
        writer: FieldDescriptor,
        reader_group: frozenset[int],
        writer_group: frozenset[int],
    ) -> None:
        def shown(field: FieldDescriptor, group: frozenset[int]) -> str:
            if len(group) == 1:
                return "not in a oneof with other fields"
            numbers = ", ".join(str(n) for n in sorted(group))
            oneof = field.containing_oneof
            name = oneof.name if oneof is not None else "?"
            return f"oneof {name} {{{numbers}}}"

        old, new = shown(writer, writer_group), shown(reader, reader_group)
        self.add(
            path,
            "oneof_changed",
            old,
            new,
            f"field {reader.name!r} (number {reader.number}) is {new} for the reader but "
            f"{old} for the writer",
        )

    def _type(
        self,
        reader_message: Descriptor,
        writer_message: Descriptor,
        reader: FieldDescriptor,
        writer: FieldDescriptor,
    ) -> None:
        if reader.type == writer.type:
            self._same_kind(reader_message, reader, writer)
        elif not _wire_compatible(reader.type, writer.type):
            self._incompatible(reader_message, reader, writer)
        elif reader.name != writer.name:
            self.add(
                join("/", "messages", self.local(writer_message.full_name), "fields", writer.name),
                "field_removed",
                f"{writer.name}: {describe(writer)}",
                f"{reader.name}: {describe(reader)}",
                f"field {writer.name!r} (number {writer.number}) was removed without reserving "
                f"its number, which now carries {reader.name!r}: old values would be read as "
                f"{reader.name!r}",
            )

    def _same_kind(
        self, message: Descriptor, reader: FieldDescriptor, writer: FieldDescriptor
    ) -> None:
        """Two messages (or groups) of one name compare field by field, two maps entry by
        entry, two enums value by value."""
        read, written = reader.message_type, writer.message_type
        if read is not None and written is not None:
            if is_map_entry(read) != is_map_entry(written) or (
                not is_map_entry(read) and type_name(read) != type_name(written)
            ):
                self._incompatible(message, reader, writer, "another message type")
                return
            self.message(read, written)
        elif reader.enum_type is not None and writer.enum_type is not None:
            self.enum(reader.enum_type, writer.enum_type)

    def _incompatible(
        self,
        message: Descriptor,
        reader: FieldDescriptor,
        writer: FieldDescriptor,
        why: str = "not wire-compatible",
    ) -> None:
        old, new = describe(writer), describe(reader)
        if reader.name == writer.name:
            self.add(
                self._field_path(message, reader),
                "type_changed",
                old,
                new,
                f"field {reader.name!r} (number {reader.number}) is {new} for the reader but "
                f"{old} for the writer, which is {why}",
            )
            return
        self.add(
            self._field_path(message, reader),
            "number_reused",
            f"{writer.name}: {old}",
            f"{reader.name}: {new}",
            f"number {reader.number} was {writer.name!r} ({old}) and is reused by "
            f"{reader.name!r} ({new}): reserve the numbers of removed fields",
        )


def _oneof_groups(message: Descriptor, common: set[int]) -> dict[int, frozenset[int]]:
    """For each common field number: the common numbers of its real oneof (or itself)."""
    groups = {n: frozenset({n}) for n in common}
    for oneof in real_oneofs(message):
        members = frozenset(f.number for f in oneof.fields if f.number in common)
        for number in members:
            groups[number] = members
    return groups
