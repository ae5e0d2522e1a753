"""Many nodes over one store: membership, partition leases and fencing.

Every node heartbeats a row in ``nodes``. Each partition is dispatched by one node, its
*leaseholder*: the lease (owner, expiry, fencing epoch) lives on the partition's row. Which
node should own a partition is decided by rendezvous hashing over the live dispatch nodes, so
every node computes the same answer with no coordinator, and a join or leave moves only the
partitions that must move.

Invariants:

* a node dispatches a partition only while it holds its lease by its own clock
  (:meth:`LeaseManager.holds`), with a margin below the lease's expiry in the store;
* every progress write (cursor, delivery rows) carries the epoch under which the partition
  was acquired, and the store refuses it when the epoch moved on (a paused node that lost
  its lease cannot write: fencing);
* a partition is released only after its runners stopped and committed their progress.

Appends do not need the lease: any node appends to any partition (the store takes offsets
under the partition head's row lock, held to COMMIT, so they stay gap-free and visible in
order), and a batch stays atomic whatever partitions it spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from conveyor.clock import Clock, to_ms
from conveyor.errors import ConveyorError
from conveyor.store.base import NodeInfo
from conveyor.store.ports import LeasesPort

log = logging.getLogger("conveyor.cluster")

Ref = tuple[str, int]  # (topic, partition)
Ownership = dict[Ref, int]  # partition -> fencing epoch held

DISPATCH = "dispatch"
FRONTEND = "frontend"
ROLES = (FRONTEND, DISPATCH)
SAFETY = 0.8  # a lease is trusted locally for this share of its TTL after a renewal


def parse_roles(text: str) -> frozenset[str]:
    """Roles from ``frontend,dispatch``.

    Raises:
        ValueError: an unknown or empty role list.
    """
    roles = frozenset(r.strip() for r in text.split(",") if r.strip())
    unknown = roles - set(ROLES)
    if not roles or unknown:
        raise ValueError(f"roles must be some of {', '.join(ROLES)}; got {text!r}")
    return roles


def owner_of(ref: Ref, nodes: list[str]) -> str | None:
    """The node that should own a partition: the highest rendezvous score wins."""
    if not nodes:
        return None

    def score(node: str) -> bytes:
        return hashlib.blake2b(f"{node}\x00{ref[0]}\x00{ref[1]}".encode(), digest_size=8).digest()

    return max(nodes, key=score)


@dataclass(eq=False)  # no slots: tests replace a method on an instance
class LeaseManager:
    """Keeps this node's membership and its partition leases.

    Args:
        store: the shared store.
        clock: the source of time.
        node_id: this node's id (stable across restarts reclaims its own leases at once).
        url: this node's API URL, for operators.
        roles: the node's roles; only ``dispatch`` nodes take leases.
        ttl: seconds a heartbeat or lease lives without renewal.
        on_change: told the new ownership; returns once released partitions have stopped.
    """

    store: LeasesPort
    clock: Clock
    _: KW_ONLY
    node_id: str
    url: str
    roles: frozenset[str]
    ttl: float
    on_change: Callable[[Ownership], Awaitable[None]]
    owned: Ownership = field(init=False, default_factory=dict)
    _valid_until: float = field(init=False, default=0.0)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _kick: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    # when a lease this node wants expires
    _takeover_at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.ttl <= 0:
            raise ValueError("ttl must be positive")

    def holds(self) -> bool:
        """Whether this node's leases are still trustworthy by its own clock."""
        return self.clock.now() < self._valid_until

    def kick(self) -> None:
        """Run a round now (e.g. after a write was refused for a lost lease)."""
        self._kick.set()

    def stop(self) -> None:
        """Stop the rounds; leases lapse (or are released by :meth:`release_all`)."""
        self._stop.set()
        self._kick.set()

    async def run(self) -> None:
        """Heartbeat and rebalance every ``ttl / 4`` until :meth:`stop`."""
        while not self._stop.is_set():
            # Invariant: a kick during a round is not lost (cleared before, not after it):
            # a topic created while a round runs gets its leases at once, not a TTL/4 later.
            self._kick.clear()
            try:
                await self.round()
            except ConveyorError as e:
                log.warning("lease round failed (leases lapse if this lasts): %s", e)
            wait = self.ttl / 4
            if self._takeover_at is not None:
                # Wake when a dead node's lease expires: takeover within the TTL, not later.
                wait = min(wait, max(0.01, self._takeover_at - self.clock.now() + 0.005))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), wait)

    async def round(self) -> None:
        """One heartbeat, renewal and rebalance."""
        now = self.clock.now()
        now_ms, until_ms = to_ms(now), to_ms(now + self.ttl)
        await self.store.heartbeat_node(
            NodeInfo(self.node_id, self.url, ",".join(sorted(self.roles)), until_ms)
        )
        if DISPATCH not in self.roles:
            return
        changed = await self._renew(now, until_ms)
        nodes = sorted(
            {n.id for n in await self.store.list_nodes()
             if n.expires_ms > now_ms and DISPATCH in n.roles.split(",")} | {self.node_id}
        )  # fmt: skip
        releasing: Ownership = {}
        self._takeover_at = None
        for lease in await self.store.list_leases():
            ref = (lease.topic, lease.partition)
            mine = owner_of(ref, nodes) == self.node_id
            if mine and ref not in self.owned:
                free = lease.owner in (None, self.node_id) or lease.expires_ms < now_ms
                epoch = await self._acquire(ref, now_ms, until_ms) if free else None
                if epoch is not None:
                    self.owned[ref] = epoch
                    changed = True
                elif lease.expires_ms >= now_ms:
                    expiry = lease.expires_ms / 1000
                    self._takeover_at = min(self._takeover_at or expiry, expiry)
            elif not mine and ref in self.owned:
                releasing[ref] = self.owned.pop(ref)
                changed = True
        if changed:
            log.info("node %s now dispatches %d partitions", self.node_id, len(self.owned))
            await self.on_change(dict(self.owned))
        for (topic, part), epoch in releasing.items():
            await self.store.release_lease(topic, part, self.node_id, epoch)

    async def _acquire(self, ref: Ref, now_ms: int, until_ms: int) -> int | None:
        try:
            return await self.store.acquire_lease(ref[0], ref[1], self.node_id, now_ms, until_ms)
        except ConveyorError as e:
            # E.g. the lease row is locked by a stalled node's open transaction: next round.
            log.info("could not take %s/%d yet: %s", ref[0], ref[1], e)
            return None

    async def _renew(self, now: float, until_ms: int) -> bool:
        if not self.owned:
            self._valid_until = now + self.ttl * SAFETY
            return False
        held = [(t, p, e) for (t, p), e in self.owned.items()]
        renewed = set(await self.store.renew_leases(self.node_id, held, until_ms))
        lost = [ref for ref in self.owned if ref not in renewed]
        for ref in lost:
            log.warning("lost the lease of %s/%d to another node", *ref)
            del self.owned[ref]
        if lost:
            # The lost partitions stop before the others are trusted again: until then the
            # node's leases stay untrusted, so nothing is pushed for a lost partition.
            await self.on_change(dict(self.owned))
        self._valid_until = now + self.ttl * SAFETY
        return False

    async def lost(self, topic: str) -> None:
        """A write for ``topic`` was refused: forget its partitions and rebalance now."""
        dropped = [ref for ref in self.owned if ref[0] == topic]
        for ref in dropped:
            del self.owned[ref]
        if dropped:
            await self.on_change(dict(self.owned))
        self.kick()

    async def release_all(self) -> None:
        """Give up every lease (a graceful stop), so other nodes take over at once."""
        owned, self.owned = self.owned, {}
        for (topic, part), epoch in owned.items():
            with contextlib.suppress(ConveyorError):
                await self.store.release_lease(topic, part, self.node_id, epoch)
