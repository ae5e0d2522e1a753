"""The option sets a caller gives, defined once for every side that takes them.

A subscription's options, an endpoint's registration options and a publish's options are
each one ``TypedDict`` here: the clients take them as ``**options: Unpack[...]`` (so the
blocking client, which wraps the async one, takes them too), :meth:`Lambda.handler
<conveyor.execution.app.Lambda.handler>` takes the subscription's, and the CLI and the HTTP
API reach the same definitions through the Structs the options fill.

Invariant: no default is written here or at a caller. A subscription's defaults are those
of :class:`~conveyor.model.Subscription` (the Struct the API decodes), readable as
:data:`SUBSCRIPTION_DEFAULTS`; an endpoint's are those of the wire's registration Struct;
a publish's are those of the wire's publish request. An option left out is never sent as
a default of the caller's own.

This module imports only :mod:`conveyor.model`: every layer may import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypedDict, Unpack

from conveyor.model import Control, DeliveryFormat, Priority, RetryPolicy, Subscription

__all__ = [
    "SUBSCRIPTION_DEFAULTS",
    "EndpointOptions",
    "HandlerOptions",
    "PublishOptions",
    "SubscriptionOptions",
    "build_subscription",
]

# A subscription with every option at its default: the one place the defaults are read from
# (the CLI's option defaults, say). Its name, topic and lambda mean nothing.
SUBSCRIPTION_DEFAULTS: Final = Subscription(name="default", topic="default", lambda_name="default")


class HandlerOptions(TypedDict, total=False):
    """A subscription's options that a lambda's handler sets (see :class:`SubscriptionOptions`;
    the handler gives the delivery format by its own ``encoding``, ``cloudevents`` and
    ``schema_version``)."""

    ordered: bool
    max_concurrency: int
    min_concurrency: int
    adaptive: bool
    max_batch: int
    max_batch_bytes: int
    max_wait: float
    push_timeout: float
    retry: RetryPolicy | None
    dead_letter_topic: str | None
    filter: Mapping[str, object] | None  # the wire's name
    locality: Sequence[str]


class SubscriptionOptions(HandlerOptions, total=False):
    """The options of a subscription besides its name, topic and lambda; each may be left
    out, and takes then the default of :class:`~conveyor.model.Subscription`
    (:data:`SUBSCRIPTION_DEFAULTS`).

    Keys:
        ordered: deliver the events of one key one at a time, in log order (``False``).
        max_concurrency: events in flight at once, at most (512).
        min_concurrency: the least the adaptive limit falls to (1).
        adaptive: move the limit with the lambda's latency, errors and throttles
            (``False``: fixed at ``max_concurrency``).
        max_batch: events in one push (256).
        max_batch_bytes: payload bytes in one push, at most (4 MiB).
        max_wait: seconds a push may wait to fill up to ``max_batch`` (0).
        push_timeout: seconds to wait for a push's answer (30).
        retry: the retry policy; ``RetryPolicy()`` when ``None``.
        dead_letter_topic: a topic that receives the events that went dead.
        control: the initial run-time gates (paused, rate limit); kept by later
            replacements of the subscription.
        format: what the lambda receives (encoding, CloudEvents, reader schema version);
            plain JSON as stored when ``None``.
        filter: an EventBridge-style pattern; events that do not match are never pushed
            (docs/flow-control.md).
        locality: the places whose endpoints it prefers, most preferred first
            (``cloud/region/zone`` or a prefix); empty: the dispatching node's own.
    """

    control: Control | None
    format: DeliveryFormat | None  # the wire's name


def build_subscription(
    name: str, topic: str, lambda_name: str, **options: Unpack[SubscriptionOptions]
) -> Subscription:
    """The subscription the options give; what is left out (or ``None``) takes its default.

    Raises:
        TypeError: an option is unknown.
        ValueError: ``min_concurrency`` is above ``max_concurrency``.
    """
    values: dict[str, Any] = dict(options)
    for key in ("retry", "control", "format", "filter"):
        if values.get(key, ...) is None:
            del values[key]
    if "filter" in values:
        values["filter"] = dict(options["filter"] or {})
    if "locality" in values:
        values["locality"] = list(options["locality"])
    return Subscription(name=name, topic=topic, lambda_name=lambda_name, **values)


class EndpointOptions(TypedDict, total=False):
    """The options of an endpoint's registration besides its URL; each may be left out, and
    takes then the wire's default (see ``EndpointRegistration``).

    Keys:
        ttl_seconds: the endpoint expires when not renewed within this time (15).
        concurrency: events the worker runs at once, a hint for balancing (64).
        locality: where it runs, ``cloud/region/zone`` (or a prefix; empty: unknown).
        version: the version of the lambda it runs (a new one starts a release).
        static: added by hand: it never expires and needs no heartbeat (``False``).
        health_url: where the platform's active probes GET its health (empty: none).
    """

    ttl_seconds: float
    concurrency: int
    locality: str
    version: str
    static: bool
    health_url: str


class PublishOptions(TypedDict, total=False):
    """The keyword options of one publish besides the payload (for
    ``**options: Unpack[PublishOptions]`` signatures).

    Keys:
        key: ordering key; the events of one key share a partition and keep their order.
        attributes: string metadata (at most 64 entries).
        delay: seconds (or a timedelta) from now before delivery.
        deliver_at: the earliest delivery time, timezone-aware.
        idempotency_key: a retried publish with the same key returns the first result.
        priority: ``high``, ``normal`` (the default) or ``low``: the lane it travels in.
        schema_version: for a topic bound to a registry subject, the version the payload
            is written with.
    """

    key: str | None
    attributes: Mapping[str, str] | None
    delay: float | timedelta | None
    deliver_at: datetime | None
    idempotency_key: str | None
    priority: Priority | str
    schema_version: int | None
