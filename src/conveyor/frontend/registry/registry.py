"""The schema registry: subjects of immutable, numbered versions with global ids, checked
against each subject's compatibility mode when registered.

Versions live in the Store (so the registry works on SQLite and PostgreSQL, and every node
sees the same one) and are compiled once per process: a version never changes, so a compiled
schema is cached by id forever. A subject's latest version is re-read at most every
``LATEST_TTL`` seconds (at once on the node that registers).

Every schema type compiles to a JSON Schema of the event's canonical JSON form, so a payload
is validated the same way, with JSON-pointer errors, whatever the type.

Invariants: a version, once stored, is never changed or removed; a version is stored only if
it passes its subject's compatibility mode against the versions before it (checked in the
transaction that holds the subject, so two concurrent registrations cannot both pass against
a stale history); every form derived from a version (its parsed form, fingerprint, JSON
Schema and compiled validator) is built before it is stored, so a stored version can be read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from conveyor.clock import Clock, to_ms
from conveyor.codecs import protobuf
from conveyor.codecs.validation import PayloadValidator, compile_schema
from conveyor.errors import IncompatibleSchema, InvalidRequest, NotFound
from conveyor.frontend.registry import avro, jsonschema, proto_compat, proto_json
from conveyor.frontend.registry.avro_json import to_json_schema as avro_to_json_schema
from conveyor.frontend.registry.breaking import Breaking
from conveyor.frontend.registry.modes import breaking_changes
from conveyor.model import MAX_VERSION, SchemaType
from conveyor.store.base import StoredSchema, SubjectInfo
from conveyor.store.ports import RegistryPort
from conveyor.wire.registry import Compatibility

DEFAULT_COMPATIBILITY = Compatibility.BACKWARD
LATEST_TTL = 1.0  # seconds a subject's latest version is trusted before it is read again


@dataclass(frozen=True, slots=True)
class Schema:
    """A registered version, compiled.

    Attributes:
        stored: the version as stored.
        parsed: the type's own parsed form (fastavro schema, JSON Schema dict, ProtoSchema).
        json_schema: the JSON Schema of the canonical JSON form.
        validator: ``json_schema`` compiled.
    """

    stored: StoredSchema
    parsed: object
    json_schema: dict[str, object]
    validator: PayloadValidator

    @property
    def id(self) -> int:
        return self.stored.id

    @property
    def version(self) -> int:
        return self.stored.version

    @property
    def type(self) -> SchemaType:
        return SchemaType(self.stored.type)

    @property
    def definition(self) -> str:
        return self.stored.definition


@dataclass(frozen=True, slots=True)
class CompatibilityReport:
    """The verdict of a candidate against a subject.

    Attributes:
        compatible: whether it could be registered.
        mode: the subject's compatibility mode.
        against: the versions it was compared with.
        breaking: every breaking change found.
    """

    compatible: bool
    mode: Compatibility
    against: list[int]
    breaking: list[Breaking]


@dataclass(frozen=True, slots=True)
class _Compiled:
    parsed: object
    fingerprint: str
    json_schema: dict[str, object]
    validator: PayloadValidator
    message: str | None


def _compile(kind: SchemaType, definition: str, message: str | None) -> _Compiled:
    """Parse a schema of any type and build every form derived from it.

    Raises:
        ValueError: the schema does not parse, or a derived form does not build.
    """
    parsed: object
    if kind is SchemaType.AVRO:
        parsed, fingerprint = avro.parse(definition), avro.fingerprint(definition)
        json_schema, name = avro_to_json_schema(json.loads(definition)), None
    elif kind is SchemaType.PROTOBUF:
        proto = protobuf.parse(definition, message)
        parsed, fingerprint, name = proto, proto.fingerprint(), proto.message_name
        json_schema = proto_json.to_json_schema(proto)
    else:
        json_schema = jsonschema.parse(definition)
        parsed, fingerprint, name = json_schema, jsonschema.fingerprint(definition), None
    try:
        validator = compile_schema(json_schema)
    except InvalidRequest as e:
        raise ValueError(f"the JSON Schema of its JSON form does not compile: {e.message}") from e
    return _Compiled(parsed, fingerprint, json_schema, validator, name)


def _checker(kind: SchemaType) -> object:
    return {
        SchemaType.AVRO: avro.check,
        SchemaType.PROTOBUF: proto_compat.check,
        SchemaType.JSON: jsonschema.check,
    }[kind]


def incompatible(subject: str, report: CompatibilityReport) -> IncompatibleSchema:
    """The error refusing a version, listing each breaking change."""
    errors = []
    for change in report.breaking:
        error = InvalidRequest(change.message, field=change.path, rule=change.rule, status=409)
        error.old = change.old
        error.new = change.new
        errors.append(error)
    versions = ", ".join(str(v) for v in report.against)
    return IncompatibleSchema(
        f"the schema is not {report.mode.value} compatible with version(s) {versions} of "
        f"subject {subject!r}: {len(errors)} breaking change(s)",
        errors=errors,
    )


class SchemaRegistry:
    """Subjects and their versions.

    Args:
        store: the durable store.
        clock: the source of time.
    """

    def __init__(self, store: RegistryPort, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._by_id: dict[int, Schema] = {}
        self._latest: dict[str, tuple[float, list[StoredSchema]]] = {}

    # -- writes ---------------------------------------------------------------------------
    async def register(
        self, subject: str, kind: SchemaType, definition: str, message: str | None = None
    ) -> tuple[Schema, bool]:
        """Register a version (or return the identical one already there).

        Every derived form is built before the store is touched: a refusal stores nothing.

        Raises:
            InvalidRequest: the schema does not parse, or a form derived from it does not
                build (field ``/schema``).
            IncompatibleSchema: it breaks the subject's compatibility mode (409).
        """
        compiled = _parse(kind, definition, message)
        default = await self._default()

        def verify(versions: list[StoredSchema], mode: str) -> None:
            report = self._report(kind, compiled.parsed, versions, Compatibility(mode))
            if not report.compatible:
                raise incompatible(subject, report)

        candidate = StoredSchema(
            0,
            subject,
            0,
            kind.value,
            definition,
            compiled.message,
            compiled.fingerprint,
            to_ms(self._clock.now()),
        )
        stored, created = await self._store.register_schema(candidate, default.value, verify)
        self._latest.pop(subject, None)
        schema = self._by_id.get(stored.id)
        if schema is None:
            schema = self._cache(stored, compiled)
        return schema, created

    async def set_compatibility(
        self, subject: str | None, mode: Compatibility | None
    ) -> Compatibility:
        """Set a subject's mode (``None``: back to the default), or the default's.

        Returns:
            The mode now in force for the subject (or the default).
        """
        await self._store.set_compatibility(subject, None if mode is None else mode.value)
        return await self.compatibility(subject)

    # -- reads ----------------------------------------------------------------------------
    async def check(
        self, subject: str, kind: SchemaType, definition: str, message: str | None = None
    ) -> CompatibilityReport:
        """Would this schema be accepted as the subject's next version? (A dry run.)

        Raises:
            InvalidRequest: the schema does not parse.
        """
        compiled = _parse(kind, definition, message)
        versions = await self._store.schemas_of(subject)
        mode = await self.compatibility(subject)
        return self._report(kind, compiled.parsed, versions, mode)

    async def compatibility(self, subject: str | None) -> Compatibility:
        """The mode in force for a subject, or the registry's default."""
        if subject is not None:
            for info in await self._store.list_subjects():
                if info.name == subject and info.compatibility is not None:
                    return Compatibility(info.compatibility)
        return await self._default()

    async def subjects(self) -> list[SubjectInfo]:
        """Every subject, with its own mode (``None``: the default) and versions."""
        return await self._store.list_subjects()

    async def versions(self, subject: str) -> list[StoredSchema]:
        """A subject's versions, oldest first.

        Raises:
            NotFound: the subject has no version.
        """
        versions = await self._store.schemas_of(subject)
        if not versions:
            raise NotFound("subject", subject)
        self._latest[subject] = (self._clock.now(), versions)
        return versions

    async def version(self, subject: str, version: int | None) -> Schema:
        """A subject's version by number (``None``: the latest), compiled.

        Raises:
            NotFound: no such subject or version.
        """
        versions = await self._fresh_versions(subject)
        if version is None:
            return await self.by_id(versions[-1].id)
        for stored in versions:
            if stored.version == version:
                return await self.by_id(stored.id)
        raise NotFound("version", f"{subject}/{version}")

    async def by_id(self, schema_id: int) -> Schema:
        """A schema by its id, compiled (cached forever: versions never change).

        Raises:
            NotFound: no schema has that id.
        """
        schema = self._by_id.get(schema_id)
        if schema is not None:
            return schema
        if not 0 < schema_id <= MAX_VERSION:  # (out of any store's range: not looked up)
            raise NotFound("schema", str(schema_id))
        stored = await self._store.schema_by_id(schema_id)
        if stored is None:
            raise NotFound("schema", str(schema_id))
        compiled = _compile(SchemaType(stored.type), stored.definition, stored.message)
        return self._cache(stored, compiled)

    # -- internals ------------------------------------------------------------------------
    async def _fresh_versions(self, subject: str) -> list[StoredSchema]:
        cached = self._latest.get(subject)
        if cached is not None and self._clock.now() - cached[0] < LATEST_TTL:
            return cached[1]
        return await self.versions(subject)

    async def _default(self) -> Compatibility:
        mode = await self._store.default_compatibility()
        return DEFAULT_COMPATIBILITY if mode is None else Compatibility(mode)

    def _cache(self, stored: StoredSchema, compiled: _Compiled) -> Schema:
        schema = Schema(stored, compiled.parsed, compiled.json_schema, compiled.validator)
        self._by_id[stored.id] = schema
        return schema

    def _report(
        self,
        kind: SchemaType,
        parsed: object,
        versions: list[StoredSchema],
        mode: Compatibility,
    ) -> CompatibilityReport:
        if versions and versions[-1].type != kind.value:
            # A subject keeps its type, whatever its mode.
            old = versions[-1].type
            change = Breaking(
                "/type", "type_changed", old, kind.value, f"the subject holds {old} schemas"
            )
            return CompatibilityReport(False, mode, [v.version for v in versions], [change])
        earlier = [
            self._by_id[v.id].parsed
            if v.id in self._by_id
            else _compile(kind, v.definition, v.message).parsed
            for v in versions
        ]
        breaking = breaking_changes(mode, parsed, earlier, _checker(kind))  # type: ignore[arg-type]
        if mode is Compatibility.NONE:
            against: list[int] = []
        else:
            against = [v.version for v in (versions if mode.transitive else versions[-1:])]
        return CompatibilityReport(not breaking, mode, against, breaking)


def _parse(kind: SchemaType, definition: str, message: str | None) -> _Compiled:
    try:
        return _compile(kind, definition, message)
    except ValueError as e:
        raise InvalidRequest(
            f"the {kind.value} schema is invalid: {e}", field="/schema", rule="schema"
        ) from e
