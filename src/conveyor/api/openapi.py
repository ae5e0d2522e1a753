"""The OpenAPI 3.1 document, generated from the route table and the msgspec Structs."""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from conveyor import __version__
from conveyor.api.routes import ROUTES, Route
from conveyor.api.schemas import ErrorResponse

_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{(\w+)\}")
_ERROR_TEXT = {
    400: "Invalid request: the body names the field and the rule",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Payload off the topic's schema",
}


def _operation(route: Route, schemas: Mapping[object, object]) -> dict[str, object]:
    op: dict[str, object] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": route.handler.__name__,
    }
    params = _PARAM.findall(route.path)
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[route.body]}},
        }
    responses: dict[str, object] = {}
    ok: dict[str, object] = {"description": "OK"}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": schemas[route.response]}}
    responses[str(route.status)] = ok
    for status in route.errors:
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": schemas[ErrorResponse]}},
        }
    op["responses"] = responses
    return op


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
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document",
            "tags": ["node"],
            "operationId": "openapi",
            "responses": {"200": {"description": "OK"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conveyor",
            "version": __version__,
            "description": "Publish events, subscribe lambdas, and ask what happened to any "
            'event. Errors answer {"error": {code, message, field, rule}}.',
        },
        "paths": paths,
        "components": {"schemas": components},
    }
