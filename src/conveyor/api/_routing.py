"""What every route module shares: the route record, the node's key, JSON in and out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from aiohttp import web

from conveyor.node import Node
from conveyor.wire.envelope import decode_body

NODE = web.AppKey("node", Node)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder[object]] = {}


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of the API.

    Attributes:
        status: the answer of a success (201 for a create).
        errors: the error statuses the operation answers (beside those every operation
            can answer, which the OpenAPI document adds: see :mod:`conveyor.api.openapi`).
        query: a Struct whose fields are the operation's query parameters (documented in
            the OpenAPI document; the handler reads them).
        also: other success statuses, with the same body (200 for an idempotent create
            that found its twin, or a replacement).
        operation_id: the operation's id in the OpenAPI document, unique there (default:
            the handler's name).
    """

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type | None = None
    response: object = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: type | None = None
    also: tuple[int, ...] = ()
    operation_id: str = ""


def json_response(value: object, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


async def read_body(request: web.Request, kind: type[T]) -> T:
    """The request's JSON body as ``kind``.

    Raises:
        InvalidRequest: the body is empty, not JSON, too deep or off ``kind`` (400).
    """
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    expected = f"a JSON {kind.__name__} object (see /openapi.json)"
    return decode_body(decoder, await request.read(), expected)  # type: ignore[return-value]
