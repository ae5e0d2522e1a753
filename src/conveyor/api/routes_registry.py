"""The schema registry's routes: subjects, versions, ids, compatibility and dry runs."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from conveyor.api._routing import NODE, Route, json_response, read_body
from conveyor.errors import InvalidRequest
from conveyor.model import MAX_VERSION, is_valid_name
from conveyor.store.base import StoredSchema
from conveyor.wire.registry import (
    BreakingView,
    CompatibilitySetting,
    CompatibilityView,
    Registered,
    SchemaRequest,
    SchemaView,
    SubjectView,
)


def schema_view(stored: StoredSchema) -> SchemaView:
    """A stored version as the API shows it."""
    return SchemaView(
        id=stored.id,
        subject=stored.subject,
        version=stored.version,
        type=stored.type,  # type: ignore[arg-type]
        schema=stored.definition,
        created=datetime.fromtimestamp(stored.created_ms / 1000, tz=UTC),
        message=stored.message,
    )


def _subject(request: web.Request) -> str:
    subject = request.match_info["subject"]
    if not is_valid_name(subject):
        raise InvalidRequest(
            f"{subject!r} is not a subject name (letters, digits, '.', '_', '-')",
            field="/subject",
            rule="pattern",
        )
    return subject


def _version(text: str) -> int | None:
    if text == "latest":
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidRequest(
            f"version {text!r} is neither a number from 1 nor 'latest'",
            field="/version",
            rule="format",
        )
    return _at_most(int(text), "/version")


def _at_most(number: int, field: str) -> int:
    if number > MAX_VERSION:
        raise InvalidRequest(
            f"{field[1:]} {number} is over the most there can be, {MAX_VERSION}",
            field=field,
            rule="maximum",
        )
    return number


async def register(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, SchemaRequest)
    schema, created = await node.registry.register(
        _subject(request), body.type, body.text(), body.message
    )
    answer = Registered(schema.id, schema.stored.subject, schema.version, created)
    return json_response(answer, 201 if created else 200)


async def check(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await read_body(request, SchemaRequest)
    report = await node.registry.check(_subject(request), body.type, body.text(), body.message)
    breaking = [BreakingView(b.path, b.rule, b.message, b.old, b.new) for b in report.breaking]
    return json_response(
        CompatibilityView(report.compatible, report.mode, report.against, breaking)
    )


async def list_subjects(request: web.Request) -> web.Response:
    registry = request.app[NODE].registry
    default = await registry.compatibility(None)
    return json_response(
        [
            SubjectView(
                s.name,
                default if s.compatibility is None else s.compatibility,  # type: ignore[arg-type]
                s.versions,
                s.compatibility is not None,
            )
            for s in await registry.subjects()
        ]
    )


async def list_versions(request: web.Request) -> web.Response:
    versions = await request.app[NODE].registry.versions(_subject(request))
    return json_response([v.version for v in versions])


async def get_version(request: web.Request) -> web.Response:
    version = _version(request.match_info["version"])
    schema = await request.app[NODE].registry.version(_subject(request), version)
    return json_response(schema_view(schema.stored))


async def get_by_id(request: web.Request) -> web.Response:
    text = request.match_info["id"]
    if not text.isdigit():
        raise InvalidRequest(f"schema id {text!r} is not a number", field="/id", rule="format")
    schema = await request.app[NODE].registry.by_id(_at_most(int(text), "/id"))
    return json_response(schema_view(schema.stored))


async def get_compatibility(request: web.Request) -> web.Response:
    subject = _subject(request) if "subject" in request.match_info else None
    mode = await request.app[NODE].registry.compatibility(subject)
    return json_response(CompatibilitySetting(mode))


async def set_compatibility(request: web.Request) -> web.Response:
    subject = _subject(request) if "subject" in request.match_info else None
    body = await read_body(request, CompatibilitySetting)
    if subject is None and body.compatibility is None:
        raise InvalidRequest(
            "the registry's default needs a mode", field="/compatibility", rule="required"
        )
    mode = await request.app[NODE].registry.set_compatibility(subject, body.compatibility)
    return json_response(CompatibilitySetting(mode))


_TAG = "schemas"
_SUBJECT = "/v1/subjects/{subject}"

REGISTRY_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        f"{_SUBJECT}/versions",
        register,
        "Register a schema as the subject's next version (200 with the existing version "
        "when identical; 409 listing every breaking change when incompatible)",
        _TAG,
        SchemaRequest,
        Registered,
        201,
        (400, 409),
        also=(200,),
    ),
    Route(
        "POST",
        f"{_SUBJECT}/check",
        check,
        "Dry run: would this schema be accepted as the subject's next version?",
        _TAG,
        SchemaRequest,
        CompatibilityView,
        errors=(400,),
    ),
    Route("GET", "/v1/subjects", list_subjects, "List subjects", _TAG, response=list[SubjectView]),
    Route(
        "GET",
        f"{_SUBJECT}/versions",
        list_versions,
        "A subject's version numbers",
        _TAG,
        response=list[int],
        errors=(400, 404),
    ),
    Route(
        "GET",
        f"{_SUBJECT}/versions/{{version}}",
        get_version,
        "A subject's version by number, or 'latest'",
        _TAG,
        response=SchemaView,
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/v1/schemas/{id}",
        get_by_id,
        "A schema by its id",
        _TAG,
        response=SchemaView,
        errors=(400, 404),
    ),
    Route(
        "GET",
        "/v1/config/compatibility",
        get_compatibility,
        "The registry's default compatibility mode",
        _TAG,
        response=CompatibilitySetting,
    ),
    Route(
        "PUT",
        "/v1/config/compatibility",
        set_compatibility,
        "Set the registry's default compatibility mode",
        _TAG,
        CompatibilitySetting,
        CompatibilitySetting,
        errors=(400,),
    ),
    Route(
        "GET",
        f"{_SUBJECT}/compatibility",
        get_compatibility,
        "A subject's compatibility mode in force",
        _TAG,
        response=CompatibilitySetting,
        errors=(400,),
        operation_id="get_subject_compatibility",
    ),
    Route(
        "PUT",
        f"{_SUBJECT}/compatibility",
        set_compatibility,
        "Set a subject's compatibility mode (null: back to the registry's default)",
        _TAG,
        CompatibilitySetting,
        CompatibilitySetting,
        errors=(400,),
        operation_id="set_subject_compatibility",
    ),
)
