"""Formats out: each subscription's events in the encoding, schema version and envelope it
chose (its :class:`~conveyor.model.DeliveryFormat`).

Events are stored in their canonical JSON form with the id of the schema they were written
with. For a subscription that takes them as stored (JSON, the writer's version, no envelope)
on a topic bound to no subject, :meth:`Transcoder.format_for` answers ``None`` and the push
goes out exactly as before: nothing is looked up, decoded or copied. Otherwise each event is
converted:

* **Avro** — the JSON is written with the writer's schema; with a reader version, it is read
  back with the writer's and the reader's schemas (Avro schema resolution: a field the reader
  added takes its default, a field it removed disappears, numbers promote) and written with
  the reader's. Logical types are left as their underlying types, as in the canonical form.
* **Protobuf** — the JSON is encoded with the writer's message; with a reader version, it is
  parsed with the reader's message and the fields it does not know are dropped.
* **JSON with a reader version** — the reader's view of the event, as its canonical JSON.
  A JSON Schema subject defines no resolution: its events go as written.
* **CloudEvents** — the result is wrapped in a CloudEvent (spec 1.0, JSON structured mode):
  ``id`` the event's id, ``source`` its ``ce-source`` attribute or ``conveyor://<topic>``,
  ``type`` its ``ce-type`` attribute or the topic's name, ``subject`` its ``ce-subject``
  attribute or its key, ``time`` the publish time, ``datacontenttype``, ``dataschema``
  (``/v1/schemas/<id>``), every other ``ce-<name>`` attribute as the extension ``<name>``
  (names of 1-20 lowercase letters or digits, not a core attribute's), and ``data`` (JSON) or
  ``data_base64`` (binary).

An event that cannot be encoded (no schema id for a binary encoding or a reader version, an
encoding that is not its subject's type, a reader version the subject lacks, data the reader
cannot resolve) is not pushed: it gets a fatal result naming the reason, so it goes dead with
that error. A registry that cannot be read (the store is down) gives ``retry`` instead.

:func:`check_format` is the check made when a subscription is put.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

import fastavro
import msgspec

from conveyor.errors import ConveyorError, InvalidRequest, NotFound
from conveyor.frontend.registry import protobuf
from conveyor.model import DeliveryFormat, Event, SchemaType, Topic
from conveyor.wire.push import (
    AVRO_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PROTOBUF_CONTENT_TYPE,
    PushEvent,
)

if TYPE_CHECKING:
    from conveyor.catalog import Catalog
    from conveyor.frontend.registry.registry import Schema

CONTENT_TYPES = {"avro": AVRO_CONTENT_TYPE, "protobuf": PROTOBUF_CONTENT_TYPE}
"""The content type of each binary encoding."""
CE_ATTRIBUTE_PREFIX = "ce-"
_CE_CORE = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
)
_CE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_NULL = msgspec.Raw(b"null")
_FastavroSchema: TypeAlias = "str | list[Any] | dict[Any, Any]"


class SchemaSource(Protocol):
    """Where registry schemas are read (the :class:`SchemaRegistry`)."""

    async def by_id(self, schema_id: int) -> Schema:
        """A schema by its id; raises ``NotFound``."""
        ...

    async def version(self, subject: str, version: int | None) -> Schema:
        """A subject's version by number (``None``: the latest); raises ``NotFound``."""
        ...


@dataclass(frozen=True, slots=True)
class Unencodable:
    """An event that cannot go out in its subscription's format.

    Attributes:
        error: why, for the event's history.
        retry: the cause may pass (the registry could not be read); otherwise it is final.
    """

    error: str
    retry: bool = False


class _Skip(Exception):
    """Raised while encoding one event: it gets ``result`` instead of a push."""

    def __init__(self, result: Unencodable) -> None:
        super().__init__(result.error)
        self.result = result


# -- Avro: the canonical JSON form <-> Avro data --------------------------------------------


@dataclass(frozen=True, slots=True)
class AvroCodec:
    """An Avro schema ready to read and write the canonical JSON form.

    Attributes:
        schema: the fastavro-parsed schema, logical types removed (the canonical form keeps
            their underlying values: a timestamp is its number, a decimal its bytes).
        names: every named type in it, by full name.
    """

    schema: object
    names: Mapping[str, object]

    @classmethod
    def parse(cls, definition: str) -> AvroCodec:
        """Compile an Avro schema's text.

        Raises:
            ValueError: it is not JSON or not a valid Avro schema.
        """
        names: dict[str, dict[str, Any]] = {}
        plain = cast("_FastavroSchema", _underlying(json.loads(definition)))
        return cls(fastavro.parse_schema(plain, named_schemas=names), names)

    def encode(self, value: object) -> bytes:
        """The canonical JSON form of a value (as Python) to Avro binary (a datum as fastavro
        reads it, with bytes as ``bytes``, is accepted too).

        Raises:
            ValueError: the value does not fit the schema.
        """
        out = io.BytesIO()
        try:
            schema = cast("_FastavroSchema", self.schema)
            fastavro.schemaless_writer(out, schema, self._datum(schema, value))
        except (TypeError, KeyError, AttributeError) as e:
            raise ValueError(f"the value does not fit the Avro schema: {e}") from e
        return out.getvalue()

    def decode(self, data: bytes, reader: AvroCodec | None = None) -> object:
        """Avro binary written with this schema to the canonical JSON form, optionally
        resolved to a ``reader`` schema.

        Raises:
            ValueError: the data does not decode, or does not resolve to the reader.
        """
        return _canonical(self._read(data, reader))

    def resolve(self, data: bytes, reader: AvroCodec) -> bytes:
        """Avro binary written with this schema, rewritten with the ``reader`` schema after
        Avro's schema resolution.

        Raises:
            ValueError: the data does not decode, or does not resolve to the reader.
        """
        # The datum as read, not its canonical form: bytes stay bytes, so a union keeps its
        # branch (the canonical form cannot tell bytes from a string).
        return reader.encode(self._read(data, reader))

    def _read(self, data: bytes, reader: AvroCodec | None) -> object:
        try:
            return fastavro.schemaless_reader(
                io.BytesIO(data),
                cast("_FastavroSchema", self.schema),
                None if reader is None else cast("_FastavroSchema", reader.schema),
            )
        except Exception as e:  # fastavro raises many types; all mean "bad data"
            raise ValueError(f"the Avro data does not decode: {type(e).__name__}: {e}") from e

    def _resolve(self, schema: object) -> object:
        return self.names.get(schema, schema) if isinstance(schema, str) else schema

    def _datum(self, schema: object, value: object) -> object:
        """The datum fastavro writes for a canonical value: bytes and fixed from strings,
        union branches named (tuple notation), missing record fields filled by default.
        A value of the wrong shape is left for fastavro to name the problem."""
        if isinstance(schema, list):
            branch = self._branch(schema, value)
            return (_branch_name(branch), self._datum(branch, value))
        node = self._resolve(schema)
        if isinstance(node, str):
            return value.encode("latin-1") if node == "bytes" and isinstance(value, str) else value
        return self._complex(cast("Mapping[str, object]", node), value)

    def _complex(self, spec: Mapping[str, object], value: object) -> object:
        kind = spec["type"]
        if kind in _RECORDS and isinstance(value, Mapping):
            return self._record(spec, value)
        if kind == "array" and isinstance(value, list):
            return [self._datum(spec["items"], v) for v in value]
        if kind == "map" and isinstance(value, Mapping):
            return {k: self._datum(spec["values"], v) for k, v in value.items()}
        if kind in _NAMED_OR_COMPLEX:
            return value.encode("latin-1") if kind == "fixed" and isinstance(value, str) else value
        return self._datum(kind, value)  # a primitive written as {"type": "bytes"}

    def _record(self, record: Mapping[str, object], value: Mapping[str, object]) -> object:
        out: dict[str, object] = {}
        for field in cast("list[Mapping[str, object]]", record["fields"]):
            name = cast("str", field["name"])
            if name in value:
                out[name] = self._datum(field["type"], value[name])
            elif "default" in field:
                out[name] = self._datum(field["type"], field["default"])
        return out

    def _branch(self, union: list[object], value: object) -> object:
        # The first branch the value fits: the canonical form does not name the branch.
        for branch in union:
            if self._fits(branch, value):
                return branch
        raise ValueError(f"{_short(value)} fits no branch of the union {_short(union)}")

    def _fits(self, schema: object, value: object) -> bool:
        node = self._resolve(schema)
        if isinstance(node, list):
            return any(self._fits(b, value) for b in node)
        if isinstance(node, str):
            test = _PRIMITIVE_FITS.get(node)
            return test is not None and test(value)
        spec = cast("Mapping[str, object]", node)
        complex_test = _COMPLEX_FITS.get(cast("str", spec["type"]))
        if complex_test is None:
            return self._fits(spec["type"], value)  # a primitive written as a mapping
        return complex_test(spec, value)


def _fits_record(record: Mapping[str, object], value: Mapping[str, object]) -> bool:
    fields = cast("list[Mapping[str, object]]", record["fields"])
    known = {f["name"] for f in fields}
    return set(value) <= known and all(f["name"] in value or "default" in f for f in fields)


def _is_int(bits: int) -> Callable[[object], bool]:
    def test(value: object) -> bool:
        return type(value) is int and -(2**bits) <= value < 2**bits

    return test


_PRIMITIVE_FITS: dict[str, Callable[[object], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": _is_int(31),
    "long": _is_int(63),
    "float": lambda v: type(v) in (int, float),
    "double": lambda v: type(v) in (int, float),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, str | bytes),
}


def _fits_fixed(spec: Mapping[str, object], value: object) -> bool:
    return isinstance(value, str | bytes) and len(value) == spec["size"]


_COMPLEX_FITS: dict[str, Callable[[Mapping[str, object], object], bool]] = {
    "enum": lambda spec, v: v in cast("list[str]", spec["symbols"]),
    "fixed": _fits_fixed,
    "array": lambda _, v: isinstance(v, list),
    "map": lambda _, v: isinstance(v, Mapping),
    "record": lambda spec, v: isinstance(v, Mapping) and _fits_record(spec, v),
    "error": lambda spec, v: isinstance(v, Mapping) and _fits_record(spec, v),
}
_RECORDS = frozenset({"record", "error"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_NAMED_OR_COMPLEX = frozenset({"record", "error", "enum", "fixed", "array", "map"})


def _underlying(node: object) -> object:
    """An Avro schema (as JSON) without its ``logicalType`` attributes."""
    if isinstance(node, list):
        return [_underlying(b) for b in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "logicalType":
            continue
        if key in ("type", "items", "values"):
            out[key] = _underlying(value)
        elif key == "fields" and isinstance(value, list):
            out[key] = [{**f, "type": _underlying(f.get("type"))} for f in value]
        else:
            out[key] = value
    return out


def _branch_name(branch: object) -> str:
    if isinstance(branch, str):
        return branch
    spec = cast("Mapping[str, object]", branch)
    return str(spec["name"] if spec["type"] in _NAMED else spec["type"])


def _canonical(datum: object) -> object:
    """Data fastavro read, in the canonical JSON form (bytes as code points 0-255)."""
    if isinstance(datum, bytes):
        return datum.decode("latin-1")
    if isinstance(datum, dict):
        return {k: _canonical(v) for k, v in datum.items()}
    if isinstance(datum, list):
        return [_canonical(v) for v in datum]
    return datum


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- routes: one writer schema to one reader schema ---------------------------------------


class _Route:
    """How events written with one schema go out in one reader version (or the writer's)."""

    def __init__(self, writer: Schema, reader: Schema) -> None:
        self.kind = writer.type
        self.writer_id = writer.id
        self.reader_id = reader.id
        self.reader_version = reader.version
        self.same = writer.id == reader.id
        self._avro: tuple[AvroCodec, AvroCodec] | None = None
        self._proto: tuple[protobuf.ProtoSchema, protobuf.ProtoSchema] | None = None
        if self.kind is SchemaType.AVRO:
            w = AvroCodec.parse(writer.stored.definition)
            r = w if self.same else AvroCodec.parse(reader.stored.definition)
            self._avro = (w, r)
        elif self.kind is SchemaType.PROTOBUF:
            self._proto = (
                cast("protobuf.ProtoSchema", writer.parsed),
                cast("protobuf.ProtoSchema", reader.parsed),
            )

    def binary(self, value: object) -> bytes:
        """The event in its subject's binary encoding, in the reader's version."""
        if self._avro is not None:
            writer, reader = self._avro
            data = writer.encode(value)
            return data if self.same else writer.resolve(data, reader)
        if self._proto is not None:
            writer_msg, reader_msg = self._proto
            data = protobuf.encode(writer_msg, cast("Mapping[str, object]", value))
            if self.same:
                return data
            message = reader_msg.message_class.FromString(data)
            message.DiscardUnknownFields()
            out: bytes = message.SerializeToString(deterministic=True)
            return out
        raise ValueError(f"a {self.kind.value} schema has no binary encoding")

    def json(self, payload: bytes) -> bytes:
        """The event as the reader's canonical JSON."""
        if self.same or self.kind is SchemaType.JSON:
            return payload
        value = msgspec.json.decode(payload)
        if self._avro is not None:
            writer, reader = self._avro
            resolved = writer.decode(writer.encode(value), reader)
        else:
            writer_msg, reader_msg = cast(
                "tuple[protobuf.ProtoSchema, protobuf.ProtoSchema]", self._proto
            )
            data = protobuf.encode(writer_msg, cast("Mapping[str, object]", value))
            resolved = protobuf.decode(reader_msg, data)
        return msgspec.json.encode(resolved)


# -- the transcoder -------------------------------------------------------------------------


class Transcoder:
    """Turns stored events into their subscription's delivery format.

    Args:
        registry: where schemas are read (compiled versions are cached here for good:
            a version never changes).
        catalog: the subscriptions (their formats) and topics (their subjects).
    """

    def __init__(self, registry: SchemaSource, catalog: Catalog) -> None:
        self._registry = registry
        self._catalog = catalog
        # Invariant: a route, once built, is right forever (schema versions are immutable).
        self._routes: dict[tuple[int, int | None], _Route] = {}

    def format_for(self, subscription: str) -> DeliveryFormat | None:
        """The subscription's format when its pushes need work, else ``None``.

        ``None`` means: push the events as stored (JSON, the writer's version, no envelope)
        and the topic has no subject whose schema id and version would go with them.
        """
        try:
            sub = self._catalog.subscription(subscription)
        except NotFound:
            return None
        fmt = sub.format
        if fmt.as_stored:
            topic = self._catalog.find_topic(sub.topic)
            if topic is None or topic.schema_settings is None:
                return None
        return fmt

    async def prepare(
        self, fmt: DeliveryFormat, events: Sequence[Event], attempts: Sequence[int]
    ) -> list[PushEvent | Unencodable]:
        """Every event in ``fmt``: the event to push, or why it cannot be.

        Never raises: a failure is the event's :class:`Unencodable`.
        """
        routes = await self._routes_for(fmt, {e.schema_id for e in events})
        out: list[PushEvent | Unencodable] = []
        for event, attempt in zip(events, attempts, strict=True):
            try:
                route = self._route_of(fmt, event, routes)
                out.append(_encode(fmt, event, attempt, route))
            except _Skip as skip:
                out.append(skip.result)
        return out

    async def _routes_for(
        self, fmt: DeliveryFormat, ids: Iterable[int | None]
    ) -> dict[int, _Route | Unencodable]:
        routes: dict[int, _Route | Unencodable] = {}
        for schema_id in ids:
            if schema_id is None:
                continue
            key = (schema_id, fmt.schema_version)
            route = self._routes.get(key)
            if route is None:
                try:
                    route = await self._build(schema_id, fmt.schema_version)
                except _Skip as skip:
                    routes[schema_id] = skip.result
                    continue
                self._routes[key] = route
            routes[schema_id] = route
        return routes

    async def _build(self, schema_id: int, version: int | None) -> _Route:
        try:
            writer = await self._registry.by_id(schema_id)
        except NotFound as e:
            raise _Skip(Unencodable(f"schema {schema_id} of the event does not exist")) from e
        except ConveyorError as e:
            raise _Skip(Unencodable(f"the schema registry is unavailable: {e}", True)) from e
        reader = writer
        # A JSON Schema subject defines no resolution: its events go as written.
        if version not in (None, writer.version) and writer.type is not SchemaType.JSON:
            subject = writer.stored.subject
            try:
                reader = await self._registry.version(subject, version)
            except NotFound as e:
                raise _Skip(
                    Unencodable(f"subject {subject!r} has no version {version} to read with")
                ) from e
            except ConveyorError as e:
                raise _Skip(Unencodable(f"the schema registry is unavailable: {e}", True)) from e
        try:
            return _Route(writer, reader)
        except Exception as e:  # a stored schema that does not compile is final
            raise _Skip(Unencodable(f"schema {reader.id} does not compile: {e}")) from e

    def _route_of(
        self, fmt: DeliveryFormat, event: Event, routes: Mapping[int, _Route | Unencodable]
    ) -> _Route | None:
        if event.schema_id is None:
            if fmt.encoding != "json" or fmt.schema_version is not None:
                wanted = (
                    f"as {fmt.encoding}"
                    if fmt.encoding != "json"
                    else f"in version {fmt.schema_version}"
                )
                raise _Skip(
                    Unencodable(
                        f"the event has no schema (its topic {event.topic!r} was bound to no "
                        f"registry subject when it was published), so it cannot be delivered "
                        f"{wanted}"
                    )
                )
            return None
        route = routes[event.schema_id]
        if isinstance(route, Unencodable):
            raise _Skip(route)
        if fmt.encoding not in ("json", route.kind.value):
            raise _Skip(
                Unencodable(
                    f"the event was written with a {route.kind.value} schema "
                    f"(id {route.writer_id}): it cannot be encoded as {fmt.encoding}"
                )
            )
        return route


def _encode(fmt: DeliveryFormat, event: Event, attempt: int, route: _Route | None) -> PushEvent:
    payload = event.payload
    data: bytes | None = None
    try:
        if fmt.encoding != "json" and route is not None:
            data = route.binary(msgspec.json.decode(payload))
        elif route is not None and not route.same:
            payload = route.json(payload)
    except Exception as e:  # encoding is deterministic: a retry would fail the same way
        schema = "" if route is None else f" with schema {route.reader_id}"
        raise _Skip(Unencodable(f"cannot encode the event as {fmt.encoding}{schema}: {e}")) from e
    schema_id = None if route is None else route.reader_id
    version = None if route is None else route.reader_version
    content_type = CONTENT_TYPES.get(fmt.encoding) if data is not None else None
    text = None if data is None else base64.b64encode(data).decode("ascii")
    out = msgspec.Raw(payload)
    if fmt.cloudevents:
        out = cloud_event(event, payload if data is None else None, text, content_type, schema_id)
        content_type, text = CLOUDEVENTS_CONTENT_TYPE, None
    elif data is not None:
        out = _NULL
    return PushEvent(
        event.id,
        event.topic,
        event.partition,
        event.offset,
        out,
        event.publish_ms,
        attempt,
        event.key,
        event.attributes,
        event.deliver_at_ms,
        content_type,
        text,
        schema_id,
        version,
    )


def cloud_event(
    event: Event,
    json_data: bytes | None,
    data_base64: str | None,
    content_type: str | None,
    schema_id: int | None,
) -> msgspec.Raw:
    """The event as a CloudEvent in JSON structured mode (see the module's docstring).

    Args:
        event: the event.
        json_data: its data as JSON (``None`` for binary data).
        data_base64: its binary data in base64 (``None`` for JSON data).
        content_type: the binary data's content type (``None``: JSON).
        schema_id: the schema the data follows, or ``None``.

    Returns:
        The CloudEvent's JSON.
    """
    attributes = event.attributes or {}
    envelope: dict[str, object] = {
        "specversion": "1.0",
        "id": event.id,
        "source": attributes.get("ce-source") or f"conveyor://{event.topic}",
        "type": attributes.get("ce-type") or event.topic,
        "time": _rfc3339(event.publish_ms),
        "datacontenttype": content_type or JSON_CONTENT_TYPE,
    }
    if schema_id is not None:
        envelope["dataschema"] = f"/v1/schemas/{schema_id}"
    subject = attributes.get("ce-subject") or event.key
    if subject is not None:
        envelope["subject"] = subject
    for name, value in attributes.items():
        extension = name[len(CE_ATTRIBUTE_PREFIX) :]
        if (
            name.startswith(CE_ATTRIBUTE_PREFIX)
            and extension not in _CE_CORE
            and _CE_NAME.match(extension)
            and not extension.startswith("data")
        ):
            envelope[extension] = value
    if data_base64 is not None:
        envelope["data_base64"] = data_base64
    else:
        envelope["data"] = msgspec.Raw(json_data or b"null")
    return msgspec.Raw(msgspec.json.encode(envelope))


def _rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the check when a subscription is put -------------------------------------------------


async def check_format(registry: SchemaSource, topic: Topic | None, fmt: DeliveryFormat) -> None:
    """Refuse a delivery format that the subscription's topic cannot give.

    A binary encoding needs the topic bound to a subject of that type; a schema version
    needs the topic bound to an Avro or Protobuf subject that has that version.

    Args:
        registry: the schema registry.
        topic: the subscription's topic (``None``: it does not exist; nothing is checked,
            the catalog refuses the subscription).
        fmt: the subscription's format.

    Raises:
        InvalidRequest: the format does not fit the topic (the field is ``/format/...``).
    """
    if topic is None or (fmt.encoding == "json" and fmt.schema_version is None):
        return
    field = "/format/encoding" if fmt.encoding != "json" else "/format/schema_version"
    settings = topic.schema_settings
    if settings is None:
        raise InvalidRequest(
            f"topic {topic.name!r} is bound to no schema registry subject, so its events "
            f"cannot be delivered "
            + (f"as {fmt.encoding}" if fmt.encoding != "json" else "in a schema version"),
            field=field,
            rule="schema_settings",
        )
    try:
        latest = await registry.version(settings.subject, None)
    except NotFound as e:
        raise InvalidRequest(
            f"subject {settings.subject!r} of topic {topic.name!r} has no version yet",
            field=field,
            rule="exists",
        ) from e
    kind = latest.type.value
    if fmt.encoding not in ("json", kind):
        raise InvalidRequest(
            f"topic {topic.name!r} holds {kind} data (subject {settings.subject!r}): it "
            f"cannot be delivered as {fmt.encoding}",
            field="/format/encoding",
            rule="schema_type",
        )
    if fmt.schema_version is None:
        return
    if latest.type is SchemaType.JSON:
        raise InvalidRequest(
            "schema_version needs an Avro or Protobuf subject (a JSON Schema has no "
            f"resolution rules); subject {settings.subject!r} holds JSON Schemas",
            field="/format/schema_version",
            rule="schema_type",
        )
    try:
        await registry.version(settings.subject, fmt.schema_version)
    except NotFound as e:
        raise InvalidRequest(
            f"subject {settings.subject!r} has no version {fmt.schema_version}",
            field="/format/schema_version",
            rule="exists",
        ) from e


__all__ = [
    "CONTENT_TYPES",
    "AvroCodec",
    "SchemaSource",
    "Transcoder",
    "Unencodable",
    "check_format",
    "cloud_event",
]
