"""Binary data in: the registry version it was written with, and its canonical JSON form.

The version is picked as the publish path picks it (``PublishService._schemas``): the one
asked for, in the topic's range, else the newest the topic admits. The data is decoded by
:func:`conveyor.codecs.binary.decode`; this module names the schema and the place in the
request when it does not decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import msgspec

from conveyor.codecs import binary
from conveyor.errors import InvalidRequest, NotFound
from conveyor.frontend.registry.registry import Schema, SchemaRegistry
from conveyor.model import SchemaSettings, SchemaType, Topic

__all__ = ["Place", "WriterSchemas", "decoded"]

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
        schema = await topic_version(
            self._registry, self._topic, settings, version, field=field, index=place.index
        )
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


async def topic_version(
    registry: SchemaRegistry,
    topic: Topic,
    settings: SchemaSettings,
    wanted: int | None,
    *,
    field: str,
    index: int | None,
) -> Schema:
    """The registry version an event of ``topic`` (bound to a subject) is written with: the
    version asked for, in the topic's range, else the newest the topic admits.

    Raises:
        InvalidRequest: 400, rule ``range`` (outside the topic's range, or the subject has no
            version in it yet) or ``exists`` (no such version), naming ``field``.
    """
    first, last = settings.first_version, settings.last_version
    if wanted is not None and (wanted < first or (last is not None and wanted > last)):
        upper = "latest" if last is None else str(last)
        raise InvalidRequest(
            f"topic {topic.name!r} accepts versions {first}..{upper} of subject "
            f"{settings.subject!r}, not {wanted}",
            field=field,
            rule="range",
            index=index,
        )
    try:
        schema = await registry.version(settings.subject, wanted or last)
    except NotFound as e:
        raise InvalidRequest(e.message, field=field, rule="exists", index=index) from e
    if schema.version < first:
        raise InvalidRequest(
            f"subject {settings.subject!r} has no version in topic {topic.name!r}'s "
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
        return binary.decode(schema, data)
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
