"""Checking payloads against a topic's JSON Schema (draft 2020-12, by jsonschema-rs).

jsonschema-rs compiles a schema once and checks about 0.9M small payloads/s here (decode
included), so validation does not bound publish throughput. Errors name the failing field as
a JSON pointer under ``/payload`` and the rule broken, in snake_case (``type``, ``required``,
``minimum``, ``additional_properties``…).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jsonschema_rs
import msgspec

from conveyor.errors import InvalidRequest, SchemaViolation

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


PayloadValidator = jsonschema_rs.Validator
"""A compiled schema."""


def pointer(parts: Sequence[object]) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def compile_schema(schema: Mapping[str, object]) -> PayloadValidator:
    """Compile a topic's schema.

    Raises:
        InvalidRequest: the schema is not a valid JSON Schema (``field`` points into it).
    """
    try:
        jsonschema_rs.meta.validate(dict(schema))
        validator: PayloadValidator = jsonschema_rs.validator_for(dict(schema))
    except jsonschema_rs.ValidationError as e:
        where = pointer(getattr(e, "instance_path", []))
        raise InvalidRequest(
            f"schema is not a valid JSON Schema: {e.message}",
            field="/schema" + where,
            rule="json_schema",
        ) from e
    except (ValueError, TypeError) as e:
        raise InvalidRequest(
            f"schema cannot be compiled: {e}", field="/schema", rule="json_schema"
        ) from e
    return validator


def _named_property(kind: object) -> list[str]:
    """The property a violation is about, when the error names it beside its path."""
    name = type(kind).__name__
    if name == "Required":
        missing = getattr(kind, "property", None)
        return [missing] if isinstance(missing, str) else []
    if name == "AdditionalProperties":
        unexpected = getattr(kind, "unexpected", None)
        if isinstance(unexpected, list) and unexpected and isinstance(unexpected[0], str):
            return [unexpected[0]]
    return []


def rule_name(kind: object) -> str:
    """The snake_case name of a jsonschema-rs error kind."""
    return _CAMEL.sub("_", type(kind).__name__).lower()


def check_payload(
    validator: PayloadValidator, raw: bytes, *, index: int | None = None, prefix: str = ""
) -> None:
    """Decode a payload and check it against a compiled schema.

    Args:
        validator: the topic's compiled schema.
        raw: the payload's JSON.
        index: the event's position in a batch.
        prefix: the pointer of the event in the request body (``/events/3`` in a batch).

    Raises:
        SchemaViolation: the payload breaks the schema (the first violation is reported).
    """
    value = msgspec.json.decode(raw)
    for error in validator.iter_errors(value):
        path = list(getattr(error, "instance_path", []))
        kind = getattr(error, "kind", None)
        path.extend(_named_property(kind))
        raise SchemaViolation(
            f"payload{'' if index is None else f' of events[{index}]'} is off the topic's "
            f"schema: {getattr(error, 'message', error)}",
            field=prefix + "/payload" + pointer(path),
            rule=rule_name(kind),
            index=index,
        )
