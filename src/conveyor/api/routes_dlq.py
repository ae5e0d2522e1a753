"""The dead-letter queue's routes: list, inspect, redrive and purge a subscription's dead letters.

Query parameters are read into :class:`~conveyor.wire.dead_letters.DeadLetterQuery`; a bad one
is refused with its place as ``/query/<name>`` (times that are not RFC 3339 break the rule
``format``).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from conveyor.api._routing import NODE, Route, json_response, read_body
from conveyor.errors import InvalidRequest
from conveyor.flow.dead_letters import DeadLetters
from conveyor.wire.dead_letters import (
    DeadLetter,
    DeadLetterCount,
    DeadLetterPage,
    DeadLetterQuery,
    DeadLetterSelection,
)
from conveyor.wire.envelope import from_msgspec

_TIMES = ("since", "until")


def _service(request: web.Request) -> DeadLetters:
    return request.app[NODE].dead_letters


def _refined(error: InvalidRequest, prefix: str) -> InvalidRequest:
    """An error of msgspec's, placed under ``prefix``; an unreadable time breaks ``format``."""
    field = (error.field or "").removeprefix(prefix)
    if field.lstrip("/") in _TIMES and error.rule == "invalid":
        error.rule = "format"
    if error.field is not None:
        error.field = prefix + field
        error.message = error.message.replace(f"(at {field})", f"(at {error.field})")
    return error


def _query(request: web.Request) -> DeadLetterQuery:
    params: dict[str, str] = {}
    for name, value in request.query.items():
        if name in params:
            raise InvalidRequest(
                f"the query parameter {name!r} is given twice",
                field=f"/query/{name}",
                rule="unique",
            )
        # A '+' of a zone offset left unescaped in a URL arrives as a space.
        params[name] = value.replace(" ", "+") if name in _TIMES else value
    try:
        return msgspec.convert(params, DeadLetterQuery, strict=False)
    except msgspec.ValidationError as e:
        raise _refined(from_msgspec(e), "/query") from e


async def _selection(request: web.Request) -> DeadLetterSelection:
    try:
        return await read_body(request, DeadLetterSelection)
    except InvalidRequest as e:
        _refined(e, "")
        raise


async def list_dead_letters(request: web.Request) -> web.Response:
    page = await _service(request).list(request.match_info["name"], _query(request))
    return json_response(page)


async def get_dead_letter(request: web.Request) -> web.Response:
    name, event_id = request.match_info["name"], request.match_info["event_id"]
    return json_response(await _service(request).get(name, event_id))


async def redrive_dead_letters(request: web.Request) -> web.Response:
    selection = await _selection(request)
    return json_response(await _service(request).redrive(request.match_info["name"], selection))


async def purge_dead_letters(request: web.Request) -> web.Response:
    selection = await _selection(request)
    count = await _service(request).purge(request.match_info["name"], selection)
    return json_response(DeadLetterCount(count))


_BASE = "/v1/subscriptions/{name}/dead-letters"

DLQ_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        _BASE,
        list_dead_letters,
        "A page of a subscription's dead letters (filter by time gone dead and error)",
        "dead letters",
        response=DeadLetterPage,
        errors=(400, 404),
        query=DeadLetterQuery,
    ),
    Route(
        "GET",
        _BASE + "/{event_id}",
        get_dead_letter,
        "One dead letter with its payload and attempt history",
        "dead letters",
        response=DeadLetter,
        errors=(404,),
    ),
    Route(
        "POST",
        _BASE + ":redrive",
        redrive_dead_letters,
        "Send dead letters back to the subscription, delivered again from attempt 1",
        "dead letters",
        DeadLetterSelection,
        DeadLetterCount,
        200,
        (400, 404),
    ),
    Route(
        "POST",
        _BASE + ":purge",
        purge_dead_letters,
        "Drop dead letters: they read `dropped` and are never delivered",
        "dead letters",
        DeadLetterSelection,
        DeadLetterCount,
        200,
        (400, 404),
    ),
)
