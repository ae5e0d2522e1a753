"""The schema registry's request and response bodies."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec

from conveyor.model import JsonValue, SchemaType


class Compatibility(enum.StrEnum):
    """How a subject's new version must relate to the versions before it."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        """Whether every earlier version is compared, not just the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read what earlier versions wrote."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether earlier versions must read what the new schema writes."""
        return self.value.startswith(("FORWARD", "FULL"))


SchemaText = Annotated[str, msgspec.Meta(min_length=1, max_length=1_048_576)]


class SchemaRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A schema to register, or to check against a subject.

    Attributes:
        schema: the schema: JSON Schema or Avro as JSON text (a JSON object is accepted
            too), Protobuf as ``.proto`` text or a base64 ``FileDescriptorSet``.
        type: ``json`` (JSON Schema: draft 2020-12, or 4, 6, 7 or 2019-09 as its ``$schema``
            says), ``avro`` or ``protobuf``.
        message: for Protobuf, the message's full name (default: the file's first message).
    """

    schema: SchemaText | dict[str, JsonValue]
    type: SchemaType = SchemaType.JSON
    message: str | None = None

    def text(self) -> str:
        """The schema as text."""
        if isinstance(self.schema, str):
            return self.schema
        return msgspec.json.encode(self.schema).decode()


class SchemaView(msgspec.Struct, omit_defaults=True):
    """A registered version.

    Attributes:
        id: its id, unique in the registry.
        subject: its subject.
        version: its number in the subject.
        type: ``json``, ``avro`` or ``protobuf``.
        schema: the schema as registered.
        message: for Protobuf, the message's full name.
        created: when it was registered.
    """

    id: int
    subject: str
    version: int
    type: SchemaType
    schema: str
    created: datetime
    message: str | None = None


class Registered(msgspec.Struct):
    """The answer to a registration (``created`` is false for an identical schema)."""

    id: int
    subject: str
    version: int
    created: bool


class BreakingView(msgspec.Struct, omit_defaults=True):
    """One breaking change: the field, the rule, the old and the new type or value."""

    field: str
    rule: str
    message: str
    old: str | None = None
    new: str | None = None


class CompatibilityView(msgspec.Struct):
    """The verdict of a dry run."""

    compatible: bool
    compatibility: Compatibility
    against: list[int]
    breaking: list[BreakingView]


class SubjectView(msgspec.Struct):
    """A subject: its mode in force (its own, or the default) and its versions."""

    name: str
    compatibility: Compatibility
    versions: list[int]
    own_compatibility: bool = False


class CompatibilitySetting(msgspec.Struct, forbid_unknown_fields=True):
    """A compatibility mode to set; ``null`` returns a subject to the registry's default."""

    compatibility: Compatibility | None
