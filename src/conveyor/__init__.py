"""Conveyor: asynchronous events and tasks for Python teams.

Publish with :class:`AsyncClient` (or :class:`Client`), handle with a :class:`Lambda`::

    app = Lambda("billing")

    @app.handler("orders")
    async def charge(order: Order) -> None: ...
"""

from __future__ import annotations

__version__ = "0.1.0"

from conveyor.client import AsyncClient, Client
from conveyor.errors import (
    Conflict,
    ConveyorError,
    DeliveryError,
    InvalidRequest,
    NotFound,
    RateLimited,
    SchemaViolation,
    StoreUnavailable,
    SubscriberRejected,
    SubscriberTimeout,
)
from conveyor.execution import EventContext, Fatal, Lambda, Retry, Worker
from conveyor.model import DeliveryState, RetryPolicy, Subscription, Topic

__all__ = [
    "AsyncClient",
    "Client",
    "Conflict",
    "ConveyorError",
    "DeliveryError",
    "DeliveryState",
    "EventContext",
    "Fatal",
    "InvalidRequest",
    "Lambda",
    "NotFound",
    "RateLimited",
    "Retry",
    "RetryPolicy",
    "SchemaViolation",
    "StoreUnavailable",
    "SubscriberRejected",
    "SubscriberTimeout",
    "Subscription",
    "Topic",
    "Worker",
    "__version__",
]
