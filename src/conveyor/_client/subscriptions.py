"""The subscription methods of :class:`~conveyor.AsyncClient`: create, replace, read, list,
delete, and the run-time gates (pause, resume, purge, rate limit)."""

from __future__ import annotations

from typing import Unpack

import msgspec

from conveyor._client.checks import checked
from conveyor._client.http import HttpSession
from conveyor.model import (
    RateLimit,
    Subscription,
)
from conveyor.options import SubscriptionOptions, build_subscription
from conveyor.wire.schemas import (
    SubscriptionInfo,
)

__all__ = ["SubscriptionMethods"]

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_SUBSCRIPTION = msgspec.json.Decoder(SubscriptionInfo)
_SUBSCRIPTIONS = msgspec.json.Decoder(list[SubscriptionInfo])


class SubscriptionMethods:
    """Subscriptions and their run-time gates (pause, resume, purge, rate limit).

    Mixed into :class:`AsyncClient`.
    """

    _http: HttpSession

    async def create_subscription(
        self,
        name: str,
        topic: str,
        lambda_name: str,
        **options: Unpack[SubscriptionOptions],
    ) -> SubscriptionInfo:
        """Subscribe a lambda to a topic; see :class:`~conveyor.model.Subscription`.

        Args:
            name: the subscription's name.
            topic: the topic it reads.
            lambda_name: the lambda whose endpoints receive the pushes.
            options: the subscription's options, each optional (its default when left out
                or ``None``): see :class:`~conveyor.options.SubscriptionOptions`.

        Raises:
            NotFound: the topic (or dead-letter topic) does not exist.
            Conflict: the subscription exists with another definition.
            InvalidRequest: a value breaks a rule.

        Returns:
            The subscription with its live figures.
        """
        subscription = build_subscription(name, topic, lambda_name, **options)
        answer = await self._http.request("POST", ["subscriptions"], checked(subscription))
        return self._http.decode(answer, _SUBSCRIPTION)

    async def put_subscription(self, sub: Subscription) -> SubscriptionInfo:
        """Create a subscription or replace its definition.

        Raises:
            NotFound: its topic does not exist.
            InvalidRequest: a value breaks a rule, or the change is not allowed.

        Returns:
            The subscription with its live figures.
        """
        answer = await self._http.request("PUT", ["subscriptions", sub.name], checked(sub))
        return self._http.decode(answer, _SUBSCRIPTION)

    async def get_subscription(self, name: str) -> SubscriptionInfo:
        """Read a subscription and its live figures.

        Raises:
            NotFound: there is no such subscription.

        Returns:
            The subscription with its live figures.
        """
        answer = await self._http.request("GET", ["subscriptions", name])
        return self._http.decode(answer, _SUBSCRIPTION)

    async def list_subscriptions(self) -> list[SubscriptionInfo]:
        """List every subscription with its live figures.

        Returns:
            The subscriptions, in the server's order.
        """
        answer = await self._http.request("GET", ["subscriptions"])
        return self._http.decode(answer, _SUBSCRIPTIONS)

    async def delete_subscription(self, name: str) -> None:
        """Delete a subscription; its pending deliveries stop.

        Raises:
            NotFound: there is no such subscription.
        """
        await self._http.request("DELETE", ["subscriptions", name])

    async def pause(self, name: str) -> SubscriptionInfo:
        """Pause a subscription's pushes; its backlog keeps growing and stays visible.

        Raises:
            NotFound: there is no such subscription.
        """
        return await self._control(name, "POST", "pause")

    async def resume(self, name: str) -> SubscriptionInfo:
        """Resume a paused subscription.

        Raises:
            NotFound: there is no such subscription.
        """
        return await self._control(name, "POST", "resume")

    async def purge(self, name: str) -> SubscriptionInfo:
        """Drain to drop: every event published until now is dropped unpushed.

        Raises:
            NotFound: there is no such subscription.

        Returns:
            The subscription with its live figures, and in ``purged`` how many unfinished
            events (backlog and retrying) the purge drops.
        """
        return await self._control(name, "POST", "purge")

    async def set_rate_limit(
        self, name: str, per_second: float, *, burst: int = 1
    ) -> SubscriptionInfo:
        """Limit a subscription to ``per_second`` events pushed, ``burst`` at once.

        Raises:
            NotFound: there is no such subscription.
            InvalidRequest: a value breaks a rule.
        """
        limit = checked(RateLimit(per_second=per_second, burst=burst))
        return await self._control(name, "PUT", "rate-limit", limit)

    async def clear_rate_limit(self, name: str) -> SubscriptionInfo:
        """Remove a subscription's rate limit.

        Raises:
            NotFound: there is no such subscription.
        """
        return await self._control(name, "DELETE", "rate-limit")

    async def _control(
        self, name: str, method: str, action: str, body: msgspec.Struct | None = None
    ) -> SubscriptionInfo:
        answer = await self._http.request(method, ["subscriptions", name, action], body)
        return self._http.decode(answer, _SUBSCRIPTION)
