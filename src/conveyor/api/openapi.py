"""The OpenAPI 3.1 document, generated from the route table and the msgspec Structs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from conveyor import __version__
from conveyor.api.routes import ROUTES, Route
from conveyor.wire.schemas import ErrorResponse

_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{(\w+)\}")
_ERROR_TEXT = {
    400: "Invalid request: the body names the field and the rule",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "Payload off the topic's schema",
}
_SUCCESS_TEXT = {200: "OK", 201: "Created", 204: "No content"}
# What any operation can answer, whatever it does: a request the HTTP parser refuses (a line or
# header over 8,190 bytes), and a node that cannot take it (at its connection cap, or its
# store could not commit).
_ANY_OPERATION = {
    400: "Invalid request (for any operation: a malformed HTTP request, e.g. a header over "
    "8,190 bytes)",
    503: "Unavailable: the node is at its connection cap (Retry-After) or its store could "
    "not commit; nothing was changed",
}
# What any operation with a body can answer: an empty, unreadable or too deep body (400),
# and a body over the node's max_request_bytes (413).
_WITH_BODY = {413: "Too large: the body is over the node's limit"}


def operation_id(route: Route) -> str:
    """The operation's id in the document."""
    return route.operation_id or route.handler.__name__


def documented_statuses(route: Route) -> set[int]:
    """Every status the document gives the operation."""
    statuses = {route.status, *route.also, *route.errors, *_ANY_OPERATION}
    if route.body is not None:
        statuses.update(_WITH_BODY)
    return statuses


def _operation(route: Route, schemas: Mapping[object, object]) -> dict[str, object]:
    op: dict[str, object] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": operation_id(route),
    }
    params: list[dict[str, object]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in _PARAM.findall(route.path)
    ]
    if route.query is not None:
        params += _query_parameters(route.query)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[route.body]}},
        }
    op["responses"] = _responses(route, schemas)
    return op


def _responses(route: Route, schemas: Mapping[object, object]) -> dict[str, object]:
    responses: dict[str, object] = {}
    for status in sorted({route.status, *route.also}):
        ok: dict[str, object] = {"description": _SUCCESS_TEXT.get(status, "OK")}
        if route.response is not None and status != 204:
            ok["content"] = {"application/json": {"schema": schemas[route.response]}}
        responses[str(status)] = ok
    error = {"application/json": {"schema": schemas[ErrorResponse]}}
    texts = {**_ANY_OPERATION, **(_WITH_BODY if route.body is not None else {})}
    for status in sorted(documented_statuses(route) - {route.status, *route.also}):
        text = _ERROR_TEXT.get(status, "Error") if status in route.errors else texts[status]
        responses[str(status)] = {"description": text, "content": error}
    return responses


def _query_parameters(kind: type) -> list[dict[str, object]]:
    """The query parameters a Struct's fields stand for (a ``None`` option is absence)."""
    _, components = msgspec.json.schema_components([kind], ref_template=_REF)
    spec: dict[str, Any] = components[kind.__name__]
    required = set(spec.get("required", ()))
    params: list[dict[str, object]] = []
    for name, prop in spec["properties"].items():
        schema = dict(prop)
        options = [o for o in schema.pop("anyOf", ()) if o != {"type": "null"}]
        if len(options) == 1:
            schema.update(options[0])
        if schema.get("default", 0) is None:
            del schema["default"]
        param = {"name": name, "in": "query", "required": name in required, "schema": schema}
        if "description" in schema:
            param["description"] = schema.pop("description")
        params.append(param)
    return params


def openapi_document() -> dict[str, object]:
    """The API's OpenAPI document."""
    kinds: list[object] = [ErrorResponse]
    for route in ROUTES:
        for kind in (route.body, route.response):
            if kind is not None and kind not in kinds:
                kinds.append(kind)
    generated, components = msgspec.json.schema_components(kinds, ref_template=_REF)
    schemas = dict(zip(kinds, generated, strict=True))
    paths: dict[str, dict[str, object]] = {}
    ids: set[str] = set()
    for route in ROUTES:
        if operation_id(route) in ids:
            raise ValueError(f"operationId {operation_id(route)!r} is used twice")
        ids.add(operation_id(route))
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document",
            "tags": ["node"],
            "operationId": "openapi",
            "responses": {
                "200": {"description": "OK"},
                **{
                    str(status): {
                        "description": text,
                        "content": {"application/json": {"schema": schemas[ErrorResponse]}},
                    }
                    for status, text in _ANY_OPERATION.items()
                },
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conveyor",
            "version": __version__,
            "description": "Publish events, subscribe lambdas, and ask what happened to any "
            'event. Errors answer {"error": {code, message, field, rule}}. A method a path '
            "does not list answers 405 with an Allow header naming those it does.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
