"""Failures as aiohttp JSON error answers (the envelope: :mod:`conveyor.wire.envelope`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from aiohttp import hdrs, web

from conveyor.errors import ConveyorError, InvalidRequest, RateLimited
from conveyor.wire.envelope import error_body, from_msgspec

log = logging.getLogger("conveyor.api")

_encoder = msgspec.json.Encoder()


def error_response(error: ConveyorError, headers: Mapping[str, str] | None = None) -> web.Response:
    """An aiohttp answer for an error."""
    all_headers = dict(headers or {})
    if isinstance(error, RateLimited):
        all_headers["Retry-After"] = f"{error.retry_after:g}"
    return web.Response(
        body=_encoder.encode(error_body(error)),
        status=error.status,
        content_type="application/json",
        headers=all_headers,
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
    except web.HTTPMethodNotAllowed as e:
        allowed = ", ".join(sorted(e.allowed_methods))
        error = ConveyorError(f"{e.method} is not allowed on {request.path}; allowed: {allowed}")
        error.code, error.status = "method_not_allowed", 405
        # RFC 9110: a 405 names the methods the resource supports.
        return error_response(error, {hdrs.ALLOW: allowed})
    except web.HTTPException as e:
        if e.status < 400:
            raise
        error = ConveyorError(e.reason)
        error.code = "not_found" if e.status == 404 else "http_error"
        error.status = e.status
        return error_response(error)
