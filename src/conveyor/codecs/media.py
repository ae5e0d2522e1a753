"""The media types of Conveyor's encodings, and how a ``Content-Type`` is read.

One name per encoding is what Conveyor writes (a push's ``content_type``, a CloudEvent's
``datacontenttype``); publishers may also use the other names in :data:`AVRO_TYPES` and
:data:`PROTOBUF_TYPES`, which tools send for the same data.
"""

from __future__ import annotations

__all__ = [
    "AVRO_CONTENT_TYPE",
    "AVRO_TYPES",
    "BINARY_CONTENT_TYPES",
    "CLOUDEVENTS_BATCH_CONTENT_TYPE",
    "CLOUDEVENTS_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "PROTOBUF_CONTENT_TYPE",
    "PROTOBUF_TYPES",
    "is_json_media_type",
    "media_type",
]

JSON_CONTENT_TYPE = "application/json"
AVRO_CONTENT_TYPE = "application/vnd.apache.avro"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
CLOUDEVENTS_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

AVRO_TYPES = (AVRO_CONTENT_TYPE, "avro/binary", "application/avro")
"""Every name Avro binary is accepted under; the first is the one Conveyor writes."""
PROTOBUF_TYPES = (
    PROTOBUF_CONTENT_TYPE,
    "application/protobuf",
    "application/vnd.google.protobuf",
)
"""Every name Protobuf binary is accepted under; the first is the one Conveyor writes."""

BINARY_CONTENT_TYPES = {"avro": AVRO_CONTENT_TYPE, "protobuf": PROTOBUF_CONTENT_TYPE}
"""The content type of each binary encoding, by its :class:`~conveyor.model.DeliveryFormat`
name."""


def media_type(header: str | None) -> str | None:
    """The media type of a ``Content-Type`` value, lower-cased, without its parameters
    (``None`` when absent or empty)."""
    media = (header or "").partition(";")[0].strip().lower()
    return media or None


def is_json_media_type(media_type: str | None) -> bool:
    """Whether data of this media type (``None``: not given) is JSON."""
    if media_type is None:
        return True
    media = media_type.partition(";")[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")
