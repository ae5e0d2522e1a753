"""CloudEvents out: a pushed event wrapped in a CloudEvent, and the worker's reading of one.

A subscription whose format asks for CloudEvents gets each event as a CloudEvent (spec 1.0,
JSON structured mode): ``id`` the event's id, ``source`` its ``ce-source`` attribute or
``conveyor://<topic>``, ``type`` its ``ce-type`` attribute or the topic's name, ``subject`` its
``ce-subject`` attribute or its key, ``time`` the publish time, ``datacontenttype``,
``dataschema`` (``/v1/schemas/<id>``), every other ``ce-<name>`` attribute as the extension
``<name>`` (names of 1-20 lowercase letters or digits, not a core attribute's), and ``data``
(JSON) or ``data_base64`` (binary). :func:`cloud_event` writes it; :func:`read_cloud_event`
splits it again into attributes and data, as the worker does before decoding the data.

The CloudEvents a publisher sends are read by :mod:`conveyor.codecs.cloudevents`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

from conveyor.codecs.media import JSON_CONTENT_TYPE
from conveyor.model import Event

__all__ = ["CE_ATTRIBUTE_PREFIX", "cloud_event", "read_cloud_event"]

CE_ATTRIBUTE_PREFIX = "ce-"
_CE_CORE = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
)
_CE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_members = msgspec.json.Decoder(dict[str, msgspec.Raw])


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


def read_cloud_event(
    payload: bytes,
) -> tuple[dict[str, str], msgspec.Raw | None, msgspec.Raw | None]:
    """Split a pushed CloudEvent (JSON structured mode) into its parts.

    Args:
        payload: the CloudEvent's JSON.

    Raises:
        msgspec.DecodeError: it is not a JSON object.

    Returns:
        Its attributes (every member but the data; a value that is not a string as its JSON
        text), its ``data`` member (JSON, as it is) and its ``data_base64`` member (a JSON
        string, as it is), each ``None`` when absent.
    """
    members = _members.decode(payload)
    data = members.pop("data", None)
    data_base64 = members.pop("data_base64", None)
    attributes = {name: _attribute(value) for name, value in members.items()}
    return attributes, data, data_base64


def _attribute(raw: msgspec.Raw) -> str:
    value = msgspec.json.decode(raw)
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
