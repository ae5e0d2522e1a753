"""Turning failures into JSON error answers that name the field and the rule."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from conveyor.api.schemas import ErrorBody, ErrorDetail, ErrorResponse
from conveyor.errors import ConveyorError, InvalidRequest, RateLimited

log = logging.getLogger("conveyor.api")

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")
_IN_BATCH = re.compile(r"^/events/(\d+)(/|$)")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_RULES = (
    ("missing required field", "required"),
    ("unknown field", "unknown_field"),
    ("length", "length"),
    ("matching regex", "pattern"),
    (">=", "minimum"),
    (">", "exclusive_minimum"),
    ("<=", "maximum"),
    ("<", "exclusive_maximum"),
    ("Invalid enum value", "enum"),
    ("Expected", "type"),
)

_encoder = msgspec.json.Encoder()


def _pointer(path: str) -> str:
    return "".join("/" + (m.group(1) or m.group(2)) for m in _STEP.finditer(path))


def from_msgspec(error: msgspec.ValidationError | msgspec.DecodeError) -> InvalidRequest:
    """An :class:`InvalidRequest` from msgspec's message, with a JSON pointer and a rule."""
    text = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return InvalidRequest(f"the body is not valid JSON: {text}", rule="json")
    match = _AT.search(text)
    field = _pointer(match.group("path")) if match else ""
    message = _AT.sub("", text)
    rule = next((r for needle, r in _RULES if needle in message), "invalid")
    if rule in ("required", "unknown_field"):
        named = _NAMED.search(message)
        if named:
            field += "/" + named.group("name")
    if rule == "length":
        rule = "max_length" if "<=" in message else "min_length"
    in_batch = _IN_BATCH.match(field)
    return InvalidRequest(
        f"{message} (at {field or '/'})",
        field=field or None,
        rule=rule,
        index=int(in_batch.group(1)) if in_batch else None,
    )


def error_body(error: ConveyorError) -> ErrorResponse:
    """The JSON body of an error."""
    body = ErrorBody(code=error.code, message=error.message)
    if isinstance(error, InvalidRequest):
        body.field = error.field
        body.rule = error.rule
        body.index = error.index
        body.schema_id = error.schema_id
        body.schema_version = error.schema_version
        body.errors = [
            ErrorDetail(
                message=e.message, field=e.field, rule=e.rule, index=e.index, old=e.old, new=e.new
            )
            for e in error.errors
        ]
    return ErrorResponse(body)


def error_response(error: ConveyorError) -> web.Response:
    """An aiohttp answer for an error."""
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = f"{error.retry_after:g}"
    return web.Response(
        body=_encoder.encode(error_body(error)),
        status=error.status,
        content_type="application/json",
        headers=headers,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with a JSON error body."""
    try:
        return await handler(request)
    except ConveyorError as e:
        return error_response(e)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        return error_response(from_msgspec(e))
    except web.HTTPRequestEntityTooLarge as e:
        return error_response(
            InvalidRequest(
                f"the request body is too large: {e.text}",
                rule="max_size",
                status=413,
            )
        )
    except web.HTTPException as e:
        if e.status < 400:
            raise
        error = ConveyorError(e.reason)
        error.code = "not_found" if e.status == 404 else "http_error"
        error.status = e.status
        return error_response(error)
