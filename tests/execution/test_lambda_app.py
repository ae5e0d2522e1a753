"""The Lambda SDK: handler registration and ``run_batch`` (no HTTP)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import msgspec
import pydantic
import pytest
from execution_fakes import PUBLISHED_MS, push

from conveyor.execution import EventContext, Fatal, Lambda, Retry
from conveyor.model import Outcome, RetryPolicy, Subscription
from conveyor.wire.push import PushEvent, PushRequest, PushResult


class Order(msgspec.Struct):
    sku: str
    amount: int


class OrderModel(pydantic.BaseModel):
    sku: str
    amount: int


async def run_one(app: Lambda, subscription: str, payload: object) -> PushResult:
    response = await app.run_batch(push(subscription, payload))
    assert len(response.results) == 1
    return response.results[0]


# Handler registration


def test_a_lambda_name_must_be_a_valid_name() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="invalid lambda name"):
        Lambda("not a name")


def test_a_handler_subscription_defaults_to_the_lambda_and_function_names() -> None:
    # Given
    app = Lambda("billing")

    # When
    @app.handler("orders", ordered=True, max_batch=10, retry=RetryPolicy(max_attempts=3))
    async def charge(order: Order) -> None: ...

    @app.handler("refunds", subscription="billing-refunds", dead_letter_topic="refunds-dlq")
    def refund(payload: dict[str, Any]) -> None: ...

    # Then
    assert app.subscriptions() == [
        Subscription(
            name="billing.charge",
            topic="orders",
            lambda_name="billing",
            ordered=True,
            max_batch=10,
            retry=RetryPolicy(max_attempts=3),
        ),
        Subscription(
            name="billing-refunds",
            topic="refunds",
            lambda_name="billing",
            dead_letter_topic="refunds-dlq",
        ),
    ]


def test_two_handlers_with_one_subscription_name_are_refused() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders", subscription="same")
    async def first(payload: object) -> None: ...

    # When / Then
    with pytest.raises(ValueError, match="already has a subscription 'same'"):

        @app.handler("refunds", subscription="same")
        async def second(payload: object) -> None: ...


def test_a_handler_setting_out_of_range_is_refused_naming_the_field() -> None:
    # Given
    app = Lambda("billing")

    # When / Then
    with pytest.raises(ValueError, match=r"max_batch"):

        @app.handler("orders", max_batch=0)
        async def charge(payload: object) -> None: ...


def test_a_handler_with_an_unexplained_extra_parameter_is_refused() -> None:
    # Given
    app = Lambda("billing")

    # When / Then
    with pytest.raises(TypeError, match="'extra' is neither the payload nor the context"):

        @app.handler("orders")
        async def charge(payload: object, extra: int) -> None: ...


def test_the_decorator_returns_the_function_unchanged() -> None:
    # Given
    app = Lambda("billing")

    def charge(payload: object) -> str:
        return "called"

    # When
    registered = app.handler("orders")(charge)

    # Then
    assert registered is charge
    assert registered(None) == "called"


# Running handlers


async def test_an_async_handler_that_returns_succeeds() -> None:
    # Given
    app = Lambda("billing")
    seen: list[object] = []

    @app.handler("orders")
    async def charge(payload: dict[str, object]) -> None:
        seen.append(payload)

    # When
    result = await run_one(app, "billing.charge", {"sku": "a", "amount": 3})

    # Then
    assert result == PushResult("e0", Outcome.SUCCESS)
    assert seen == [{"sku": "a", "amount": 3}]


async def test_a_sync_handler_runs_in_a_worker_thread() -> None:
    # Given
    app = Lambda("billing")
    threads: list[int] = []

    @app.handler("orders")
    def charge(payload: dict[str, object]) -> None:
        threads.append(threading.get_ident())

    # When
    result = await run_one(app, "billing.charge", {"sku": "a"})

    # Then
    assert result.status is Outcome.SUCCESS
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


async def test_a_sync_handlers_failure_is_reported_like_an_async_ones() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    def charge(payload: object) -> None:
        raise Retry("card declined", after=30)

    # When
    result = await run_one(app, "billing.charge", {})

    # Then
    assert result == PushResult("e0", Outcome.RETRY, after=30, error="card declined")


async def test_a_msgspec_struct_payload_is_decoded_into_the_struct() -> None:
    # Given
    app = Lambda("billing")
    seen: list[Order] = []

    @app.handler("orders")
    async def charge(order: Order) -> None:
        seen.append(order)

    # When
    result = await run_one(app, "billing.charge", {"sku": "a", "amount": 3})

    # Then
    assert result.status is Outcome.SUCCESS
    assert seen == [Order(sku="a", amount=3)]


async def test_a_pydantic_model_payload_is_validated_into_the_model() -> None:
    # Given
    app = Lambda("billing")
    seen: list[OrderModel] = []

    @app.handler("orders")
    async def charge(order: OrderModel) -> None:
        seen.append(order)

    # When
    result = await run_one(app, "billing.charge", {"sku": "a", "amount": "3"})

    # Then
    assert result.status is Outcome.SUCCESS
    assert seen == [OrderModel(sku="a", amount=3)]


async def test_other_declared_types_are_decoded_by_msgspec() -> None:
    # Given
    app = Lambda("billing")
    seen: list[list[int]] = []

    @app.handler("orders")
    async def total(amounts: list[int]) -> None:
        seen.append(amounts)

    # When
    ok = await run_one(app, "billing.total", [1, 2, 3])
    bad = await run_one(app, "billing.total", [1, "two"])

    # Then
    assert ok.status is Outcome.SUCCESS
    assert seen == [[1, 2, 3]]
    assert bad.status is Outcome.FATAL
    assert bad.error is not None
    assert "$[1]" in bad.error


async def test_an_unannotated_payload_is_plain_json() -> None:
    # Given
    app = Lambda("billing")
    seen: list[object] = []

    @app.handler("orders")
    async def charge(payload):  # type: ignore[no-untyped-def]
        seen.append(payload)

    # When
    result = await run_one(app, "billing.charge", [1, {"a": None}])

    # Then
    assert result.status is Outcome.SUCCESS
    assert seen == [[1, {"a": None}]]


@pytest.mark.parametrize("model", [Order, OrderModel], ids=["msgspec", "pydantic"])
async def test_a_payload_off_its_type_is_fatal_and_names_the_field(model: type) -> None:
    # Given
    app = Lambda("billing")
    calls: list[object] = []

    async def charge(order: Order | OrderModel) -> None:
        calls.append(order)

    charge.__annotations__["order"] = model
    app.handler("orders")(charge)

    # When
    result = await run_one(app, "billing.charge", {"sku": "a", "amount": "lots"})

    # Then
    assert result.status is Outcome.FATAL
    assert result.error is not None
    assert result.error.startswith(f"payload does not decode as {model.__qualname__}:")
    assert "$.amount" in result.error
    assert calls == []


async def test_retry_is_a_retry_after_the_seconds_it_names() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: object) -> None:
        raise Retry("gateway busy", after=2.5)

    # When
    result = await run_one(app, "billing.charge", {})

    # Then
    assert result == PushResult("e0", Outcome.RETRY, after=2.5, error="gateway busy")


async def test_retry_without_after_leaves_the_wait_to_the_retry_policy() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: object) -> None:
        raise Retry

    # When
    result = await run_one(app, "billing.charge", {})

    # Then
    assert result == PushResult("e0", Outcome.RETRY)


def test_retry_refuses_a_negative_wait() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="after"):
        Retry(after=-1)


async def test_fatal_is_a_fatal_result_with_its_reason() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: object) -> None:
        raise Fatal("no such customer")

    # When
    result = await run_one(app, "billing.charge", {})

    # Then
    assert result == PushResult("e0", Outcome.FATAL, error="no such customer")


async def test_any_other_exception_is_a_retry_naming_it_truncated_to_2000_characters() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: dict[str, str]) -> None:
        raise KeyError(payload["text"])

    # When
    short = await run_one(app, "billing.charge", {"text": "customer"})
    long = await run_one(app, "billing.charge", {"text": "x" * 5000})

    # Then
    assert short == PushResult("e0", Outcome.RETRY, error="KeyError: 'customer'")
    assert long.status is Outcome.RETRY
    assert long.error is not None
    assert long.error.startswith("KeyError: 'xxx")
    assert len(long.error) == 2000


async def test_an_annotated_context_parameter_receives_the_event_metadata() -> None:
    # Given
    app = Lambda("billing")
    seen: list[EventContext] = []

    @app.handler("orders")
    async def charge(payload: object, meta: EventContext) -> None:
        seen.append(meta)

    event = PushEvent(
        id="e7",
        topic="orders",
        partition=2,
        offset=41,
        payload=msgspec.Raw(b"{}"),
        published_ms=PUBLISHED_MS,
        attempt=3,
        key="customer-9",
        attributes={"traceparent": "00-abc-def-01"},
        deliver_at_ms=PUBLISHED_MS + 60_000,
    )

    # When
    response = await app.run_batch(PushRequest("billing.charge", [event]))

    # Then
    assert response.results == [PushResult("e7", Outcome.SUCCESS)]
    assert seen == [
        EventContext(
            id="e7",
            topic="orders",
            partition=2,
            offset=41,
            key="customer-9",
            attributes={"traceparent": "00-abc-def-01"},
            attempt=3,
            published_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            deliver_at=datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC),
            subscription="billing.charge",
        )
    ]


async def test_a_sync_handler_may_take_the_context_by_the_name_ctx() -> None:
    # Given
    app = Lambda("billing")
    seen: list[tuple[object, object]] = []

    @app.handler("orders")
    def charge(payload, ctx):  # type: ignore[no-untyped-def]
        seen.append((payload, ctx))

    # When
    result = await run_one(app, "billing.charge", {"a": 1})

    # Then
    assert result.status is Outcome.SUCCESS
    [(payload, ctx)] = seen
    assert payload == {"a": 1}
    assert isinstance(ctx, EventContext)
    assert (ctx.id, ctx.attempt, ctx.attributes, ctx.deliver_at) == ("e0", 1, {}, None)


async def test_a_push_for_an_unknown_subscription_is_retried_for_every_event() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: object) -> None: ...

    # When
    response = await app.run_batch(push("billing.other", {}, {}))

    # Then
    assert [r.status for r in response.results] == [Outcome.RETRY, Outcome.RETRY]
    assert response.results[0].error == (
        "lambda 'billing' has no handler for subscription 'billing.other'"
    )


async def test_a_batch_answers_each_event_in_order_whatever_its_batch_mates_do() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: str) -> None:
        if payload == "retry":
            raise Retry(after=1)
        if payload == "fatal":
            raise Fatal("bad")
        if payload == "crash":
            raise RuntimeError("boom")

    # When
    response = await app.run_batch(push("billing.charge", "ok", "retry", "fatal", "crash", 7))

    # Then
    assert response.results == [
        PushResult("e0", Outcome.SUCCESS),
        PushResult("e1", Outcome.RETRY, after=1),
        PushResult("e2", Outcome.FATAL, error="bad"),
        PushResult("e3", Outcome.RETRY, error="RuntimeError: boom"),
        PushResult(
            "e4", Outcome.FATAL, error="payload does not decode as str: Expected `str`, got `int`"
        ),
    ]


async def test_the_events_of_a_batch_run_concurrently() -> None:
    # Given a handler that finishes only once all three events are running at once
    app = Lambda("billing")
    arrived = 0
    all_in = asyncio.Event()

    @app.handler("orders")
    async def charge(payload: object) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_in.set()
        await all_in.wait()

    # When
    async with asyncio.timeout(2):
        response = await app.run_batch(push("billing.charge", 1, 2, 3))

    # Then
    assert [r.status for r in response.results] == [Outcome.SUCCESS] * 3


async def test_a_limiter_bounds_the_handlers_running_at_once() -> None:
    # Given
    app = Lambda("billing")
    running = peak = 0

    @app.handler("orders")
    async def charge(payload: object) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    # When
    response = await app.run_batch(push("billing.charge", *range(8)), limiter=asyncio.Semaphore(2))

    # Then
    assert [r.status for r in response.results] == [Outcome.SUCCESS] * 8
    assert peak == 2
