"""A Conveyor node: the five layers wired together over one store.

``conveyor serve`` runs one :class:`Node` behind the HTTP API. Tests run nodes in process
with a :class:`~conveyor.clock.FakeClock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket

from conveyor._resource import AsyncResource
from conveyor.catalog import Catalog
from conveyor.clock import Clock, SystemClock, to_ms
from conveyor.cluster import DISPATCH, LeaseManager, parse_roles
from conveyor.delivery.endpoints import EndpointPool
from conveyor.delivery.locality import preferences_of
from conveyor.delivery.prober import Prober
from conveyor.delivery.push import Pusher
from conveyor.delivery.releases import Releases
from conveyor.delivery.transcode import Transcoder
from conveyor.errors import ConveyorError
from conveyor.flow.dead_letters import DeadLetters
from conveyor.flow.dispatcher import Dispatcher
from conveyor.flow.retry import Jitter
from conveyor.flow.status import StatusService
from conveyor.frontend.publish import PublishService
from conveyor.frontend.registry.registry import SchemaRegistry
from conveyor.metrics import Metrics
from conveyor.node_health import NodeHealth
from conveyor.scheduler.timers import TimerService
from conveyor.settings import NodeSettings
from conveyor.store.base import Endpoint, Store
from conveyor.store.sqlite import SqliteStore
from conveyor.wire.signing import Signer

log = logging.getLogger("conveyor.node")

SWEEP_INTERVAL = 60.0  # seconds between housekeeping passes
ENDPOINT_FORGET_MS = 3_600_000  # expired endpoints are dropped from the store after an hour


def default_node_id(port: int) -> str:
    """``hostname:port``: stable across restarts, so a restarted node reclaims its leases at
    once; a random suffix when the port is chosen by the system."""
    suffix = str(port) if port else secrets.token_hex(4)
    return f"{socket.gethostname()}:{suffix}"


async def _ignore(topic: str) -> None:
    del topic


def open_store(url: str) -> Store:
    """The store named by a URL: ``postgresql://…``, ``sqlite:///path``, or a plain path to a
    SQLite file."""
    if url.startswith(("postgres://", "postgresql://")):
        from conveyor.store.postgres import PostgresStore

        return PostgresStore(url)
    return SqliteStore(url)


class Node(AsyncResource):
    """Every layer of Conveyor over one store.

    Args:
        settings: the node's settings.
        clock: the source of time (a FakeClock in tests).
        store: the store to use instead of the one named in the settings.
        jitter: draws retry waits (tests pin it).
    """

    def __init__(
        self,
        settings: NodeSettings,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        jitter: Jitter = random.uniform,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store = store or open_store(settings.store)
        self.metrics = Metrics()
        self.catalog = Catalog(self.store)
        self.pool = EndpointPool(
            self.clock, health=settings.health, preference=preferences_of(settings.locality)
        )
        # Releases route pushes between a lambda's versions (canaries) and decide them.
        self.releases = Releases(
            self.store,
            self.clock,
            self.metrics,
            live_versions=lambda name: {e.version for e in self.pool.endpoints(name)},
        )
        self.pool.set_router(self.releases)
        self.registry = SchemaRegistry(self.store, self.clock)
        self.pusher = Pusher(
            transcoder=Transcoder(self.registry, self.catalog),
            signer=Signer(settings.signing_secrets) if settings.signing_secrets else None,
            clock=self.clock,
        )
        self.dispatcher = Dispatcher(
            store=self.store,
            pool=self.pool,
            pusher=self.pusher,
            clock=self.clock,
            metrics=self.metrics,
            topic_of=self.catalog.find_topic,
            flush_interval=settings.flush_interval,
            jitter=jitter,
            redrive_interval=settings.sync_interval,
        )
        self.timers = TimerService(
            self.store,
            self.clock,
            self.metrics,
            self.dispatcher.on_append,
            window=settings.timer_window_seconds,
            lead=settings.timer_lead_seconds,
            refill=DISPATCH in parse_roles(settings.roles),
        )
        self.publisher = PublishService(
            self.store,
            self.catalog,
            self.clock,
            self.metrics,
            on_append=self.dispatcher.on_append,
            on_timers=self.timers.add,
            dedup_window=settings.dedup_window_seconds,
            registry=self.registry,
        )
        self.status = StatusService(
            self.store, self.catalog, self.dispatcher, self.clock, pool=self.pool
        )
        self.health = NodeHealth(
            self.store,
            self.status,
            self.metrics,
            self.clock,
            overdue_after=settings.health_overdue_seconds,
        )
        self.dead_letters = DeadLetters(
            self.store, self.catalog, self.clock, on_redrive=self.dispatcher.redrive_requested
        )
        self.catalog.listen(self.dispatcher.put, self.dispatcher.remove)
        self._prober = Prober(self.pool, self.clock)
        self.roles = parse_roles(settings.roles)
        self.node_id = settings.node_id or default_node_id(settings.port)
        self.leases: LeaseManager | None = None
        if settings.clustered:
            self.leases = LeaseManager(
                self.store,
                self.clock,
                node_id=self.node_id,
                url=f"http://{settings.host}:{settings.port}",
                roles=self.roles,
                ttl=settings.lease_ttl,
                on_change=self.dispatcher.set_ownership,
            )
            # A new topic's partitions are leased at once, not at the next round.
            self.catalog.listen_topics(lambda _: self.leases.kick() if self.leases else None)
        self._main: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._closed = False

    async def _enter(self) -> None:
        await self.start()

    async def start(self) -> None:
        """Open the store, load the catalog and start every layer."""
        await self.store.open()
        await self.catalog.load()
        for e in await self.store.list_endpoints():
            self.pool.restore(e)
        # After the endpoints: a versioned endpoint's release is stored before it, so every
        # endpoint read has its release read too.
        await self.releases.load()
        if self.leases is not None:
            # The first round takes what this node may hold before any runner starts.
            await self.leases.round()
            self.dispatcher.use_leases(
                owned=self.leases.owned,
                lease_valid=self.leases.holds,
                on_lease_lost=self.leases.lost,
                heads_interval=self.settings.heads_interval,
                retire_timeout=self.settings.lease_ttl / 4,
            )
        elif DISPATCH not in self.roles:
            self.dispatcher.use_leases(
                owned={}, lease_valid=lambda: False, on_lease_lost=_ignore, heads_interval=1.0
            )
        started = asyncio.Event()
        self._main = asyncio.create_task(self._run(started), name="conveyor-node")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._main, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            await self._main  # raises the failure that stopped the start

    async def _run(self, started: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.dispatcher.run(self.catalog.subscriptions(), started))
            # Every node fires the timers its own publishes hold (a frontend-only node's
            # included); dispatch nodes also load the rest from the store.
            tg.create_task(self.timers.run())
            tg.create_task(self._sweep_loop())
            tg.create_task(self.releases.run(self._stop))
            if DISPATCH in self.roles and self.settings.health.probe_interval > 0:
                tg.create_task(self._prober.run(self._stop))
            if self.leases is not None:
                tg.create_task(self.leases.run())
                tg.create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        """In a cluster: learn topics, subscriptions and endpoints changed through others."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.sync_interval)
            if self._stop.is_set():
                return
            try:
                await self.catalog.refresh()
                # Endpoints first, then releases: an endpoint's release is stored before it.
                endpoints = await self.store.list_endpoints()
                await self.releases.refresh()
                self.pool.sync(endpoints)
            except ConveyorError as error:
                log.warning("catching up with the cluster failed: %s", error)

    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SWEEP_INTERVAL)
            if self._stop.is_set():
                return
            now_ms = to_ms(self.clock.now())
            try:
                removed = await self.store.sweep(
                    now_ms, int(self.settings.dedup_window_seconds * 1000)
                )
                for e in await self.store.list_endpoints():
                    if not e.static and e.expires_ms < now_ms - ENDPOINT_FORGET_MS:
                        await self.store.delete_endpoint(e.lambda_name, e.id)
            except Exception as error:  # noqa: BLE001 - tried again next pass; never ends the node
                log.warning("housekeeping failed: %s", error)
            else:
                if removed:
                    log.info("housekeeping removed %d rows", removed)

    async def register_endpoint(
        self,
        lambda_name: str,
        endpoint_id: str,
        url: str,
        ttl: float,
        concurrency: int,
        *,
        locality: str = "",
        version: str = "",
        static: bool = False,
        health_url: str = "",
    ) -> Endpoint:
        """Register or renew a worker's endpoint (or add a static one), durably.

        Args:
            lambda_name: the lambda it serves.
            endpoint_id: its id, stable across renewals.
            url: where pushes are POSTed.
            ttl: seconds it lives without renewal (ignored for a static endpoint).
            concurrency: events it runs at once (a hint for balancing).
            locality: where it runs, ``cloud/region/zone``.
            version: the version of the lambda it runs.
            static: added by hand: it never expires.
            health_url: where active probes GET its health (``""``: not probed).
        """
        # A new version's release (a canary) is durable before its endpoint gets a push.
        await self.releases.seen(lambda_name, version)
        state = self.pool.register(
            lambda_name,
            endpoint_id,
            url,
            ttl,
            concurrency,
            locality=locality,
            version=version,
            static=static,
            health_url=health_url,
        )
        endpoint = Endpoint(
            lambda_name,
            endpoint_id,
            url,
            to_ms(state.expires_at),
            concurrency,
            locality,
            version,
            static,
            health_url,
        )
        await self.store.put_endpoint(endpoint)
        return endpoint

    async def deregister_endpoint(self, lambda_name: str, endpoint_id: str) -> bool:
        """Remove a worker's endpoint; returns whether it was known."""
        known = self.pool.deregister(lambda_name, endpoint_id)
        stored = await self.store.delete_endpoint(lambda_name, endpoint_id)
        return known or stored

    async def aclose(self) -> None:
        """Stop taking work, settle in-flight pushes, commit progress, close; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self.leases is not None:
            self.leases.stop()
        self.dispatcher.stop()
        self.timers.stop()
        try:
            if self._main is not None:
                await self._main
            if self.leases is not None:
                # Progress is committed: hand the partitions over at once, not after the TTL.
                await self.leases.release_all()
        finally:
            await self.pusher.aclose()
            await self.store.aclose()
