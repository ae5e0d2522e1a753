"""The subscription methods of :class:`~conveyor.AsyncClient`: create, replace, read, list,
delete, and the run-time gates (pause, resume, purge, rate limit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from conveyor._client.checks import checked
from conveyor._client.http import HttpSession
from conveyor.api.schemas import (
    SubscriptionInfo,
)
from conveyor.model import (
    Control,
    DeliveryFormat,
    RateLimit,
    RetryPolicy,
    Subscription,
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
        *,
        ordered: bool = False,
        max_concurrency: int = 512,
        min_concurrency: int = 1,
        adaptive: bool = False,
        max_batch: int = 256,
        max_batch_bytes: int = 4 * 1024 * 1024,
        max_wait: float = 0.0,
        push_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        dead_letter_topic: str | None = None,
        control: Control | None = None,
        format: DeliveryFormat | None = None,  # the wire's name
        filter: Mapping[str, object] | None = None,  # the wire's name
        locality: Sequence[str] = (),
    ) -> SubscriptionInfo:
        """Subscribe a lambda to a topic; see :class:`~conveyor.model.Subscription`.

        Args:
            name: the subscription's name.
            topic: the topic it reads.
            lambda_name: the lambda whose endpoints receive the pushes.
            ordered: deliver the events of one key one at a time, in log order.
            max_concurrency: events in flight at once, at most.
            min_concurrency: the least the adaptive limit falls to.
            adaptive: move the limit with the lambda's latency, errors and throttles.
            max_batch: events in one push.
            max_batch_bytes: payload bytes in one push, at most.
            max_wait: seconds a push may wait to fill up to ``max_batch``.
            push_timeout: seconds to wait for a push's answer.
            retry: the retry policy; ``RetryPolicy()`` when ``None``.
            dead_letter_topic: a topic that receives the events that went dead.
            control: the initial run-time gates (paused, rate limit); kept by later
                replacements of the subscription.
            format: what the lambda receives (encoding, CloudEvents, reader schema
                version); plain JSON as stored when ``None``.
            filter: an EventBridge-style pattern; events that do not match are never
                pushed (docs/flow-control.md).
            locality: the places whose endpoints it prefers, most preferred first
                (``cloud/region/zone`` or a prefix); empty: the dispatching node's own.

        Raises:
            NotFound: the topic (or dead-letter topic) does not exist.
            Conflict: the subscription exists with another definition.
            InvalidRequest: a value breaks a rule.

        Returns:
            The subscription with its live figures.
        """
        subscription = Subscription(
            name=name,
            topic=topic,
            lambda_name=lambda_name,
            ordered=ordered,
            max_concurrency=max_concurrency,
            min_concurrency=min_concurrency,
            adaptive=adaptive,
            max_batch=max_batch,
            max_batch_bytes=max_batch_bytes,
            max_wait=max_wait,
            push_timeout=push_timeout,
            retry=retry if retry is not None else RetryPolicy(),
            dead_letter_topic=dead_letter_topic,
            control=control if control is not None else Control(),
            format=format if format is not None else DeliveryFormat(),
            filter=None if filter is None else dict(filter),
            locality=list(locality),
        )
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
