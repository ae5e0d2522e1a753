"""The methods of :class:`~conveyor.AsyncClient` that publish data other than JSON (Avro or
Protobuf bytes, any media type) and CloudEvents."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Unpack
from urllib.parse import quote

import aiohttp
import msgspec

from conveyor._client.errors import error_from_answer
from conveyor._client.events import EventMethods
from conveyor._client.http import Answer, HttpSession, _segment
from conveyor._client.publish import build_request, encode_payload
from conveyor.errors import ConveyorError
from conveyor.model import (
    Priority,
)
from conveyor.options import PublishOptions
from conveyor.wire.schemas import (
    PublishRequest,
    PublishResult,
)

__all__ = ["EncodedPublishMethods"]

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_PUBLISHED = msgspec.json.Decoder(PublishResult)
# An attribute name that can travel as a header name and keep its case (HTTP does not).
_HEADER_TOKEN = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+", re.ASCII)


class EncodedPublishMethods(EventMethods):
    """Publishing data that is not JSON (Avro, Protobuf bytes) and CloudEvents.

    Mixed into :class:`AsyncClient`.
    """

    _http: HttpSession

    async def publish_encoded(
        self,
        topic: str,
        data: bytes,
        content_type: str,
        **options: Unpack[PublishOptions],
    ) -> PublishResult:
        """Publish one event whose data is already encoded: Avro or Protobuf binary for a
        topic bound to a registry subject of that type (the server decodes it to JSON), or
        JSON. The metadata travels in ``Conveyor-*`` headers (see docs/schemas.md).

        Args:
            topic: the topic's name.
            data: the encoded data (Avro: the datum alone, no container or framing).
            content_type: ``application/vnd.apache.avro``, ``application/x-protobuf``, or
                ``application/json`` (then ``data`` is the payload's JSON); a CloudEvents
                type publishes ``data`` as that CloudEvent, without the other arguments.
            options: :class:`~conveyor.options.PublishOptions`, as for :meth:`publish`;
                attribute names must be lower-case HTTP header tokens, and
                ``schema_version`` is the version of the topic's subject ``data`` is
                written with (default: the newest the topic admits).

        Raises:
            ValueError: as for :meth:`publish`; an attribute name that is not a lower-case
                header token; metadata given with a CloudEvents type.
            NotFound: the topic does not exist.
            InvalidRequest: the data does not decode with the schema (``field``
                ``/payload``, ``rule`` ``decode``), the content type does not fit the topic
                (415), or a value breaks a rule (``field`` names its header).
            SchemaViolation: the decoded data is off the schema.
            Conflict: the idempotency key was used for another event.

        Returns:
            The event's id and where it stands.
        """
        media = content_type.partition(";")[0].strip().lower()
        if media == "application/json":
            return await self.publish(topic, msgspec.Raw(data), **options)
        request = build_request(None, **options)
        headers = _metadata_headers(request)
        if media.startswith("application/cloudevents") and headers:
            raise ValueError("a CloudEvent carries its metadata as attributes, not arguments")
        headers["Content-Type"] = content_type
        return await self._post_bytes(["topics", topic, "events"], data, headers)

    async def publish_cloudevent(self, topic: str, event: Mapping[str, object]) -> PublishResult:
        """Publish one CloudEvent (structured mode, ``application/cloudevents+json``).

        Its attributes become the event's ``ce-*`` attributes; ``partitionkey`` is its key;
        ``conveyordelay`` (seconds), ``conveyordeliverat`` (RFC 3339) and
        ``conveyorpriority`` set when and in which lane it goes; ``source`` and ``id`` make
        its idempotency key (the same event published twice is stored once).

        Args:
            topic: the topic's name.
            event: the CloudEvent; ``specversion`` defaults to ``1.0``. ``data`` may be any
                JSON-encodable value, or bytes (sent as ``data_base64``; Avro or Protobuf
                when ``datacontenttype`` says so).

        Raises:
            TypeError: the event cannot be encoded as JSON.
            NotFound: the topic does not exist.
            InvalidRequest: a required attribute is missing (``field`` names it), or its data
                does not fit the topic.
            SchemaViolation: its data is off the topic's schema (``field`` under ``/data``).
            Conflict: its source and id were published with another event.

        Returns:
            The event's id and where it stands (``duplicate`` for a replay).
        """
        body = {"specversion": "1.0", **event}
        data = body.get("data")
        if isinstance(data, bytes | bytearray | memoryview):
            del body["data"]
            body["data_base64"] = base64.b64encode(data).decode()
        headers = {"Content-Type": "application/cloudevents+json"}
        return await self._post_bytes(
            ["topics", topic, "events"], bytes(encode_payload(body)), headers
        )

    async def _post_bytes(
        self, path: Sequence[str], data: bytes, headers: Mapping[str, str]
    ) -> PublishResult:
        """POST a body that is not a JSON Struct (HttpSession.request sends only those)."""
        http = self._http
        root = http._root
        url = root.with_path("/".join([root.raw_path, *map(_segment, path)]), encoded=True)
        sent = {"Accept": "application/json", "User-Agent": "conveyor-client", **headers}
        try:
            async with http._open().post(url, data=data, headers=sent) as response:
                content = await response.read()
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as e:
            raise ConveyorError(f"no answer from Conveyor at {self._http.base_url} in time") from e
        except aiohttp.ClientError as e:
            raise ConveyorError(f"cannot reach Conveyor at {self._http.base_url}: {e}") from e
        if response.status >= 400:
            raise error_from_answer(
                response.status, content, resource=url.path, retry_after=retry_after
            )
        return self._http.decode(Answer(response.status, content), _PUBLISHED)


def _metadata_headers(request: PublishRequest) -> dict[str, str]:
    """A request's metadata as ``Conveyor-*`` headers; text that may be anything is
    percent-encoded (the server decodes it)."""
    headers: dict[str, str] = {}
    if request.key is not None:
        headers["Conveyor-Key"] = quote(request.key, safe="")
    if request.delay is not None:
        headers["Conveyor-Delay"] = repr(float(request.delay))
    if request.deliver_at is not None:
        headers["Conveyor-Deliver-At"] = request.deliver_at.isoformat()
    if request.priority is not Priority.NORMAL:
        headers["Conveyor-Priority"] = request.priority.value
    if request.schema_version is not None:
        headers["Conveyor-Schema-Version"] = str(request.schema_version)
    if request.idempotency_key is not None:
        headers["Idempotency-Key"] = request.idempotency_key
    for name, value in (request.attributes or {}).items():
        if not _HEADER_TOKEN.fullmatch(name):
            raise ValueError(
                f"attribute name {name!r} cannot be a header name: use lower-case letters, "
                "digits and !#$%&'*+-.^_`|~"
            )
        headers[f"Conveyor-Attr-{name}"] = quote(value, safe="")
    return headers
