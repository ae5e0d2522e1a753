"""The registry schemas a worker needs to decode binary pushes, fetched from the platform.

A push of Avro or Protobuf data names its schema by id. The worker asks the platform for it
once (``GET /v1/schemas/{id}`` on the first server that answers), compiles it (a ``.proto``
source is compiled by protoc, in a thread) and keeps it for good: a schema id never changes
meaning. Concurrent pushes of a new id share one fetch.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import msgspec

from conveyor._resource import AsyncResource
from conveyor.codecs import protobuf
from conveyor.codecs.avro import AvroCodec
from conveyor.execution._payload import CanonicalDecoder
from conveyor.model import SchemaType

logger = logging.getLogger("conveyor.execution.worker")

FETCH_TIMEOUT = 10.0
"""Seconds one request for a schema may take."""


class SchemaFetchError(Exception):
    """A schema could not be had.

    Attributes:
        schema_id: the schema asked for.
        retry: the cause may pass (the platform is unreachable); otherwise it is final.
    """

    def __init__(self, schema_id: int, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.schema_id = schema_id
        self.retry = retry


class _SchemaAnswer(msgspec.Struct):
    """The part of the platform's ``SchemaView`` a worker reads."""

    id: int
    type: SchemaType
    schema: str
    message: str | None = None


_answer_decoder = msgspec.json.Decoder(_SchemaAnswer)


class SchemaCache(AsyncResource):
    """Registry schemas by id, fetched from the platform once each.

    Args:
        server: the platform's base URL, or several separated by commas.
        timeout: seconds one request may take.

    Raises:
        ValueError: ``server`` names no URL.
    """

    def __init__(self, server: str, *, timeout: float = FETCH_TIMEOUT) -> None:
        self._servers = [u.strip().rstrip("/") for u in server.split(",") if u.strip()]
        if not self._servers:
            raise ValueError("server must name at least one platform URL")
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        # Invariant: an id is in _decoders once compiled, and then for good.
        self._decoders: dict[int, CanonicalDecoder] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def aclose(self) -> None:
        """Close the HTTP connections; idempotent."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def decoder(self, schema_id: int) -> CanonicalDecoder:
        """The decoder of a schema's binary data into its canonical JSON value.

        Raises:
            SchemaFetchError: the schema cannot be fetched or compiled.
        """
        known = self._decoders.get(schema_id)
        if known is not None:
            return known
        lock = self._locks.setdefault(schema_id, asyncio.Lock())
        async with lock:
            known = self._decoders.get(schema_id)
            if known is None:
                answer = await self._fetch(schema_id)
                known = await asyncio.to_thread(_compile, answer)
                self._decoders[schema_id] = known
                logger.info("schema %d (%s) compiled for decoding", schema_id, answer.type.value)
        self._locks.pop(schema_id, None)
        return known

    async def _fetch(self, schema_id: int) -> _SchemaAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        problem = ""
        for server in self._servers:
            url = f"{server}/v1/schemas/{schema_id}"
            try:
                async with self._session.get(url) as response:
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as e:
                problem = f"{url}: {type(e).__name__}: {e}"
                continue
            if response.status == 200:
                return _decoded(schema_id, body)
            if response.status < 500:
                raise SchemaFetchError(
                    schema_id,
                    f"the platform has no schema {schema_id} (HTTP {response.status} from {url})",
                    retry=False,
                )
            problem = f"HTTP {response.status} from {url}"
        raise SchemaFetchError(schema_id, f"cannot fetch schema {schema_id}: {problem}", retry=True)


def _decoded(schema_id: int, body: bytes) -> _SchemaAnswer:
    try:
        return _answer_decoder.decode(body)
    except msgspec.DecodeError as e:
        raise SchemaFetchError(
            schema_id,
            f"the platform's answer for schema {schema_id} is unreadable: {e}",
            retry=True,
        ) from e


def _compile(answer: _SchemaAnswer) -> CanonicalDecoder:
    try:
        if answer.type is SchemaType.AVRO:
            return AvroCodec.parse(answer.schema).decode
        if answer.type is SchemaType.PROTOBUF:
            message = protobuf.parse(answer.schema, answer.message)
            return lambda data: protobuf.decode(message, data)
    except ValueError as e:
        raise SchemaFetchError(
            answer.id, f"schema {answer.id} does not compile here: {e}", retry=False
        ) from e
    raise SchemaFetchError(
        answer.id,
        f"schema {answer.id} is a {answer.type.value} schema, which has no binary encoding",
        retry=False,
    )


__all__ = ["FETCH_TIMEOUT", "SchemaCache", "SchemaFetchError"]
