"""The OpenAPI 3.1 document, generated from the route table and the msgspec Structs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from conveyor import __version__
from conveyor.api.routes import ROUTES, Route
from conveyor.api.schemas import ErrorResponse, Health

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
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    # A failing node answers its health with its Health body, not an error envelope.
    paths["/v1/health"]["get"]["responses"]["503"] = {  # type: ignore[index]
        "description": "Failing: ``problems`` says why",
        "content": {"application/json": {"schema": schemas[Health]}},
    }
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
