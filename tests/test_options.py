"""One definition per option set (conveyor.options) and a blocking client with no restated
bodies: what keeps the two clients, the Lambda decorator and the CLI from drifting apart."""

from __future__ import annotations

import inspect

import pytest

from conveyor.cli.common import duration_text, parse_duration
from conveyor.client import AsyncClient, Client
from conveyor.execution.app import Lambda
from conveyor.model import Control, DeliveryFormat, RetryPolicy, Subscription
from conveyor.options import SUBSCRIPTION_DEFAULTS, build_subscription

# Async-only: a request already built is the batching publisher's business.
_ASYNC_ONLY = {"aclose", "publish_request", "publisher"}


def test_every_async_method_has_a_blocking_twin_with_its_signature_and_doc() -> None:
    names = [
        name
        for name, value in inspect.getmembers(AsyncClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in _ASYNC_ONLY
    ]
    assert len(names) > 30
    for name in names:
        blocking, original = getattr(Client, name), getattr(AsyncClient, name)
        assert inspect.signature(blocking) == inspect.signature(original), name
        assert blocking.__doc__ == original.__doc__, name
        assert not inspect.iscoroutinefunction(blocking), name


def test_build_subscription_defaults_are_the_models() -> None:
    built = build_subscription(
        "s", "t", "l", retry=None, control=None, format=None, filter=None, locality=()
    )
    assert built == Subscription(name="s", topic="t", lambda_name="l")
    assert SUBSCRIPTION_DEFAULTS.max_batch_bytes == built.max_batch_bytes


def test_build_subscription_takes_every_option() -> None:
    built = build_subscription(
        "s",
        "t",
        "l",
        ordered=True,
        max_concurrency=8,
        min_concurrency=2,
        adaptive=True,
        max_batch=3,
        max_batch_bytes=2048,
        max_wait=0.5,
        push_timeout=5.0,
        retry=RetryPolicy(max_attempts=2),
        dead_letter_topic="dead",
        control=Control(paused=True),
        format=DeliveryFormat(cloudevents=True),
        filter={"key": ["a"]},
        locality=("aws/us-east-1",),
    )
    assert (built.ordered, built.max_concurrency, built.min_concurrency) == (True, 8, 2)
    assert (built.max_batch, built.max_batch_bytes, built.max_wait) == (3, 2048, 0.5)
    assert built.retry.max_attempts == 2
    assert built.control.paused
    assert built.format.cloudevents
    assert built.filter == {"key": ["a"]}
    assert built.locality == ["aws/us-east-1"]
    assert built.dead_letter_topic == "dead"


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        build_subscription("s", "t", "l", bogus=1)  # type: ignore[call-arg]


def test_a_handler_gets_the_same_defaults() -> None:
    app = Lambda("billing")

    @app.handler("orders")
    def handle(payload: dict[str, object]) -> None:
        del payload

    (sub,) = app.subscriptions()
    assert sub == Subscription(name="billing.handle", topic="orders", lambda_name="billing")


@pytest.mark.parametrize("seconds", [0.0, 0.25, 1.0, 1.5, 30.0, 90.0, 300.0, 3600.0, 86400.0])
def test_duration_text_reads_back(seconds: float) -> None:
    assert parse_duration(duration_text(seconds)) == seconds


def test_duration_text_is_short() -> None:
    assert [duration_text(s) for s in (0.0, 1.0, 30.0, 300.0)] == ["0s", "1s", "30s", "5m"]
