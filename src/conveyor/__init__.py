"""Conveyor: asynchronous events and tasks for Python teams.

Publish with :class:`AsyncClient` (or :class:`Client`), handle with a :class:`Lambda`::

    app = Lambda("billing")

    @app.handler("orders")
    async def charge(order: Order) -> None: ...
"""

from __future__ import annotations

__version__ = "0.1.0"

from conveyor.client import AsyncClient, AsyncPublisher, BatchSettings, Client, Publisher
from conveyor.delivery.health import HealthPolicy
from conveyor.errors import (
    Conflict,
    ConveyorError,
    DeliveryError,
    IncompatibleSchema,
    InvalidRequest,
    NotFound,
    PublisherFull,
    RateLimited,
    SchemaViolation,
    StoreUnavailable,
    SubscriberRejected,
    SubscriberTimeout,
)
from conveyor.execution import EventContext, Fatal, Lambda, Retry, Worker
from conveyor.model import (
    Control,
    DeliveryFormat,
    DeliveryState,
    Priority,
    RateLimit,
    RetryPolicy,
    SchemaSettings,
    SchemaType,
    Subscription,
    Topic,
)
from conveyor.wire.registry import Compatibility
from conveyor.wire.releases import ReleasePolicy

__all__ = [
    "AsyncClient",
    "AsyncPublisher",
    "BatchSettings",
    "Client",
    "Compatibility",
    "Conflict",
    "Control",
    "ConveyorError",
    "DeliveryError",
    "DeliveryFormat",
    "DeliveryState",
    "EventContext",
    "Fatal",
    "HealthPolicy",
    "IncompatibleSchema",
    "InvalidRequest",
    "Lambda",
    "NotFound",
    "Priority",
    "Publisher",
    "PublisherFull",
    "RateLimit",
    "RateLimited",
    "ReleasePolicy",
    "Retry",
    "RetryPolicy",
    "SchemaSettings",
    "SchemaType",
    "SchemaViolation",
    "StoreUnavailable",
    "SubscriberRejected",
    "SubscriberTimeout",
    "Subscription",
    "Topic",
    "Worker",
    "__version__",
]
