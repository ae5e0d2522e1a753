"""The client refuses what the server would refuse, with the server's very message, field and
rule, before sending anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from conveyor.api.app import build_app
from conveyor.client import AsyncClient
from conveyor.clock import FakeClock
from conveyor.errors import InvalidRequest
from conveyor.model import RetryPolicy, Subscription, Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.schemas import ErrorResponse

UNREACHABLE = "http://127.0.0.1:9"
Call = Callable[[AsyncClient], Awaitable[object]]

CASES = [
    pytest.param(
        lambda c: c.create_topic("t", retention_seconds=10**16),
        ("POST", "/v1/topics", {"name": "t", "retention_seconds": 10**16}),
        ("/retention_seconds", "maximum"),
        id="retention",
    ),
    pytest.param(
        lambda c: c.put_topic(Topic(name="t", partitions=0)),
        ("PUT", "/v1/topics/t", {"name": "t", "partitions": 0}),
        ("/partitions", "minimum"),
        id="partitions",
    ),
    pytest.param(
        lambda c: c.create_subscription("s", "orders", "l", retry=RetryPolicy(max_attempts=0)),
        ("POST", "/v1/subscriptions", {"name": "s", "topic": "orders", "lambda": "l",
                                       "retry": {"max_attempts": 0}}),
        ("/retry/max_attempts", "minimum"),
        id="attempts",
    ),
    pytest.param(
        lambda c: c.put_subscription(Subscription(name="s", topic="orders", lambda_name="l",
                                                  max_wait=-1)),
        ("PUT", "/v1/subscriptions/s", {"name": "s", "topic": "orders", "lambda": "l",
                                        "max_wait": -1}),
        ("/max_wait", "minimum"),
        id="negative linger",
    ),
    pytest.param(
        lambda c: c.set_rate_limit("s", -1),
        ("PUT", "/v1/subscriptions/s/rate-limit", {"per_second": -1}),
        ("/per_second", "exclusive_minimum"),
        id="negative rate",
    ),
    pytest.param(
        lambda c: c.register_endpoint("l", "e", "http://127.0.0.1:1/push", ttl_seconds=0),
        ("PUT", "/v1/lambdas/l/endpoints/e", {"url": "http://127.0.0.1:1/push",
                                              "ttl_seconds": 0}),
        ("/ttl_seconds", "minimum"),
        id="endpoint ttl",
    ),
]  # fmt: skip


@pytest.fixture
async def server(store_url: str) -> AsyncIterator[TestServer]:
    async with Node(NodeSettings(store=store_url), clock=FakeClock()) as node:
        await node.catalog.put_topic(Topic(name="orders"))
        await node.catalog.put_subscription(Subscription(name="s", topic="orders", lambda_name="l"))
        started = TestServer(build_app(node))
        async with started:
            yield started


@pytest.mark.parametrize(("call", "raw", "blamed"), CASES)
async def test_the_client_refuses_a_value_the_server_refuses_with_the_servers_error(
    server: TestServer,
    call: Call,
    raw: tuple[str, str, object],
    blamed: tuple[str, str],
) -> None:
    # Given what the server answers to the body sent as it is
    method, path, body = raw
    async with aiohttp.ClientSession() as session:
        response = await session.request(method, server.make_url(path), json=body)
        assert response.status == 400
        answer = msgspec.json.decode(await response.read(), type=ErrorResponse).error

    # When the client is asked for it, with no server to send it to
    async with AsyncClient(UNREACHABLE) as client:
        with pytest.raises(InvalidRequest) as raised:
            await call(client)

    # Then it refuses it at once with the server's message, field and rule
    error = raised.value
    assert (error.field, error.rule) == blamed
    assert (error.message, error.field, error.rule) == (answer.message, answer.field, answer.rule)
