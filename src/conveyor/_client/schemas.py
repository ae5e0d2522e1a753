"""The schema-registry methods of :class:`~conveyor.AsyncClient`: register, check, read,
compatibility."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from conveyor._client.http import HttpSession
from conveyor.model import (
    SchemaType,
)
from conveyor.wire.registry import (
    Compatibility,
    CompatibilitySetting,
    CompatibilityView,
    Registered,
    SchemaRequest,
    SchemaView,
    SubjectView,
)

__all__ = ["SchemaMethods"]

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_REGISTERED = msgspec.json.Decoder(Registered)
_COMPATIBILITY = msgspec.json.Decoder(CompatibilityView)
_SUBJECTS = msgspec.json.Decoder(list[SubjectView])
_SCHEMA = msgspec.json.Decoder(SchemaView)
_SETTING = msgspec.json.Decoder(CompatibilitySetting)


class SchemaMethods:
    """The schema registry: register, check, read, compatibility.

    Mixed into :class:`AsyncClient`.
    """

    _http: HttpSession

    async def register_schema(
        self,
        subject: str,
        schema: str | Mapping[str, object],
        *,
        type: SchemaType | str = SchemaType.JSON,  # the wire's name
        message: str | None = None,
    ) -> Registered:
        """Register a schema as a subject's next version.

        Args:
            subject: the subject.
            schema: JSON Schema or Avro as JSON text or a mapping; Protobuf as ``.proto``
                text or a base64 ``FileDescriptorSet``.
            type: ``json``, ``avro`` or ``protobuf``.
            message: for Protobuf, the message's full name.

        Raises:
            InvalidRequest: the schema does not parse (field ``/schema``).
            IncompatibleSchema: it breaks the subject's compatibility mode; ``errors``
                lists each breaking change with its ``field``, ``rule``, ``old``, ``new``.

        Returns:
            Its id and version; ``created`` is false when an identical version existed.
        """
        body = _schema_request(schema, type, message)
        answer = await self._http.request("POST", ["subjects", subject, "versions"], body)
        return self._http.decode(answer, _REGISTERED)

    async def check_schema(
        self,
        subject: str,
        schema: str | Mapping[str, object],
        *,
        type: SchemaType | str = SchemaType.JSON,  # the wire's name
        message: str | None = None,
    ) -> CompatibilityView:
        """Dry run: would this schema be accepted as the subject's next version?"""
        body = _schema_request(schema, type, message)
        answer = await self._http.request("POST", ["subjects", subject, "check"], body)
        return self._http.decode(answer, _COMPATIBILITY)

    async def list_subjects(self) -> list[SubjectView]:
        """Every subject with its mode in force and its versions."""
        answer = await self._http.request("GET", ["subjects"])
        return self._http.decode(answer, _SUBJECTS)

    async def get_schema(self, subject: str, version: int | str = "latest") -> SchemaView:
        """A subject's version by number, or its latest.

        Raises:
            NotFound: no such subject or version.
        """
        answer = await self._http.request("GET", ["subjects", subject, "versions", str(version)])
        return self._http.decode(answer, _SCHEMA)

    async def get_schema_by_id(self, schema_id: int) -> SchemaView:
        """A schema by its registry id.

        Raises:
            NotFound: no schema has that id.
        """
        answer = await self._http.request("GET", ["schemas", str(schema_id)])
        return self._http.decode(answer, _SCHEMA)

    async def set_compatibility(
        self, mode: Compatibility | str | None, *, subject: str | None = None
    ) -> Compatibility:
        """Set a subject's compatibility mode (``None``: back to the default), or, without
        ``subject``, the registry's default. Returns the mode now in force."""
        path = ["config", "compatibility"] if subject is None else ["subjects", subject]
        if subject is not None:
            path.append("compatibility")
        setting = CompatibilitySetting(None if mode is None else Compatibility(mode))
        answer = await self._http.request("PUT", path, setting)
        result = self._http.decode(answer, _SETTING).compatibility
        assert result is not None
        return result

    async def get_compatibility(self, *, subject: str | None = None) -> Compatibility:
        """The compatibility mode in force for a subject, or the registry's default."""
        path = ["config", "compatibility"] if subject is None else ["subjects", subject]
        if subject is not None:
            path.append("compatibility")
        answer = await self._http.request("GET", path)
        result = self._http.decode(answer, _SETTING).compatibility
        assert result is not None
        return result

    # -- formats in ------------------------------------------------------------------------


def _schema_request(
    schema: str | Mapping[str, object], kind: SchemaType | str, message: str | None
) -> SchemaRequest:
    text = schema if isinstance(schema, str) else msgspec.json.encode(dict(schema)).decode()
    return SchemaRequest(schema=text, type=SchemaType(kind), message=message)
