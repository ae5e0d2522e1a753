"""The HTTP API's routes: one table drives both aiohttp's router and the OpenAPI document."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conveyor import __version__
from conveyor.api._routing import NODE, Route
from conveyor.api._routing import json_response as _json
from conveyor.api._routing import read_body as _body
from conveyor.api.routes_control import CONTROL_ROUTES
from conveyor.api.routes_dlq import DLQ_ROUTES
from conveyor.api.routes_registry import REGISTRY_ROUTES
from conveyor.api.routes_releases import RELEASE_ROUTES
from conveyor.delivery.endpoints import EndpointState
from conveyor.delivery.transcode import check_format
from conveyor.errors import Conflict, ConveyorError, InvalidRequest, NotFound
from conveyor.frontend.formats import relocate, requests_from_http
from conveyor.model import NAME_PATTERN, Subscription, Topic, is_valid_name
from conveyor.node import Node
from conveyor.wire.schemas import (
    BatchPublishRequest,
    BatchPublishResult,
    BatchQuery,
    EndpointInfo,
    EndpointRegistration,
    ErrorDetail,
    EventView,
    Health,
    LambdaInfo,
    PublishRequest,
    PublishResult,
    SubscriptionInfo,
)

__all__ = ["NODE", "ROUTES", "Route"]

log = logging.getLogger("conveyor.api")


def _same_name(path_name: str, body_name: str) -> None:
    if path_name != body_name:
        raise InvalidRequest(
            f"the body's name {body_name!r} differs from the path's {path_name!r}",
            field="/name",
            rule="match_path",
        )


# -- node -------------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    node = request.app[NODE]
    problems = await node.health.problems()
    status = "failing" if problems else "ok"
    answer = Health(status=status, version=__version__, store=node.store.name, problems=problems)
    return _json(answer, 503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    node = request.app[NODE]
    try:
        await node.health.refresh_gauges()
    except ConveyorError as e:  # the other metrics are still worth a scrape
        log.warning("refreshing the backlog gauges failed: %s", e)
    registry = node.metrics.registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


# -- topics -----------------------------------------------------------------------------------
async def _bound_subject_exists(node: Node, topic: Topic) -> None:
    settings = topic.schema_settings
    if settings is None:
        return
    try:
        versions = await node.registry.versions(settings.subject)
    except NotFound as e:
        raise InvalidRequest(
            f"subject {settings.subject!r} has no version: register one first",
            field="/schema_settings/subject",
            rule="exists",
        ) from e
    if settings.last_version is not None and settings.last_version > versions[-1].version:
        raise InvalidRequest(
            f"subject {settings.subject!r} has no version {settings.last_version} "
            f"(newest: {versions[-1].version})",
            field="/schema_settings/last_version",
            rule="exists",
        )


async def create_topic(request: web.Request) -> web.Response:
    catalog = request.app[NODE].catalog
    topic = await _body(request, Topic)
    await _bound_subject_exists(request.app[NODE], topic)
    existing = catalog.find_topic(topic.name)
    if existing is not None:
        if existing != topic:
            raise Conflict(f"topic {topic.name!r} exists with another definition")
        return _json(existing)
    await catalog.put_topic(topic)
    return _json(topic, 201)


async def put_topic(request: web.Request) -> web.Response:
    topic = await _body(request, Topic)
    _same_name(request.match_info["name"], topic.name)
    await _bound_subject_exists(request.app[NODE], topic)
    created = await request.app[NODE].catalog.put_topic(topic)
    return _json(topic, 201 if created else 200)


async def list_topics(request: web.Request) -> web.Response:
    return _json(request.app[NODE].catalog.topics())


async def get_topic(request: web.Request) -> web.Response:
    return _json(request.app[NODE].catalog.topic(request.match_info["name"]))


# -- subscriptions ----------------------------------------------------------------------------
async def create_subscription(request: web.Request) -> web.Response:
    node = request.app[NODE]
    sub = await _body(request, Subscription)
    await check_format(node.registry, node.catalog.find_topic(sub.topic), sub.format)
    existing = node.catalog.subscriptions()
    current = next((s for s in existing if s.name == sub.name), None)
    if current is not None:
        if msgspec.structs.replace(current, control=sub.control) != sub:
            raise Conflict(f"subscription {sub.name!r} exists with another definition")
        return _json(await node.status.subscription(sub.name))
    await node.catalog.put_subscription(sub)
    return _json(await node.status.subscription(sub.name), 201)


async def put_subscription(request: web.Request) -> web.Response:
    node = request.app[NODE]
    sub = await _body(request, Subscription)
    _same_name(request.match_info["name"], sub.name)
    await check_format(node.registry, node.catalog.find_topic(sub.topic), sub.format)
    created = await node.catalog.put_subscription(sub)
    return _json(await node.status.subscription(sub.name), 201 if created else 200)


async def list_subscriptions(request: web.Request) -> web.Response:
    return _json(await request.app[NODE].status.subscriptions())


async def get_subscription(request: web.Request) -> web.Response:
    return _json(await request.app[NODE].status.subscription(request.match_info["name"]))


async def delete_subscription(request: web.Request) -> web.Response:
    await request.app[NODE].catalog.delete_subscription(request.match_info["name"])
    return web.Response(status=204)


# -- events -----------------------------------------------------------------------------------
async def publish(request: web.Request) -> web.Response:
    node = request.app[NODE]
    name = request.match_info["topic"]
    topic = node.catalog.find_topic(name) or await node.catalog.find_topic_fresh(name)
    requests = await requests_from_http(request, topic, node.registry, batch=False)
    try:
        (result,) = await node.publisher.publish(topic.name, requests, batch=False)
    except InvalidRequest as e:
        relocate(e, request)
        raise
    except Conflict as e:
        # The store speaks of the batch's events[i]; a single publish has no batch.
        raise Conflict(
            f"idempotency key {requests[0].idempotency_key!r} was used before with a different "
            "event: a retry sends the same event, a new event needs a new key"
        ) from e
    return _json(result, 200 if result.duplicate else 201)


async def publish_batch(request: web.Request) -> web.Response:
    node = request.app[NODE]
    name = request.match_info["topic"]
    topic = node.catalog.find_topic(name) or await node.catalog.find_topic_fresh(name)
    requests = await requests_from_http(request, topic, node.registry, batch=True)
    partial = _flag(request, "partial")
    try:
        if not partial:
            results = await node.publisher.publish(topic.name, requests, batch=True)
            return _json(BatchPublishResult(results), 201)
        results, problems = await node.publisher.publish_partial(topic.name, requests)
    except InvalidRequest as e:
        relocate(e, request)
        raise
    for problem in problems:
        relocate(problem, request)
    rejected = [
        ErrorDetail(message=p.message, field=p.field, rule=p.rule, index=p.index, code=p.code)
        for p in problems
    ]
    # 201 when something was stored; 200 (processed, nothing created) when none was valid.
    return _json(BatchPublishResult(results, rejected), 201 if results else 200)


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(
            f"query parameter {name!r} is true or false, not {value!r}",
            field=f"/query/{name}",
            rule="type",
        )
    return value in ("true", "1")


async def get_event(request: web.Request) -> web.Response:
    return _json(await request.app[NODE].status.event(request.match_info["id"]))


# -- lambdas ----------------------------------------------------------------------------------
async def register_endpoint(request: web.Request) -> web.Response:
    node = request.app[NODE]
    reg = await _body(request, EndpointRegistration)
    lambda_name, endpoint_id = request.match_info["lambda"], request.match_info["id"]
    for what, name in (("lambda", lambda_name), ("id", endpoint_id)):
        if not is_valid_name(name):
            raise InvalidRequest(
                f"{what} {name!r} must match {NAME_PATTERN}", field=what, rule="pattern"
            )
    await node.register_endpoint(
        lambda_name,
        endpoint_id,
        reg.url,
        reg.ttl_seconds,
        reg.concurrency,
        locality=reg.locality,
        version=reg.version,
        static=reg.static,
        health_url=reg.health_url,
    )
    state = next(e for e in node.pool.endpoints(lambda_name) if e.id == endpoint_id)
    return _json(_endpoint_info(node, state))


async def deregister_endpoint(request: web.Request) -> web.Response:
    lambda_name, endpoint_id = request.match_info["lambda"], request.match_info["id"]
    if not await request.app[NODE].deregister_endpoint(lambda_name, endpoint_id):
        raise NotFound("endpoint", f"{lambda_name}/{endpoint_id}")
    return web.Response(status=204)


def _endpoint_info(node: Node, state: EndpointState) -> EndpointInfo:
    now = node.clock.now()
    ejected = state.ejected_until > now
    return EndpointInfo(
        lambda_name=state.lambda_name,
        id=state.id,
        url=state.url,
        expires_at=None if state.static else _time(state.expires_at),
        in_flight=state.in_flight,
        locality=state.locality,
        version=state.version,
        static=state.static,
        healthy=state.healthy(now),
        ejected_until=_time(state.ejected_until) if ejected else None,
        ejections=state.ejections,
        consecutive_failures=state.consecutive_failures,
        probe_healthy=state.probe_healthy,
        last_probe_error=state.last_probe_error,
        pushes=state.pushes,
        failures=state.failures,
    )


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


async def list_lambdas(request: web.Request) -> web.Response:
    node = request.app[NODE]
    names = sorted({s.lambda_name for s in node.catalog.subscriptions()} | set(node.pool.lambdas()))
    return _json(
        [
            LambdaInfo(name, [_endpoint_info(node, e) for e in node.pool.endpoints(name)])
            for name in names
        ]
    )


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/health",
        health,
        "The node's health: 200 ok, or 503 failing with the problems (the store refuses "
        "writes, delayed events overdue)",
        "node",
        response=Health,
        also=(503,),
    ),
    Route("GET", "/metrics", metrics, "Prometheus metrics (text format)", "node"),
    Route(
        "POST",
        "/v1/topics",
        create_topic,
        "Create a topic (200 when an identical one exists)",
        "topics",
        Topic,
        Topic,
        201,
        (400, 409),
        also=(200,),
    ),
    Route("GET", "/v1/topics", list_topics, "List topics", "topics", response=list[Topic]),
    Route(
        "GET",
        "/v1/topics/{name}",
        get_topic,
        "Get a topic",
        "topics",
        response=Topic,
        errors=(404,),
    ),
    Route(
        "PUT",
        "/v1/topics/{name}",
        put_topic,
        "Create or update a topic (200 when it replaced one)",
        "topics",
        Topic,
        Topic,
        201,
        (400, 409),
        also=(200,),
    ),
    Route(
        "POST",
        "/v1/topics/{topic}/events",
        publish,
        "Publish one event; acknowledged once durable (200 for an idempotent replay). Also "
        "takes Avro or Protobuf binary data and CloudEvents (structured or binary mode) by "
        "Content-Type: see docs/schemas.md",
        "events",
        PublishRequest,
        PublishResult,
        201,
        (400, 404, 409, 413, 415, 422),
        also=(200,),
    ),
    Route(
        "POST",
        "/v1/topics/{topic}/events/batch",
        publish_batch,
        "Publish events atomically: all are stored or none (or, with ?partial=true, the "
        "valid ones, the others listed in rejected). Also takes a CloudEvents batch "
        "(application/cloudevents-batch+json): see docs/schemas.md",
        "events",
        BatchPublishRequest,
        BatchPublishResult,
        201,
        (400, 404, 409, 413, 415, 422),
        query=BatchQuery,
        also=(200,),
    ),
    Route(
        "GET",
        "/v1/events/{id}",
        get_event,
        "An event and, per subscription, its state and attempt history",
        "events",
        response=EventView,
        errors=(404,),
    ),
    Route(
        "POST",
        "/v1/subscriptions",
        create_subscription,
        "Create a subscription (200 when an identical one exists)",
        "subscriptions",
        Subscription,
        SubscriptionInfo,
        201,
        (400, 404, 409),
        also=(200,),
    ),
    Route(
        "GET",
        "/v1/subscriptions",
        list_subscriptions,
        "List subscriptions with live figures",
        "subscriptions",
        response=list[SubscriptionInfo],
    ),
    Route(
        "GET",
        "/v1/subscriptions/{name}",
        get_subscription,
        "A subscription with its live figures",
        "subscriptions",
        response=SubscriptionInfo,
        errors=(404,),
    ),
    Route(
        "PUT",
        "/v1/subscriptions/{name}",
        put_subscription,
        "Create or update a subscription (200 when it replaced one)",
        "subscriptions",
        Subscription,
        SubscriptionInfo,
        201,
        (400, 404, 409),
        also=(200,),
    ),
    Route(
        "DELETE",
        "/v1/subscriptions/{name}",
        delete_subscription,
        "Delete a subscription and its progress",
        "subscriptions",
        status=204,
        errors=(404,),
    ),
    Route(
        "GET",
        "/v1/lambdas",
        list_lambdas,
        "Lambdas and their live endpoints",
        "lambdas",
        response=list[LambdaInfo],
    ),
    Route(
        "PUT",
        "/v1/lambdas/{lambda}/endpoints/{id}",
        register_endpoint,
        "Register or renew (heartbeat) a worker's push endpoint",
        "lambdas",
        EndpointRegistration,
        EndpointInfo,
        200,
        (400,),
    ),
    Route(
        "DELETE",
        "/v1/lambdas/{lambda}/endpoints/{id}",
        deregister_endpoint,
        "Remove a worker's push endpoint",
        "lambdas",
        status=204,
        errors=(404,),
    ),
    *CONTROL_ROUTES,
    *DLQ_ROUTES,
    *REGISTRY_ROUTES,
    *RELEASE_ROUTES,
)
