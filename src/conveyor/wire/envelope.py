"""The JSON error envelope every side speaks: what a refusal says, read from msgspec's errors.

The server answers every failure with :class:`~conveyor.wire.schemas.ErrorResponse` (the
field and the rule it broke); the client checks its arguments with the same conversion, so a
bad argument reads the same whether the SDK or the server refused it.
"""

from __future__ import annotations

import contextlib
import re
from typing import TypeVar

import msgspec

from conveyor.errors import ConveyorError, InvalidRequest
from conveyor.wire.nesting import MAX_NESTING, nests_deeper
from conveyor.wire.schemas import ErrorBody, ErrorDetail, ErrorResponse

__all__ = ["decode_body", "error_body", "from_msgspec", "too_deep"]

T = TypeVar("T")

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")
_GOT = re.compile(r"got `(?P<kind>\w+)`")
_IN_BATCH = re.compile(r"^/events/(\d+)(/|$)")
# A step of msgspec's path: `.name`, `[3]`, or `[...]` (a key of a dict, which it does not name).
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[(\.\.\.)\]")
_ANY_KEY = "..."
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
_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "bool"),  # before int: a bool is an int in Python
    (int, "int"),
    (float, "float"),
    (str, "str"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


def _escaped(step: str) -> str:
    """One step of a JSON pointer (RFC 6901)."""
    return step.replace("~", "~0").replace("/", "~1")


def _steps(path: str) -> list[str]:
    return [m.group(1) or m.group(2) or m.group(3) for m in _STEP.finditer(path)]


def _kind(value: object) -> str:
    return next(name for kind, name in _KINDS if isinstance(value, kind))


def _find_key(value: object, steps: list[str], got: str) -> list[str] | None:
    """The path (keys named) to the first value at ``steps`` whose JSON kind is ``got``.

    msgspec reports a bad value inside a dict as ``[...]``; it checks in document order and
    stops at the first bad value, so the first value of the kind it got is the one."""
    if not steps:
        return [] if _kind(value) == got else None
    for key, child in _children(value, steps[0]):
        found = _find_key(child, steps[1:], got)
        if found is not None:
            return [key, *found]
    return None


def _children(value: object, step: str) -> list[tuple[str, object]]:
    """The values one step of a path leads to (every value of a dict for ``[...]``)."""
    if isinstance(value, dict):
        keys = list(value) if step == _ANY_KEY else [step]
        return [(key, value[key]) for key in keys if key in value]
    if isinstance(value, list) and step.isdigit() and int(step) < len(value):
        return [(step, value[int(step)])]
    return []


def _pointer(path: str, message: str, body: bytes | None) -> str:
    """The JSON pointer of msgspec's path, with the keys it leaves out named from ``body``."""
    steps = _steps(path)
    if _ANY_KEY in steps:
        got = _GOT.search(message)
        found = None
        if got is not None and body is not None:
            with contextlib.suppress(msgspec.DecodeError, RecursionError):
                found = _find_key(msgspec.json.decode(body), steps, got.group("kind"))
        # Unnamed keys cannot be pointed at: the pointer stops at their dict.
        steps = found or steps[: steps.index(_ANY_KEY)]
    return "".join("/" + _escaped(step) for step in steps)


def from_msgspec(
    error: msgspec.ValidationError | msgspec.DecodeError, body: bytes | None = None
) -> InvalidRequest:
    """An :class:`InvalidRequest` from msgspec's message, with a JSON pointer and a rule.

    Args:
        error: what msgspec raised.
        body: the JSON it read, to name the key of a bad value in a dict (msgspec's
            message says ``[...]``); without it the pointer stops at the dict.
    """
    text = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return InvalidRequest(f"the body is not valid JSON: {text}", rule="json")
    match = _AT.search(text)
    message = _AT.sub("", text)
    field = _pointer(match.group("path"), message, body) if match else ""
    rule = next((r for needle, r in _RULES if needle in message), "invalid")
    if rule in ("required", "unknown_field"):
        named = _NAMED.search(message)
        if named:
            field += "/" + _escaped(named.group("name"))
    if rule == "length":
        rule = "max_length" if "<=" in message else "min_length"
    in_batch = _IN_BATCH.match(field)
    return InvalidRequest(
        f"{message} (at {field or '/'})",
        field=field or None,
        rule=rule,
        index=int(in_batch.group(1)) if in_batch else None,
    )


def decode_body(
    decoder: msgspec.json.Decoder[T], body: bytes, expected: str, *, whole_depth: bool = True
) -> T:
    """Decode a JSON request body, refusing what cannot be read with a 400 that says why.

    Args:
        decoder: msgspec's decoder of the body's type.
        body: the body.
        expected: what the body should be, for a person (``{"payload": …}``); said when
            the body is empty.
        whole_depth: measure the whole body's nesting; the publish path measures each
            payload instead (a batch's envelope cannot nest: its fields are typed).

    Raises:
        InvalidRequest: the body is empty (rule ``json``), not JSON (``json``), nested deeper
            than :data:`~conveyor.wire.nesting.MAX_NESTING` levels (``max_depth``), or
            off its type (the field and rule msgspec found).
    """
    if not body.strip():
        raise InvalidRequest(f"the body is empty: send {expected}", rule="json")
    if whole_depth and nests_deeper(body):
        raise too_deep()
    try:
        return decoder.decode(body)
    except RecursionError as e:
        raise too_deep() from e
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise from_msgspec(e, body) from e


def too_deep(what: str = "the body", field: str | None = None) -> InvalidRequest:
    """The refusal of JSON nested deeper than the limit."""
    return InvalidRequest(
        f"{what} nests objects and arrays deeper than {MAX_NESTING} levels",
        field=field,
        rule="max_depth",
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
