"""Releases' routes: a lambda's releases (stable, canary with live figures, history), promote
and roll back by hand, and the release policy.

Promotions and rollbacks apply at once on the answering node, and on the others at their
next sync. A canary's live figures are the answering node's: each node judges from the
pushes it made.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from conveyor.api._routing import NODE, Route, json_response, read_body
from conveyor.delivery.releases import LambdaView
from conveyor.delivery.releases_policy import Release
from conveyor.errors import InvalidRequest, NotFound
from conveyor.model import NAME_PATTERN, is_valid_name
from conveyor.node import Node
from conveyor.wire.releases import Figures, LambdaReleases, ReleasePolicy, ReleaseState, ReleaseView


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _view(release: Release, *, live: Figures | None = None, status: str = "") -> ReleaseView:
    return ReleaseView(
        version=release.version,
        state=release.state,
        started_at=_time(release.started_ms),
        decided_at=None if release.decided_ms is None else _time(release.decided_ms),
        reason=status or release.reason,
        window=live if live is not None else release.figures,
    )


def lambda_releases(view: LambdaView) -> LambdaReleases:
    """The API's body for a lambda's releases as a node sees them."""
    stable = view.in_state(ReleaseState.STABLE)
    canary = view.in_state(ReleaseState.CANARY)
    return LambdaReleases(
        lambda_name=view.lambda_name,
        stable=_view(stable[0]) if stable else None,
        canary=_view(canary[0], live=view.live, status=view.status) if canary else None,
        pending=[_view(r) for r in view.in_state(ReleaseState.PENDING)],
        history=[_view(r) for r in reversed(view.releases)],
        policy=view.policy,
    )


def _lambda(request: web.Request) -> str:
    name = request.match_info["lambda"]
    if not is_valid_name(name):
        raise InvalidRequest(
            f"lambda {name!r} must match {NAME_PATTERN}", field="/lambda", rule="pattern"
        )
    return name


def _known_lambda(node: Node, name: str) -> bool:
    return name in node.pool.lambdas() or any(
        s.lambda_name == name for s in node.catalog.subscriptions()
    )


async def list_releases(request: web.Request) -> web.Response:
    node, name = request.app[NODE], _lambda(request)
    view = await node.releases.describe(name)
    if view is None:
        if not _known_lambda(node, name):
            raise NotFound("lambda", name)
        view = node.releases.view(name)
    return json_response(lambda_releases(view))


async def promote_release(request: web.Request) -> web.Response:
    node, name = request.app[NODE], _lambda(request)
    view = await node.releases.promote(name, request.match_info["version"])
    return json_response(lambda_releases(view))


async def rollback_release(request: web.Request) -> web.Response:
    node, name = request.app[NODE], _lambda(request)
    view = await node.releases.roll_back(name, request.match_info["version"])
    return json_response(lambda_releases(view))


async def get_release_policy(request: web.Request) -> web.Response:
    node, name = request.app[NODE], _lambda(request)
    return json_response(await node.releases.policy(name))


async def put_release_policy(request: web.Request) -> web.Response:
    node, name = request.app[NODE], _lambda(request)
    policy = await read_body(request, ReleasePolicy)
    return json_response(await node.releases.set_policy(name, policy))


_BASE = "/v1/lambdas/{lambda}"
_TAG = "releases"

RELEASE_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"{_BASE}/releases",
        list_releases,
        "A lambda's releases: the stable version, the canary with its live figures on this "
        "node, pending versions, and the history with the figures of each decision",
        _TAG,
        response=LambdaReleases,
        errors=(400, 404),
    ),
    Route(
        "POST",
        f"{_BASE}/releases/{{version}}/promote",
        promote_release,
        "Make a version stable now, whatever its state (the stable one before it is superseded)",
        _TAG,
        response=LambdaReleases,
        errors=(400, 404),
    ),
    Route(
        "POST",
        f"{_BASE}/releases/{{version}}/rollback",
        rollback_release,
        "Roll a version back now: it gets no pushes any more (the stable one: the version "
        "it superseded is stable again)",
        _TAG,
        response=LambdaReleases,
        errors=(400, 404, 409),
    ),
    Route(
        "GET",
        f"{_BASE}/release-policy",
        get_release_policy,
        "A lambda's release policy (the defaults when never set)",
        _TAG,
        response=ReleasePolicy,
        errors=(400,),
    ),
    Route(
        "PUT",
        f"{_BASE}/release-policy",
        put_release_policy,
        "Set a lambda's release policy (fields left out take their defaults); applies to "
        "the trial under way",
        _TAG,
        ReleasePolicy,
        ReleasePolicy,
        errors=(400,),
    ),
)
