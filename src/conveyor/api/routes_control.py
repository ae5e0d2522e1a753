"""The run-time gates of a subscription: pause, resume, purge (drain to drop), rate limit.

Gates are operator state, not spec: replacing a subscription (as ``conveyor worker`` does when
it starts) keeps them. Every node applies a change within its catalog sync (at once on the node
that took it).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from conveyor.api._routing import NODE, Route, json_response, read_body
from conveyor.clock import to_ms
from conveyor.model import RateLimit
from conveyor.wire.schemas import SubscriptionInfo


async def _apply(request: web.Request, **changes: object) -> web.Response:
    return json_response(await _applied(request, **changes))


async def _applied(request: web.Request, **changes: object) -> SubscriptionInfo:
    node = request.app[NODE]
    name = request.match_info["name"]
    control = msgspec.structs.replace(node.catalog.subscription(name).control, **changes)
    await node.catalog.set_control(name, control)
    return await node.status.subscription(name)


async def pause(request: web.Request) -> web.Response:
    return await _apply(request, paused=True)


async def resume(request: web.Request) -> web.Response:
    return await _apply(request, paused=False)


async def purge(request: web.Request) -> web.Response:
    # Everything published up to now (this millisecond included) is dropped unpushed. What
    # it drops is counted before it takes effect: right after, the dispatcher may already
    # have dropped the backlog, which then reads 0.
    node = request.app[NODE]
    before = (await node.status.subscription(request.match_info["name"])).stats
    now_ms = to_ms(node.clock.now())
    info = await _applied(request, purged_before_ms=now_ms + 1)
    info.purged = before.backlog + before.retrying
    return json_response(info)


async def set_rate_limit(request: web.Request) -> web.Response:
    limit = await read_body(request, RateLimit)
    return await _apply(request, rate_limit=limit)


async def clear_rate_limit(request: web.Request) -> web.Response:
    return await _apply(request, rate_limit=None)


_PATH = "/v1/subscriptions/{name}"
_TAG = "subscriptions"

CONTROL_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        f"{_PATH}/pause",
        pause,
        "Pause pushes; the backlog keeps growing and stays visible",
        _TAG,
        response=SubscriptionInfo,
        errors=(404,),
    ),
    Route(
        "POST",
        f"{_PATH}/resume",
        resume,
        "Resume pushes",
        _TAG,
        response=SubscriptionInfo,
        errors=(404,),
    ),
    Route(
        "POST",
        f"{_PATH}/purge",
        purge,
        "Drain to drop: events published until now, retrying ones included, are dropped "
        "unpushed (their state reads dropped); `purged` counts them",
        _TAG,
        response=SubscriptionInfo,
        errors=(404,),
    ),
    Route(
        "PUT",
        f"{_PATH}/rate-limit",
        set_rate_limit,
        "Set the rate limit (a token bucket over pushed events) at run time",
        _TAG,
        RateLimit,
        SubscriptionInfo,
        errors=(400, 404),
    ),
    Route(
        "DELETE",
        f"{_PATH}/rate-limit",
        clear_rate_limit,
        "Remove the rate limit",
        _TAG,
        response=SubscriptionInfo,
        errors=(404,),
    ),
)
