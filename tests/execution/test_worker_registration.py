"""A worker's registration with the platform, against a fake of the platform's HTTP API."""

from __future__ import annotations

import asyncio
import socket

import msgspec
import pytest
from execution_fakes import FakePlatform, until

from conveyor.clock import FakeClock
from conveyor.execution import Lambda, RegistrationError, Worker
from conveyor.model import Subscription
from conveyor.wire.schemas import EndpointRegistration, ErrorBody


def billing_app() -> Lambda:
    app = Lambda("billing")

    @app.handler("orders", max_batch=50)
    async def charge(payload: object) -> None: ...

    return app


async def test_a_worker_creates_a_missing_topic_then_registers_subscription_and_endpoint() -> None:
    # Given a platform where the topic does not exist yet
    app = billing_app()

    # When
    async with (
        FakePlatform() as platform,
        Worker(
            app,
            server=platform.url,
            concurrency=7,
            clock=FakeClock(),
            locality="gcp/europe-west1/europe-west1-b",
            version="2.1.0",
        ) as worker,
    ):
        endpoint = f"/v1/lambdas/billing/endpoints/{worker.endpoint_id}"
        calls = [(c.method, c.path) for c in platform.calls]

        # Then the subscription is retried after the topic is created
        assert calls == [
            ("PUT", "/v1/subscriptions/billing.charge"),
            ("POST", "/v1/topics"),
            ("PUT", "/v1/subscriptions/billing.charge"),
            ("PUT", endpoint),
        ]
        assert msgspec.json.decode(platform.calls[1].body) == {"name": "orders"}
        subscription = msgspec.json.decode(platform.calls[2].body, type=Subscription)
        assert subscription == app.subscriptions()[0]
        assert subscription.lambda_name == "billing"
        assert subscription.max_batch == 50
        registration = msgspec.json.decode(platform.calls[3].body, type=EndpointRegistration)
        assert registration == EndpointRegistration(
            url=worker.url,
            ttl_seconds=15.0,
            concurrency=7,
            locality="gcp/europe-west1/europe-west1-b",
            version="2.1.0",
            health_url=worker.url.replace("/conveyor/push", "/conveyor/health"),
        )


async def test_a_missing_topic_is_created_along_with_its_dead_letter_topic() -> None:
    # Given a platform where the dead-letter topic exists and the topic does not
    app = Lambda("billing")

    @app.handler("orders", dead_letter_topic="orders-dead")
    async def charge(payload: object) -> None: ...

    # When
    async with (
        FakePlatform(topics={"orders-dead"}) as platform,
        Worker(app, server=platform.url, clock=FakeClock()),
    ):
        created = [msgspec.json.decode(c.body) for c in platform.calls_to("POST", "/v1/topics")]

    # Then both are asked for with create-only POSTs, which leave an existing topic alone
    assert created == [{"name": "orders"}, {"name": "orders-dead"}]
    assert platform.topics == {"orders", "orders-dead"}
    assert len(platform.calls_to("PUT", "/v1/subscriptions/billing.charge")) == 2


async def test_the_endpoint_is_renewed_each_third_of_its_ttl() -> None:
    # Given a registered worker whose heartbeat waits on a fake clock
    clock = FakeClock()
    async with (
        FakePlatform(topics={"orders"}) as platform,
        Worker(billing_app(), server=platform.url, clock=clock) as worker,
    ):
        endpoint = f"/v1/lambdas/billing/endpoints/{worker.endpoint_id}"
        await until(lambda: clock.next_deadline() is not None)
        assert len(platform.calls_to("PUT", endpoint)) == 1

        # When just under a third of the TTL passes, nothing is sent
        clock.advance(4.9)
        await asyncio.sleep(0.05)
        assert len(platform.calls_to("PUT", endpoint)) == 1

        # Then at a third of the TTL the endpoint is registered again, and again after that
        clock.advance(0.1)
        await until(lambda: len(platform.calls_to("PUT", endpoint)) == 2)
        await until(lambda: clock.next_deadline() == clock.now() + 5.0)
        clock.advance(5.0)
        await until(lambda: len(platform.calls_to("PUT", endpoint)) == 3)


async def test_a_failed_renewal_is_retried_within_the_ttl() -> None:
    # Given a registered worker and a platform that fails the next call
    clock = FakeClock()
    async with (
        FakePlatform(topics={"orders"}) as platform,
        Worker(billing_app(), server=platform.url, clock=clock) as worker,
    ):
        endpoint = f"/v1/lambdas/billing/endpoints/{worker.endpoint_id}"
        await until(lambda: clock.next_deadline() is not None)
        platform.unavailable = 1

        # When the renewal fails
        clock.advance(5.0)
        await until(lambda: len(platform.calls_to("PUT", endpoint)) == 2)

        # Then it is tried again a second later, not a whole interval later
        await until(lambda: clock.next_deadline() == clock.now() + 1.0)
        clock.advance(1.0)
        await until(lambda: len(platform.calls_to("PUT", endpoint)) == 3)
        assert platform.unavailable == 0


async def test_draining_deregisters_the_endpoint_and_stops_renewing_it() -> None:
    # Given
    clock = FakeClock()
    async with FakePlatform(topics={"orders"}) as platform:
        worker = Worker(billing_app(), server=platform.url, clock=clock)
        async with worker:
            endpoint = f"/v1/lambdas/billing/endpoints/{worker.endpoint_id}"

            # When
            await worker.drain()

            # Then
            assert (platform.calls[-1].method, platform.calls[-1].path) == ("DELETE", endpoint)
            clock.advance(60.0)
            await asyncio.sleep(0.05)
            assert platform.calls[-1].method == "DELETE"


async def test_a_refused_subscription_fails_start_naming_the_field_and_rule() -> None:
    # Given a platform that refuses the subscription
    refusal = ErrorBody(
        code="invalid_request",
        message="max_batch is above this node's limit",
        field="max_batch",
        rule="maximum",
    )
    async with FakePlatform(topics={"orders"}, refuse_subscriptions=(422, refusal)) as platform:
        # When / Then
        with pytest.raises(RegistrationError) as caught:
            async with Worker(billing_app(), server=platform.url, clock=FakeClock()):
                pass

    assert caught.value.http_status == 422
    assert (caught.value.field, caught.value.rule) == ("max_batch", "maximum")
    assert str(caught.value) == (
        "the platform refused subscription 'billing.charge' (HTTP 422 invalid_request, "
        "field 'max_batch', rule 'maximum'): max_batch is above this node's limit"
    )
    assert platform.calls_to("PUT", "/v1/lambdas") == []


async def test_a_platform_that_answers_503_at_first_is_waited_for() -> None:
    # Given a platform that is still starting
    # When
    async with (
        FakePlatform(topics={"orders"}, unavailable=2) as platform,
        Worker(billing_app(), server=platform.url) as worker,
    ):
        # Then
        endpoint = f"/v1/lambdas/billing/endpoints/{worker.endpoint_id}"
        assert len(platform.calls_to("PUT", "/v1/subscriptions/billing.charge")) == 3
        assert len(platform.calls_to("PUT", endpoint)) == 1


async def test_an_unreachable_platform_fails_start_after_the_connect_timeout() -> None:
    # Given a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    # When / Then
    with pytest.raises(RegistrationError, match=r"unreachable .* after 0.3s") as caught:
        async with Worker(billing_app(), server=f"http://127.0.0.1:{port}", connect_timeout=0.3):
            pass
    assert caught.value.http_status is None


async def test_a_worker_given_several_nodes_registers_through_one_that_answers() -> None:
    # Given a cluster of two nodes of which the first does not answer
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = billing_app()

    # When the worker is given both, the dead one first
    async with (
        FakePlatform(topics={"orders"}) as platform,
        Worker(app, server=f"{dead},{platform.url}", clock=FakeClock()) as worker,
    ):
        # Then it registered its subscription and endpoint through the live node at once
        paths = [c.path for c in platform.calls]
        assert paths == [
            "/v1/subscriptions/billing.charge",
            f"/v1/lambdas/billing/endpoints/{worker.endpoint_id}",
        ]
