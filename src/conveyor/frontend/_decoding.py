"""Binary data in: the registry version it was written with, and its canonical JSON form.

The version is picked as the publish path picks it (``PublishService._schemas``): the one
asked for, in the topic's range, else the newest the topic admits. The JSON form of Avro is
:mod:`~conveyor.frontend.registry.avro_json`'s: a record is an object, a union is its
branch's value (no ``{"type": value}`` wrapper), bytes and fixed are strings of code points
0-255 (as in Avro's JSON encoding), and a logical type is its underlying type (a
``timestamp-millis`` is its long). Protobuf's is protobuf's JSON mapping with the ``.proto``
field names (:func:`conveyor.frontend.registry.protobuf.decode`).
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

import fastavro
import fastavro.types
import msgspec

from conveyor.errors import InvalidRequest, NotFound
from conveyor.frontend.registry import protobuf
from conveyor.frontend.registry.registry import Schema, SchemaRegistry
from conveyor.model import SchemaSettings, SchemaType, Topic

__all__ = ["Place", "WriterSchemas", "decode", "decoded"]

# The end of a dataschema's path that names a version of a Conveyor registry.
_CONVEYOR_SCHEMA = re.compile(
    r"/v1/(?:subjects/(?P<subject>[^/]+)/versions/(?P<version>[0-9]+)|schemas/(?P<id>[0-9]+))\Z",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Place:
    """Where one event's parts are in its request, for errors: JSON pointers or headers."""

    media: str
    version: str
    schema_id: str
    payload: str
    index: int | None = None


class WriterSchemas:
    """The registry versions binary data for one topic is written with.

    Args:
        topic: the topic.
        registry: the schema registry.
    """

    def __init__(self, topic: Topic, registry: SchemaRegistry) -> None:
        self._topic = topic
        self._registry = registry

    async def dataschema_version(self, dataschema: str | None, place: Place) -> int | None:
        """The version a ``dataschema`` naming a version of this node's registry stands for
        (``…/v1/subjects/<subject>/versions/<n>`` or ``…/v1/schemas/<id>``); other URIs
        only describe the data."""
        settings = self._topic.schema_settings
        if settings is None or dataschema is None:
            return None
        found = _CONVEYOR_SCHEMA.search(urlsplit(dataschema).path)
        if found is None:
            return None
        if found.group("id") is not None:
            return await self._version_of_id(
                settings, int(found.group("id")), place.version, place.index
            )
        subject = unquote(found.group("subject"))
        if subject != settings.subject:
            raise InvalidRequest(
                f"dataschema names subject {subject!r}; topic {self._topic.name!r} takes "
                f"versions of {settings.subject!r}",
                field=place.version,
                rule="subject",
                index=place.index,
            )
        return int(found.group("version"))

    async def schema(
        self, kind: SchemaType, version: int | None, schema_id: int | None, place: Place
    ) -> Schema:
        """The registry version binary data was written with."""
        settings = self._topic.schema_settings
        if settings is None:
            raise InvalidRequest(
                f"topic {self._topic.name!r} is bound to no registry subject, so it cannot "
                f"read {kind.value} data (bind it with schema_settings, or publish JSON)",
                field=place.media,
                rule="media_type",
                status=415,
                index=place.index,
            )
        field = place.version
        if schema_id is not None:
            if version is not None:
                raise InvalidRequest(
                    "give a schema version or a schema id, not both",
                    field=place.schema_id,
                    rule="exclusive",
                    index=place.index,
                )
            version = await self._version_of_id(settings, schema_id, place.schema_id, place.index)
            field = place.schema_id
        schema = await self._version(settings, version, field, place.index)
        if schema.type is not kind:
            raise InvalidRequest(
                f"topic {self._topic.name!r} takes {schema.type.value} data (subject "
                f"{settings.subject!r}), not {kind.value}",
                field=place.media,
                rule="media_type",
                status=415,
                index=place.index,
            )
        return schema

    async def _version_of_id(
        self, settings: SchemaSettings, schema_id: int, field: str, index: int | None
    ) -> int:
        try:
            schema = await self._registry.by_id(schema_id)
        except NotFound as e:
            raise InvalidRequest(e.message, field=field, rule="exists", index=index) from e
        if schema.stored.subject != settings.subject:
            raise InvalidRequest(
                f"schema {schema_id} is a version of subject {schema.stored.subject!r}; topic "
                f"{self._topic.name!r} takes versions of {settings.subject!r}",
                field=field,
                rule="subject",
                index=index,
            )
        return schema.version

    async def _version(
        self, settings: SchemaSettings, wanted: int | None, field: str, index: int | None
    ) -> Schema:
        """As the publish path picks it (PublishService._schemas): the version asked for, in
        the topic's range, else the newest the topic admits."""
        first, last = settings.first_version, settings.last_version
        if wanted is not None and (wanted < first or (last is not None and wanted > last)):
            upper = "latest" if last is None else str(last)
            raise InvalidRequest(
                f"topic {self._topic.name!r} accepts versions {first}..{upper} of subject "
                f"{settings.subject!r}, not {wanted}",
                field=field,
                rule="range",
                index=index,
            )
        try:
            schema = await self._registry.version(settings.subject, wanted or last)
        except NotFound as e:
            raise InvalidRequest(e.message, field=field, rule="exists", index=index) from e
        if schema.version < first:
            raise InvalidRequest(
                f"subject {settings.subject!r} has no version in topic {self._topic.name!r}'s "
                f"range yet (newest: {schema.version})",
                field=field,
                rule="range",
                index=index,
            )
        return schema


def decoded(schema: Schema, data: bytes, place: Place) -> msgspec.Raw:
    """Binary data as the JSON the publish path validates against ``schema``.

    Raises:
        InvalidRequest: 400, rule ``decode``, with the schema's id and version.
    """
    try:
        return decode(schema, data)
    except ValueError as e:
        error = InvalidRequest(
            f"the data is not {schema.type.value} of schema {schema.id} (version "
            f"{schema.version} of subject {schema.stored.subject!r}): {e}",
            field=place.payload,
            rule="decode",
            index=place.index,
        )
        error.schema_id, error.schema_version = schema.id, schema.version
        raise error from e


def decode(schema: Schema, data: bytes) -> msgspec.Raw:
    """One datum of ``schema`` (Avro or Protobuf binary, no framing) as JSON.

    Raises:
        ValueError: the data is not one datum of the schema with nothing after it, or the
            schema is of another type.
    """
    if schema.type is SchemaType.AVRO:
        value = _avro_json(schema.stored.definition, data)
    elif schema.type is SchemaType.PROTOBUF:
        value = protobuf.decode(cast("protobuf.ProtoSchema", schema.parsed), data)
    else:
        raise ValueError(f"{schema.type.value} schemas have no binary form")
    return msgspec.Raw(msgspec.json.encode(value))


_AVRO_ERRORS = (
    EOFError,
    IndexError,
    KeyError,
    OverflowError,
    RecursionError,
    TypeError,
    UnicodeDecodeError,
    ValueError,
)


def _avro_json(definition: str, data: bytes) -> object:
    """Avro binary in the canonical JSON form.

    Raises:
        ValueError: the data is not one datum of the schema, with nothing after it.
    """
    schema = _avro_reader(definition)
    stream = io.BytesIO(data)
    try:
        value = fastavro.schemaless_reader(stream, schema)
    except _AVRO_ERRORS as e:
        detail = str(e) or type(e).__name__
        raise ValueError(
            f"the data ends early ({detail})" if isinstance(e, EOFError) else detail
        ) from e
    left = len(data) - stream.tell()
    if left:
        raise ValueError(f"{left} byte(s) left over after the datum")
    return _json_form(value)


@functools.lru_cache(maxsize=256)
def _avro_reader(definition: str) -> fastavro.types.Schema:
    """The schema to read with: without logical types, whose JSON form is their underlying
    type's. (Cached by text: a registered version never changes.)

    Raises:
        ValueError: the schema has arrays of items that take no bytes, whose count a few
            bytes of data could set to billions.
    """
    named: dict[str, dict[str, object]] = {}
    plain = cast("fastavro.types.Schema", _without_logical_types(json.loads(definition)))
    parsed = fastavro.parse_schema(plain, named)
    if any(
        _zero_width(items, named, frozenset()) for items in _array_items([parsed, *named.values()])
    ):
        raise ValueError("the schema has arrays of items that take no bytes: not decoded")
    return parsed


def _without_logical_types(schema: object) -> object:
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def _array_items(schema: object) -> Iterator[object]:
    """The item schema of every array written inside ``schema`` (not through names)."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _array_items(branch)
    elif isinstance(schema, dict):
        if schema.get("type") == "array":
            yield schema["items"]
        for key in ("type", "items", "values"):
            if not isinstance(schema.get(key), str):
                yield from _array_items(schema.get(key))
        for field in schema.get("fields") or ():
            yield from _array_items(field["type"])


def _zero_width(schema: object, named: Mapping[str, object], seen: frozenset[str]) -> bool:
    """Whether a datum of ``schema`` takes no bytes (null, fixed of size 0, records of such).

    A union, array, map or enum never does: its branch index, count or symbol takes a byte.
    """
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return _zero_width(named[schema], named, seen | {schema})
        return schema == "null"
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind in ("record", "error"):
        return all(_zero_width(f["type"], named, seen) for f in schema.get("fields") or ())
    if kind == "fixed":
        return bool(schema.get("size") == 0)
    return kind not in ("array", "map", "enum") and _zero_width(kind, named, seen)


def _json_form(value: object) -> object:
    """fastavro's value as JSON: bytes and fixed as strings of code points 0-255."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {k: _json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_form(v) for v in value]
    return value
