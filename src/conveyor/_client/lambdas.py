"""The lambda methods of :class:`~conveyor.AsyncClient`: endpoints registered, renewed, removed,
listed."""

from __future__ import annotations

from typing import Unpack

import msgspec

from conveyor._client.checks import checked
from conveyor._client.http import HttpSession
from conveyor.options import EndpointOptions
from conveyor.wire.schemas import (
    EndpointInfo,
    EndpointRegistration,
    LambdaInfo,
)

__all__ = ["LambdaMethods"]

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_ENDPOINT = msgspec.json.Decoder(EndpointInfo)
_LAMBDAS = msgspec.json.Decoder(list[LambdaInfo])


class LambdaMethods:
    """Lambdas and their endpoints: register (a heartbeat), deregister, list.

    Mixed into :class:`AsyncClient`.
    """

    _http: HttpSession

    async def register_endpoint(
        self,
        lambda_name: str,
        endpoint_id: str,
        url: str,
        **options: Unpack[EndpointOptions],
    ) -> EndpointInfo:
        """Register a worker's endpoint for a lambda, or renew it (a heartbeat); or add a
        static endpoint by URL (``static=True``: it never expires).

        Args:
            lambda_name: the lambda it serves.
            endpoint_id: the endpoint's id, stable across renewals.
            url: where pushes are POSTed.
            ttl_seconds: the endpoint expires when not renewed within this time.
            concurrency: events the worker runs at once (a hint for balancing).
            locality: where it runs, ``cloud/region/zone`` (or a prefix).
            version: the version of the lambda it runs (a new one starts a release).
            static: added by hand: it never expires and needs no heartbeat.
            health_url: where the platform's active probes GET its health.

        Raises:
            InvalidRequest: a value breaks a rule.

        Returns:
            The endpoint, with its expiry and health.
        """
        registration = EndpointRegistration(url=url, **options)
        answer = await self._http.request(
            "PUT", ["lambdas", lambda_name, "endpoints", endpoint_id], checked(registration)
        )
        return self._http.decode(answer, _ENDPOINT)

    async def deregister_endpoint(self, lambda_name: str, endpoint_id: str) -> None:
        """Remove a worker's endpoint; no more pushes are sent to it."""
        await self._http.request("DELETE", ["lambdas", lambda_name, "endpoints", endpoint_id])

    async def list_lambdas(self) -> list[LambdaInfo]:
        """List every lambda with its live endpoints.

        Returns:
            The lambdas, in the server's order.
        """
        return self._http.decode(await self._http.request("GET", ["lambdas"]), _LAMBDAS)
