"""A worker's conversation with the platform: register, renew, deregister.

At start the worker PUTs each subscription (creating its topic when the platform answers 404)
and then its endpoint; both are idempotent, so a restarted worker or platform simply repeats
them. The
endpoint is renewed every ``ttl / 3`` seconds and deleted, best effort, when the worker drains.
"""

from __future__ import annotations

import logging

import aiohttp
import msgspec

from conveyor.clock import Clock
from conveyor.errors import RegistrationError
from conveyor.model import Subscription
from conveyor.wire.schemas import EndpointRegistration, ErrorResponse

logger = logging.getLogger("conveyor.execution.worker")

JSON_HEADERS = {"Content-Type": "application/json"}
REQUEST_TIMEOUT = 10.0
"""Seconds one call to the platform may take."""
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0
"""Seconds between attempts while the platform is unreachable at start (doubling)."""
HEARTBEAT_RETRY = 1.0
"""Seconds before a failed renewal is tried again (well inside the TTL)."""

_encoder = msgspec.json.Encoder()


class Registrar:
    """Registers one worker endpoint (and its lambda's subscriptions) with the platform.

    Args:
        session: the HTTP session to use (owned by the caller).
        server: the platform's base URL, or several separated by commas (the nodes of a
            cluster): a call that cannot reach one node goes to the next.
        lambda_name: the lambda served.
        endpoint_id: this worker's endpoint id.
        registration: the endpoint's URL, TTL and concurrency.
        clock: times backoff and renewals.
        connect_timeout: seconds :meth:`register` keeps trying an unreachable platform.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        *,
        lambda_name: str,
        endpoint_id: str,
        registration: EndpointRegistration,
        clock: Clock,
        connect_timeout: float,
    ) -> None:
        self._session = session
        self._servers = [u.strip().rstrip("/") for u in server.split(",") if u.strip()]
        if not self._servers:
            raise ValueError("server must name at least one platform URL")
        self._current = 0
        self._registration = registration
        self._endpoint_path = f"/v1/lambdas/{lambda_name}/endpoints/{endpoint_id}"
        self._clock = clock
        self._connect_timeout = connect_timeout

    async def register(self, subscriptions: list[Subscription]) -> None:
        """Create or update every subscription, then register the endpoint.

        Raises:
            RegistrationError: the platform refused a call (4xx) or stayed unreachable (or
                answered 5xx) for ``connect_timeout`` seconds.
        """
        deadline = self._clock.now() + self._connect_timeout
        for subscription in subscriptions:
            await self._put_subscription(subscription, deadline)
        status, body = await self._call("PUT", self._endpoint_path, self._registration, deadline)
        _expect_success(status, body, f"endpoint {self._registration.url}")

    async def renew_forever(self) -> None:
        """Re-register the endpoint every ``ttl / 3`` seconds until cancelled.

        A failure is logged and retried sooner; it never ends the loop.
        """
        interval = self._registration.ttl_seconds / 3
        wait, failing = interval, False
        while True:
            await self._clock.sleep(wait)
            try:
                status, body = await self._call("PUT", self._endpoint_path, self._registration)
                _expect_success(status, body, "endpoint renewal")
            except RegistrationError as e:
                if not failing:
                    logger.warning("could not renew the endpoint registration: %s", e)
                wait, failing = min(HEARTBEAT_RETRY, interval), True
                continue
            if failing:
                logger.info("endpoint registration renewed again")
            wait, failing = interval, False

    async def deregister(self) -> None:
        """Delete the endpoint, best effort: a failure is logged (the TTL expires it anyway)."""
        try:
            status, body = await self._call("DELETE", self._endpoint_path, None)
            if status != 404:
                _expect_success(status, body, "endpoint deregistration")
        except RegistrationError as e:
            logger.warning("could not deregister the endpoint (it expires by TTL): %s", e)

    async def _put_subscription(self, subscription: Subscription, deadline: float) -> None:
        path = f"/v1/subscriptions/{subscription.name}"
        status, body = await self._call("PUT", path, subscription, deadline)
        if status == 404:
            # The topic (or dead-letter topic) does not exist yet: create it with defaults so
            # that `conveyor worker` starts against a fresh platform.
            for topic in (subscription.topic, subscription.dead_letter_topic):
                if topic is not None:
                    await self._create_topic(topic, deadline)
            status, body = await self._call("PUT", path, subscription, deadline)
        _expect_success(status, body, f"subscription {subscription.name!r}")

    async def _create_topic(self, topic: str, deadline: float) -> None:
        # POST creates only: 201 when created, 200 when an identical topic exists, 409 when
        # one exists with other settings. (PUT would reset an existing topic to defaults.)
        status, body = await self._call("POST", "/v1/topics", {"name": topic}, deadline)
        if status in (200, 409):
            return
        _expect_success(status, body, f"topic {topic!r}")
        logger.info("created topic %r with default settings (it did not exist)", topic)

    async def _call(
        self, method: str, path: str, payload: object, deadline: float | None = None
    ) -> tuple[int, bytes]:
        # Retries a connection failure or a 5xx until `deadline` (one round of the servers
        # without one), moving to the next server after each failure.
        data = None if payload is None else _encoder.encode(payload)
        delay = FIRST_BACKOFF
        tried = 0
        while True:
            server = self._servers[self._current]
            url = server + path
            try:
                async with self._session.request(
                    method, url, data=data, headers=JSON_HEADERS
                ) as response:
                    answer = await response.read()
                if response.status < 500:
                    return response.status, answer
                problem = f"HTTP {response.status} from {method} {path}"
            except (aiohttp.ClientError, TimeoutError) as e:
                problem = f"{type(e).__name__}: {e}"
            self._current = (self._current + 1) % len(self._servers)
            tried += 1
            if tried % len(self._servers):
                continue  # try the next node at once
            remaining = 0.0 if deadline is None else deadline - self._clock.now()
            if remaining <= 0:
                raise RegistrationError(
                    f"the platform at {', '.join(self._servers)} is unreachable ({problem})"
                    + ("" if deadline is None else f" after {self._connect_timeout:g}s")
                )
            logger.info("platform not ready (%s); retrying in %.1fs", problem, delay)
            # The last attempt is made at the deadline itself.
            await self._clock.sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_BACKOFF)


def _expect_success(status: int, body: bytes, what: str) -> None:
    if 200 <= status < 300:
        return
    try:
        error = msgspec.json.decode(body, type=ErrorResponse).error
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()[:500] or "no details"
        raise RegistrationError(
            f"the platform refused {what} (HTTP {status}): {text}", http_status=status
        ) from None
    blame = "".join(
        f", {label} {value!r}"
        for label, value in (("field", error.field), ("rule", error.rule))
        if value is not None
    )
    raise RegistrationError(
        f"the platform refused {what} (HTTP {status} {error.code}{blame}): {error.message}",
        http_status=status,
        error_code=error.code,
        field=error.field,
        rule=error.rule,
    )
