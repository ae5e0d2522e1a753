"""Python clients of Conveyor's HTTP API.

:class:`AsyncClient` is the client; :class:`Client` is its blocking form for synchronous
code. Both raise the exceptions of :mod:`conveyor.errors`; an
:class:`~conveyor.errors.InvalidRequest` they raise also carries ``errors``, every problem the
server listed (a batch's bad events with their ``index``)::

    async with AsyncClient("http://127.0.0.1:8400") as conveyor:
        await conveyor.create_topic("orders", partitions=8)
        await conveyor.publish("orders", {"id": 42}, key="customer-7", delay=30)
"""

from __future__ import annotations

from conveyor._client.async_client import DEFAULT_BASE_URL, AsyncClient
from conveyor._client.batching import AsyncPublisher, BatchSettings
from conveyor._client.sync_client import Client
from conveyor._client.threaded import Publisher

__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncClient",
    "AsyncPublisher",
    "BatchSettings",
    "Client",
    "Publisher",
]
