"""Formats out: each subscription's events in the encoding, schema version and envelope it
chose (its :class:`~conveyor.model.DeliveryFormat`).

Events are stored in their canonical JSON form with the id of the schema they were written
with. For a subscription that takes them as stored (JSON, the writer's version, no envelope)
on a topic bound to no subject, :meth:`Transcoder.format_for` answers ``None`` and the push
goes out exactly as before: nothing is looked up, decoded or copied. Otherwise each event is
converted by the codecs (:mod:`conveyor.codecs.transcode`: Avro, Protobuf, JSON in a reader
version, CloudEvents), along a route this module builds from the registry once per pair of
writer and reader versions.

An event that cannot be encoded (no schema id for a binary encoding or a reader version, an
encoding that is not its subject's type, a reader version the subject lacks, data the reader
cannot resolve) is not pushed: it gets a fatal result naming the reason, so it goes dead with
that error. A registry that cannot be read (the store is down) gives ``retry`` instead.

:func:`check_format` is the check made when a subscription is put.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from conveyor.codecs.transcode import Route, encoded, transcode
from conveyor.errors import ConveyorError, InvalidRequest, NotFound
from conveyor.model import DeliveryFormat, Event, SchemaType, Topic
from conveyor.wire.push import PushEvent

if TYPE_CHECKING:
    from conveyor.catalog import Catalog
    from conveyor.frontend.registry.registry import Schema


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
        self._routes: dict[tuple[int, int | None], Route] = {}

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
    ) -> dict[int, Route | Unencodable]:
        routes: dict[int, Route | Unencodable] = {}
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

    async def _build(self, schema_id: int, version: int | None) -> Route:
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
            return Route(writer, reader)
        except Exception as e:  # a stored schema that does not compile is final
            raise _Skip(Unencodable(f"schema {reader.id} does not compile: {e}")) from e

    def _route_of(
        self, fmt: DeliveryFormat, event: Event, routes: Mapping[int, Route | Unencodable]
    ) -> Route | None:
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


def _encode(fmt: DeliveryFormat, event: Event, attempt: int, route: Route | None) -> PushEvent:
    try:
        payload, data = transcode(fmt, event.payload, route)
    except ValueError as e:  # encoding is deterministic: a retry would fail the same way
        raise _Skip(Unencodable(str(e))) from e
    out = encoded(fmt, event, payload, data, route)
    return PushEvent(
        event.id,
        event.topic,
        event.partition,
        event.offset,
        out.payload,
        event.publish_ms,
        attempt,
        event.key,
        event.attributes,
        event.deliver_at_ms,
        out.content_type,
        out.data,
        out.schema_id,
        out.schema_version,
    )


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


__all__ = ["SchemaSource", "Transcoder", "Unencodable", "check_format"]
