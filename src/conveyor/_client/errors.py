"""Raise the :mod:`conveyor.errors` exception that an HTTP error answer stands for."""

from __future__ import annotations

import re

import msgspec

from conveyor.errors import (
    Conflict,
    ConveyorError,
    IncompatibleSchema,
    InvalidRequest,
    NotFound,
    RateLimited,
    SchemaViolation,
    StoreUnavailable,
)
from conveyor.wire.schemas import ErrorBody, ErrorResponse

__all__ = ["error_from_answer"]

# Used when a 429 has no Retry-After in delta-seconds.
DEFAULT_RETRY_AFTER = 1.0
# How much of a body that is not an ErrorResponse goes into the message.
_MAX_RAW_MESSAGE = 500

_ERROR_DECODER = msgspec.json.Decoder(ErrorResponse)
# The server words a 404 as NotFound does: "<kind> '<name>' does not exist".
_NOT_FOUND_MESSAGE = re.compile(r"^(?P<kind>[\w ]+?) '(?P<name>[^']*)' does not exist$")


def _body(status: int, content: bytes) -> ErrorBody:
    """Decode an ErrorResponse, or word one from a body that is not (a proxy's page …)."""
    try:
        return _ERROR_DECODER.decode(content).error
    except msgspec.DecodeError:
        text = content.decode("utf-8", "replace").strip()[:_MAX_RAW_MESSAGE]
        return ErrorBody(code="http_error", message=f"HTTP {status}: {text or 'no body'}")


def _invalid(status: int, body: ErrorBody) -> InvalidRequest:
    # Every problem the server listed, each as an InvalidRequest of its own.
    errors = []
    for d in body.errors:
        error = InvalidRequest(d.message, field=d.field, rule=d.rule, status=status, index=d.index)
        error.old, error.new = d.old, d.new
        errors.append(error)
    found: InvalidRequest
    if body.code == IncompatibleSchema.code:
        return IncompatibleSchema(body.message, errors=errors)
    if body.code == SchemaViolation.code:
        found = SchemaViolation(
            body.message,
            field=body.field or "",
            rule=body.rule or "",
            index=body.index,
            errors=errors,
        )
        found.schema_id, found.schema_version = body.schema_id, body.schema_version
        return found
    return InvalidRequest(
        body.message,
        field=body.field,
        rule=body.rule,
        status=status,
        index=body.index,
        errors=errors,
    )


def _not_found(body: ErrorBody, resource: str) -> NotFound:
    match = _NOT_FOUND_MESSAGE.match(body.message)
    error = NotFound(match["kind"], match["name"]) if match else NotFound("resource", resource)
    # Invariant: the message is the server's, word for word, even when it was not parsed.
    error.message = body.message
    error.args = (body.message,)
    return error


def _retry_after(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header is not None else DEFAULT_RETRY_AFTER
    except ValueError:  # an HTTP-date, which the server does not send
        return DEFAULT_RETRY_AFTER


def error_from_answer(
    status: int, content: bytes, *, resource: str, retry_after: str | None = None
) -> ConveyorError:
    """Build the exception for an error answer.

    400, 413 and other 4xx raise :class:`InvalidRequest` (a ``schema_violation``
    code, usually with 422, raises :class:`SchemaViolation`); 404 :class:`NotFound`;
    409 :class:`Conflict` (:class:`IncompatibleSchema` for a refused schema version);
    429 :class:`RateLimited`; 5xx :class:`StoreUnavailable`.

    Args:
        status: the HTTP status, 400 or more.
        content: the body, an ``ErrorResponse`` when the server wrote it.
        resource: the request's path, named by a 404 whose message cannot be parsed.
        retry_after: the ``Retry-After`` header, if any.

    Returns:
        The exception, its ``status`` the answer's.
    """
    body = _body(status, content)
    error: ConveyorError
    if status >= 500:
        error = StoreUnavailable(body.message)
    elif status == 404:
        error = _not_found(body, resource)
    elif status == 409 and body.code == IncompatibleSchema.code:
        error = _invalid(status, body)
    elif status == 409:
        error = Conflict(body.message)
    elif status == 429:
        error = RateLimited(body.message, retry_after=_retry_after(retry_after))
    else:
        error = _invalid(status, body)
    error.status = status
    return error
