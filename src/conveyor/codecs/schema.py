"""A registered schema version as the codecs read it.

The codecs do not know the registry: the registry's ``Schema`` (or anything else with these
attributes) is passed in, already compiled where compiling is costly (a Protobuf message).
"""

from __future__ import annotations

from typing import Protocol

from conveyor.model import SchemaType

__all__ = ["RegisteredSchema"]


class RegisteredSchema(Protocol):
    """One version of a registry subject.

    Attributes:
        id: the version's registry-wide id.
        version: its number in its subject.
        type: its schema type.
        definition: its text as registered (Avro's JSON, ``.proto`` source, JSON Schema).
        parsed: the type's parsed form; for Protobuf the
            :class:`~conveyor.codecs.protobuf.ProtoSchema`, which the codecs use as it is.
    """

    @property
    def id(self) -> int: ...

    @property
    def version(self) -> int: ...

    @property
    def type(self) -> SchemaType: ...

    @property
    def definition(self) -> str: ...

    @property
    def parsed(self) -> object: ...
