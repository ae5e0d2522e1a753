"""Active health probes: every endpoint with a health URL is asked how it is, regularly.

Each round GETs every probed endpoint's health URL at once, each with its own timeout, and
tells the pool the result (``EndpointPool.probed``: thresholds in ``delivery/health.py``). A
worker answers 200 while it serves and 503 while it drains, so a draining worker stops getting
pushes even before its deregistration arrives. Probes are light (one small GET per endpoint per
interval) and never block pushes.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from conveyor.clock import Clock, sleep_unless_stopped
from conveyor.delivery.endpoints import EndpointPool, EndpointState

log = logging.getLogger("conveyor.delivery.prober")


class Prober:
    """Probes the endpoints of a pool.

    Args:
        pool: the endpoints to probe, and where results go.
        clock: times the rounds.
    """

    def __init__(self, pool: EndpointPool, clock: Clock) -> None:
        self._pool = pool
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Probe every ``probe_interval`` seconds until ``stop`` is set."""
        policy = self._pool.detector.policy
        timeout = aiohttp.ClientTimeout(total=policy.probe_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                await self.round(session)
                await sleep_unless_stopped(self._clock, policy.probe_interval, stop)

    async def round(self, session: aiohttp.ClientSession) -> None:
        """Probe every endpoint that has a health URL, once, at the same time."""
        targets = [e for e in self._pool.all_endpoints() if e.health_url]
        if targets:
            await asyncio.gather(*(self._probe(session, e) for e in targets))

    async def _probe(self, session: aiohttp.ClientSession, endpoint: EndpointState) -> None:
        try:
            async with session.get(endpoint.health_url) as response:
                await response.read()
                ok, error = 200 <= response.status < 300, f"HTTP {response.status}"
        except TimeoutError:
            ok, error = False, "no answer in time"
        except aiohttp.ClientError as e:
            ok, error = False, f"cannot connect: {e}"
        was = endpoint.probe_healthy
        self._pool.probed(endpoint, ok, "" if ok else error)
        if endpoint.probe_healthy != was:
            log.info(
                "endpoint %s/%s is %s by its health probes%s",
                endpoint.lambda_name,
                endpoint.id,
                "healthy" if endpoint.probe_healthy else "unhealthy",
                "" if ok else f" ({error})",
            )
