"""Codecs: every encoding an event is read from or written in, in one place.

Conveyor stores each payload in one canonical JSON form. The codecs convert between that form
and what publishers send and subscribers take:

* :mod:`~conveyor.codecs.media` — the media types, and how a ``Content-Type`` is read;
* :mod:`~conveyor.codecs.avro` — Avro binary <-> the canonical form, and schema resolution;
* :mod:`~conveyor.codecs.protobuf` (with :mod:`~conveyor.codecs.protobuf_parse`) — a
  ``.proto`` message compiled, and Protobuf binary <-> the canonical form;
* :mod:`~conveyor.codecs.binary` — a publisher's Avro or Protobuf datum, as the canonical form;
* :mod:`~conveyor.codecs.cloudevents` — CloudEvents in (structured and binary mode);
* :mod:`~conveyor.codecs.envelope` — CloudEvents out (a push's envelope, and its reading);
* :mod:`~conveyor.codecs.transcode` — an event in its subscription's encoding and version;
* :mod:`~conveyor.codecs.validation` — a canonical payload checked against its JSON Schema
  (used by the catalog for a topic's own schema and by the registry and the publish path).

The layer rule: the codecs sit low. They import only ``model`` and ``errors`` (and their
third-party libraries), never a layer above — no store, registry, HTTP or push protocol.
What a codec needs from the registry (a schema's text, its compiled Protobuf message) is
passed in (:class:`~conveyor.codecs.schema.RegisteredSchema`).
"""
