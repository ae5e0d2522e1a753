"""CloudEvents 1.0 and Conveyor events, both ways.

A CloudEvent's context attributes become string attributes of the Conveyor event, each named
``ce-<attribute>``: ``ce-id``, ``ce-source``, ``ce-type``, ``ce-subject``, ``ce-time``,
``ce-datacontenttype``, ``ce-dataschema`` and every extension (``ce-partitionkey``, …).
``specversion`` is not kept: it is always ``1.0``. Extension values are kept as strings
(CloudEvents' canonical string form: ``true``, ``42``); a ``null`` attribute is absent, as in
the JSON format. Its data is the event's payload; see :mod:`conveyor.frontend.formats` for how
a binary ``data_base64`` becomes JSON, and :mod:`conveyor.codecs.envelope` for the CloudEvent a
subscription that asks for one is pushed.

:func:`from_cloudevent` reads the structured JSON form, :func:`from_binary` the HTTP binary
mode (``ce-*`` headers), and :func:`to_cloudevent` rebuilds the structured form from an
event's attributes. Refusals are :class:`~conveyor.errors.InvalidRequest` naming the
attribute as a JSON pointer into the event (``/source``), or the header (``/ce-source``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeAlias
from urllib.parse import unquote

import msgspec

from conveyor.codecs.media import is_json_media_type
from conveyor.errors import InvalidRequest

__all__ = [
    "ATTRIBUTE_PREFIX",
    "SPEC_VERSION",
    "Data",
    "from_binary",
    "from_cloudevent",
    "is_json_media_type",
    "to_cloudevent",
]

SPEC_VERSION = "1.0"
ATTRIBUTE_PREFIX = "ce-"  # a Conveyor attribute holding a CloudEvents attribute
REQUIRED = ("specversion", "id", "source", "type")
_STRINGS = ("id", "source", "type", "subject", "datacontenttype", "dataschema")
_DATA_MEMBERS = ("data", "data_base64")
_NAME = re.compile(r"[a-z0-9]+")  # attribute names: lower-case letters and digits only
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)

Data: TypeAlias = msgspec.Raw | bytes | None
"""An event's data: JSON (``msgspec.Raw``), bytes (``data_base64``, or a binary-mode body),
or none."""

Place: TypeAlias = Callable[[str], str]  # an attribute's name -> the field naming it in errors


# -- reading --------------------------------------------------------------------------------
def from_cloudevent(
    obj: Mapping[str, object], *, index: int | None = None
) -> tuple[dict[str, str], Data, str | None]:
    """Read a CloudEvent in the structured JSON form.

    Args:
        obj: the event's JSON object; values may be decoded JSON, or ``msgspec.Raw`` (as
            from ``msgspec.json.decode(body, type=dict[str, msgspec.Raw])``), which keeps
            ``data`` byte for byte.
        index: the event's position in a batch: errors then name ``/<index>/<attribute>``.

    Raises:
        InvalidRequest: a required attribute is missing, ``specversion`` is not ``1.0``, an
            attribute has a bad name, type or format, or ``data`` and ``data_base64`` are
            both given or ``data_base64`` is not base64 (400, ``index`` set in a batch).

    Returns:
        The Conveyor attributes (``ce-<name>``), the data (``msgspec.Raw`` for ``data``,
        bytes for ``data_base64``, ``None`` for neither) and ``datacontenttype``.
    """
    prefix = "" if index is None else f"/{index}"

    def place(name: str) -> str:
        return f"{prefix}/{name}"

    values = {name: _plain(value) for name, value in obj.items() if name not in _DATA_MEMBERS}
    attributes = _attributes(values, place, index)
    data = _data(obj, place, index)
    return attributes, data, attributes.get(ATTRIBUTE_PREFIX + "datacontenttype")


def from_binary(
    headers: Mapping[str, str], body: bytes, content_type: str | None
) -> tuple[dict[str, str], bytes | None, str | None]:
    """Read a CloudEvent in the HTTP binary mode: attributes in ``ce-*`` headers
    (percent-decoded, names lower-cased), the data in the body, ``datacontenttype`` in
    ``Content-Type``.

    Raises:
        InvalidRequest: as :func:`from_cloudevent`, naming the header (``/ce-source``); and a
            ``ce-datacontenttype`` header (binary mode carries it as ``Content-Type``).

    Returns:
        The Conveyor attributes, the body (``None`` when empty) and the content type.
    """
    values: dict[str, object] = {}
    for header, value in headers.items():
        name = header.lower()
        if name.startswith(ATTRIBUTE_PREFIX):
            values[name.removeprefix(ATTRIBUTE_PREFIX)] = _percent_decoded(name, value)
    if "datacontenttype" in values:
        raise InvalidRequest(
            "in binary mode datacontenttype is the Content-Type header, not ce-datacontenttype",
            field="/ce-datacontenttype",
            rule="binary_mode",
        )
    if content_type is not None:
        values["datacontenttype"] = content_type
    attributes = _attributes(values, lambda name: "/" + ATTRIBUTE_PREFIX + name, None)
    return attributes, body or None, content_type


def _percent_decoded(header: str, value: str) -> str:
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as e:
        raise InvalidRequest(
            f"header {header} is not percent-encoded UTF-8: {e}", field="/" + header, rule="format"
        ) from e


def _plain(value: object) -> object:
    return msgspec.json.decode(value) if isinstance(value, msgspec.Raw) else value


def _attributes(values: Mapping[str, object], place: Place, index: int | None) -> dict[str, str]:
    for name in REQUIRED:
        if values.get(name) is None:
            raise InvalidRequest(
                f"a CloudEvent needs the attribute {name!r}",
                field=place(name),
                rule="required",
                index=index,
            )
    if values["specversion"] != SPEC_VERSION:
        raise InvalidRequest(
            f"specversion {values['specversion']!r} is not supported; it must be {SPEC_VERSION!r}",
            field=place("specversion"),
            rule="enum",
            index=index,
        )
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or name == "specversion":
            continue  # null is absent (JSON format); the version is always 1.0
        if not _NAME.fullmatch(name):
            raise InvalidRequest(
                f"{name!r} is not a CloudEvents attribute name (lower-case letters and digits)",
                field=place(name),
                rule="attribute_name",
                index=index,
            )
        out[ATTRIBUTE_PREFIX + name] = _text(name, value, place, index)
    return out


def _text(name: str, value: object, place: Place, index: int | None) -> str:
    """An attribute's value as its canonical string, checked against its type."""
    if isinstance(value, bool):  # before int: bool is an int
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidRequest(
            f"attribute {name!r} must be a string, an integer or a boolean",
            field=place(name),
            rule="type",
            index=index,
        )
    if name in _STRINGS and (not isinstance(value, str) or not value):
        raise InvalidRequest(
            f"attribute {name!r} must be a non-empty string",
            field=place(name),
            rule="type" if not isinstance(value, str) else "min_length",
            index=index,
        )
    if name == "time" and not _is_timestamp(text):
        raise InvalidRequest(
            f"attribute 'time' must be an RFC 3339 timestamp, not {text!r}",
            field=place(name),
            rule="format",
            index=index,
        )
    return text


def _is_timestamp(text: str) -> bool:
    if not _RFC3339.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _data(obj: Mapping[str, object], place: Place, index: int | None) -> Data:
    if "data" in obj and "data_base64" in obj:
        raise InvalidRequest(
            "a CloudEvent has data or data_base64, not both",
            field=place("data_base64"),
            rule="exclusive",
            index=index,
        )
    if "data" in obj:
        data = obj["data"]
        return data if isinstance(data, msgspec.Raw) else msgspec.Raw(msgspec.json.encode(data))
    encoded = _plain(obj.get("data_base64"))
    if encoded is None:
        return None
    if not isinstance(encoded, str):
        raise InvalidRequest(
            "data_base64 must be a string", field=place("data_base64"), rule="type", index=index
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequest(
            f"data_base64 is not base64: {e}",
            field=place("data_base64"),
            rule="base64",
            index=index,
        ) from e


# -- writing --------------------------------------------------------------------------------
def to_cloudevent(
    attributes: Mapping[str, str],
    data: object,
    *,
    content_type: str | None = None,
) -> dict[str, object]:
    """Rebuild a CloudEvent (structured JSON form) from a Conveyor event.

    Only ``ce-*`` attributes are read. An event that was not published as a CloudEvent can be
    given defaults by the caller: ``{"ce-id": event.id, "ce-source": ..., "ce-type": ...,
    **event.attributes}``.

    Args:
        attributes: the event's attributes.
        data: the data: ``msgspec.Raw`` JSON (the stored payload) or any JSON value goes in
            ``data``; bytes (data re-encoded, e.g. as Avro) go in ``data_base64``; ``None``
            leaves data out.
        content_type: the data's media type. By default: the event's ``datacontenttype``
            when it fits the data (a JSON type for JSON data), else ``application/json`` for
            JSON data and ``application/octet-stream`` for bytes.

    Raises:
        ValueError: ``ce-id``, ``ce-source`` or ``ce-type`` is missing.

    Returns:
        The CloudEvent, ready for ``msgspec.json.encode`` (a ``Raw`` is written verbatim).
    """
    event: dict[str, object] = {"specversion": SPEC_VERSION}
    for name, value in attributes.items():
        if name.startswith(ATTRIBUTE_PREFIX):
            event[name.removeprefix(ATTRIBUTE_PREFIX)] = value
    missing = [name for name in ("id", "source", "type") if name not in event]
    if missing:
        raise ValueError(f"a CloudEvent needs {', '.join(missing)}: give ce-{missing[0]}")
    stored = event.get("datacontenttype")
    if data is None:
        return event
    if isinstance(data, bytes):
        event["data_base64"] = base64.b64encode(data).decode()
        event["datacontenttype"] = content_type or stored or "application/octet-stream"
        return event
    event["data"] = data
    if content_type is not None:
        event["datacontenttype"] = content_type
    elif stored is not None and not is_json_media_type(str(stored)):
        event["datacontenttype"] = "application/json"
    return event
