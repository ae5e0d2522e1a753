"""Where a publish request's fields come from, by the format it is written in.

The publish path checks a :class:`~conveyor.wire.schemas.PublishRequest` and names the fields
it refuses as that request's (``/delay``, ``/events/2/payload``). A request written in
another format had those fields elsewhere: in ``Conveyor-*`` headers (Avro and Protobuf
bodies), in a CloudEvent's attributes (``/conveyordelay``), or in ``ce-*`` headers (a
binary-mode CloudEvent). :func:`relocated` names the place the field came from.
"""

from __future__ import annotations

import enum
import re

from conveyor.codecs import cloudevents

__all__ = [
    "ATTRIBUTE_HEADER_PREFIX",
    "DELAY_HEADER",
    "DELIVER_AT_HEADER",
    "IDEMPOTENCY_KEY",
    "KEY_HEADER",
    "PRIORITY_HEADER",
    "SCHEMA_ID_HEADER",
    "SCHEMA_VERSION_HEADER",
    "Format",
    "relocated",
]

IDEMPOTENCY_KEY = "Idempotency-Key"
KEY_HEADER = "Conveyor-Key"
DELAY_HEADER = "Conveyor-Delay"
DELIVER_AT_HEADER = "Conveyor-Deliver-At"
PRIORITY_HEADER = "Conveyor-Priority"
SCHEMA_VERSION_HEADER = "Conveyor-Schema-Version"
SCHEMA_ID_HEADER = "Conveyor-Schema-Id"
ATTRIBUTE_HEADER_PREFIX = "conveyor-attr-"  # compared lower-cased


class Format(enum.Enum):
    """How a publish request's body is written."""

    JSON = "json"
    AVRO = "avro"
    PROTOBUF = "protobuf"
    CLOUDEVENT = "cloudevent"
    CLOUDEVENTS_BATCH = "cloudevents-batch"
    CLOUDEVENT_BINARY = "cloudevent-binary"


_FIELD = re.compile(r"(?:/events/(?P<index>[0-9]+))?/(?P<name>[a-z_]+)(?P<rest>/.*)?", re.DOTALL)
_HEADER_NAMES = {
    "key": "/conveyor-key",
    "delay": "/conveyor-delay",
    "deliver_at": "/conveyor-deliver-at",
    "priority": "/conveyor-priority",
    "idempotency_key": "/idempotency-key",
    "schema_version": "/conveyor-schema-version",
}
_CE_NAMES = {
    "payload": "/data",
    "key": "/partitionkey",
    "delay": "/conveyordelay",
    "deliver_at": "/conveyordeliverat",
    "priority": "/conveyorpriority",
    "idempotency_key": "/id",
    "schema_version": "/dataschema",
}
_CE_HEADER_NAMES = {
    name: "/ce-" + place.removeprefix("/") for name, place in _CE_NAMES.items() if name != "payload"
}
_NAMES: dict[Format, dict[str, str]] = {
    Format.AVRO: _HEADER_NAMES,
    Format.PROTOBUF: _HEADER_NAMES,
    Format.CLOUDEVENT: _CE_NAMES,
    Format.CLOUDEVENTS_BATCH: _CE_NAMES,
    Format.CLOUDEVENT_BINARY: _CE_HEADER_NAMES,
}


def relocated(field: str | None, format_: Format) -> str | None:
    """A field of a :class:`PublishRequest` (``/events/<i>/…`` in a batch) as the place in a
    request of ``format_`` it came from."""
    found = _FIELD.fullmatch(field or "")
    names = _NAMES.get(format_)
    if found is None or names is None:
        return field
    name, rest = found.group("name"), found.group("rest") or ""
    head = "" if found.group("index") is None else f"/{found.group('index')}"
    if name == "attributes":
        attribute = rest.removeprefix("/")
        if format_ in (Format.AVRO, Format.PROTOBUF):
            return f"{head}/{ATTRIBUTE_HEADER_PREFIX}{attribute or '*'}"
        if format_ is Format.CLOUDEVENT_BINARY:
            return head + "/" + (attribute or "ce-*")
        return head + "/" + attribute.removeprefix(cloudevents.ATTRIBUTE_PREFIX)
    if name not in names:
        return field
    return head + names[name] + rest
