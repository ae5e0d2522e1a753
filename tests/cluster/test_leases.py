"""Partition leases among nodes: rendezvous assignment, handover, takeover, and the dispatcher.

Every store-backed test runs on SQLite and PostgreSQL (``store_url``). Lease managers share
one store and one :class:`FakeClock`; a test drives their rounds itself, in the order it
names, so who holds what at each step is deterministic and lease expiry takes no real time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from conveyor.clock import FakeClock, to_ms
from conveyor.cluster import (
    DISPATCH,
    FRONTEND,
    SAFETY,
    LeaseManager,
    Ownership,
    Ref,
    owner_of,
    parse_roles,
)
from conveyor.model import Subscription, Topic
from conveyor.node import Node, open_store
from conveyor.settings import NodeSettings
from conveyor.store.base import Store

TTL = 10.0  # seconds a heartbeat or lease lives without renewal
ORDERS = Topic(name="orders", partitions=8)
REFS: list[Ref] = [(ORDERS.name, p) for p in range(ORDERS.log_partitions)]
BOTH = frozenset({FRONTEND, DISPATCH})


class Told:
    """A manager's ``on_change``: records every ownership it is told, and the owner of every
    partition in the store as seen when it returns (a real one first waits for runners)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[tuple[Ownership, dict[Ref, str | None]]] = []

    async def __call__(self, owned: Ownership) -> None:
        await asyncio.sleep(0)  # gives a premature release the chance to land meanwhile
        self.calls.append((owned, await owners(self.store)))

    @property
    def last(self) -> Ownership:
        return self.calls[-1][0]


async def owners(store: Store) -> dict[Ref, str | None]:
    return {(lease.topic, lease.partition): lease.owner for lease in await store.list_leases()}


def share(nodes: list[str], node: str) -> set[Ref]:
    """The partitions rendezvous hashing gives ``node`` among ``nodes``."""
    return {ref for ref in REFS if owner_of(ref, nodes) == node}


def manager(
    store: Store, clock: FakeClock, node_id: str, roles: frozenset[str] = BOTH
) -> tuple[LeaseManager, Told]:
    told = Told(store)
    leases = LeaseManager(
        store,
        clock,
        node_id=node_id,
        url=f"http://{node_id}:8400",
        roles=roles,
        ttl=TTL,
        on_change=told,
    )
    return leases, told


async def converge(*managers: LeaseManager) -> None:
    """Rounds of every manager in turn: the first takes all, the next round hands over."""
    for _ in range(2):
        for leases in managers:
            await leases.round()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        await opened.put_topic(ORDERS)
        yield opened


# -- assignment ---------------------------------------------------------------------------------
def test_owner_of_is_deterministic_and_independent_of_the_order_of_nodes() -> None:
    refs: list[Ref] = [("orders", p) for p in range(64)]
    nodes = ["a", "b", "c"]

    first = [owner_of(ref, nodes) for ref in refs]

    assert first == [owner_of(ref, nodes) for ref in refs]
    assert first == [owner_of(ref, list(reversed(nodes))) for ref in refs]
    assert owner_of(("orders", 0), []) is None


def test_owner_of_spreads_64_partitions_roughly_evenly_over_3_nodes() -> None:
    refs: list[Ref] = [("orders", p) for p in range(64)]

    counts = Counter(owner_of(ref, ["a", "b", "c"]) for ref in refs)

    assert set(counts) == {"a", "b", "c"}
    assert min(counts.values()) >= 10, counts


def test_when_a_node_leaves_only_its_partitions_move() -> None:
    refs: list[Ref] = [("orders", p) for p in range(64)]
    before = {ref: owner_of(ref, ["a", "b", "c"]) for ref in refs}

    after = {ref: owner_of(ref, ["a", "c"]) for ref in refs}

    moved = {ref for ref in refs if before[ref] != after[ref]}
    assert moved == {ref for ref in refs if before[ref] == "b"}
    assert moved, "b owned nothing: the property was not exercised"
    assert "b" not in after.values()


@pytest.mark.parametrize(
    ("text", "roles"),
    [
        ("frontend", {FRONTEND}),
        ("dispatch", {DISPATCH}),
        ("frontend,dispatch", {FRONTEND, DISPATCH}),
        (" dispatch , frontend ,", {FRONTEND, DISPATCH}),
    ],
)
def test_parse_roles_accepts_frontend_dispatch_or_both(text: str, roles: set[str]) -> None:
    assert parse_roles(text) == roles


@pytest.mark.parametrize("text", ["", " , ", "worker", "frontend,worker", "Dispatch"])
def test_parse_roles_refuses_an_unknown_or_empty_list(text: str) -> None:
    with pytest.raises(ValueError, match="roles must be"):
        parse_roles(text)


# -- leases in the store ------------------------------------------------------------------------
async def test_two_dispatch_nodes_split_the_partitions_as_rendezvous_hashing_says(
    store: Store,
) -> None:
    # Given
    clock = FakeClock()
    a, told_a = manager(store, clock, "a")
    b, told_b = manager(store, clock, "b")

    # When
    await converge(a, b)

    # Then every partition has one owner, the one owner_of names
    assert share(["a", "b"], "a")
    assert share(["a", "b"], "b")
    assert await owners(store) == {ref: owner_of(ref, ["a", "b"]) for ref in REFS}
    assert set(a.owned) == share(["a", "b"], "a")
    assert set(b.owned) == share(["a", "b"], "b")
    assert (told_a.last, told_b.last) == (a.owned, b.owned)
    for lease in await store.list_leases():
        held = a.owned if lease.owner == "a" else b.owned
        assert lease.epoch >= 1
        assert held[(lease.topic, lease.partition)] == lease.epoch
        assert lease.expires_ms == to_ms(clock.now() + TTL)


async def test_a_joining_node_gets_its_share_once_the_others_released_it(store: Store) -> None:
    # Given two nodes that split the partitions
    clock = FakeClock()
    a, told_a = manager(store, clock, "a")
    b, told_b = manager(store, clock, "b")
    await converge(a, b)
    epochs = {lease.partition: lease.epoch for lease in await store.list_leases()}
    theirs = share(["a", "b", "c"], "c")
    assert theirs, "c's share is empty: the handover is not exercised"

    # When c joins: its first round finds its share held by live leases
    c, told_c = manager(store, clock, "c")
    await c.round()
    assert c.owned == {}
    assert told_c.calls == []

    # ... the others release it on their next rounds
    await a.round()
    await b.round()
    assert all(owner is None for ref, owner in (await owners(store)).items() if ref in theirs)

    # ... and c takes it on its next round
    await c.round()

    # Then
    assert await owners(store) == {ref: owner_of(ref, ["a", "b", "c"]) for ref in REFS}
    assert set(c.owned) == theirs == set(told_c.last)
    assert c.owned == {ref: epochs[ref[1]] + 1 for ref in theirs}
    # Each releasing node was told first, and still owned what it gave up when that returned.
    for node, told in (("a", told_a), ("b", told_b)):
        given_up = theirs & share(["a", "b"], node)
        owned, seen = told.calls[-1]
        assert not given_up & set(owned)
        assert all(seen[ref] == node for ref in given_up)


async def test_a_silent_nodes_partitions_move_after_its_ttl_under_the_next_epoch(
    store: Store,
) -> None:
    # Given two nodes that split the partitions; then b stops renewing
    clock = FakeClock()
    a, told_a = manager(store, clock, "a")
    b, told_b = manager(store, clock, "b")
    await converge(a, b)
    b_epochs = dict(b.owned)
    assert b_epochs

    # When less than the TTL has passed, a cannot take b's partitions
    clock.advance(TTL / 2)
    await a.round()
    assert set(a.owned) == share(["a", "b"], "a")
    now_ms = to_ms(clock.now())
    for topic, part in b_epochs:
        assert await store.acquire_lease(topic, part, "a", now_ms, now_ms + 1000) is None

    # When b's TTL has passed
    clock.advance(TTL / 2 + 1)
    await a.round()

    # Then a holds everything, b's partitions under b's epoch + 1
    assert set(a.owned) == set(REFS) == set(told_a.last)
    assert all(owner == "a" for owner in (await owners(store)).values())
    assert {ref: a.owned[ref] for ref in b_epochs} == {ref: e + 1 for ref, e in b_epochs.items()}

    # When b wakes up, its renewal fails: it forgets what it held and is told so
    await b.round()
    assert b.owned == {}
    assert told_b.last == {}


async def test_a_frontend_only_node_heartbeats_but_takes_no_partition(store: Store) -> None:
    # Given
    clock = FakeClock()
    front, told_front = manager(store, clock, "f", frozenset({FRONTEND}))
    a, _ = manager(store, clock, "a")

    # When
    await front.round()
    await a.round()
    await front.round()

    # Then f is a member, holds nothing, and does not count as a dispatch node for a
    (node,) = [n for n in await store.list_nodes() if n.id == "f"]
    assert (node.url, node.roles) == ("http://f:8400", FRONTEND)
    assert node.expires_ms == to_ms(clock.now() + TTL)
    assert front.owned == {}
    assert told_front.calls == []
    assert await owners(store) == dict.fromkeys(REFS, "a")


async def test_holds_lapses_past_the_safety_margin_and_returns_after_a_round(
    store: Store,
) -> None:
    # Given
    clock = FakeClock()
    a, _ = manager(store, clock, "a")
    assert not a.holds()
    await a.round()
    assert a.owned
    assert a.holds()

    # When less than ttl * SAFETY passed, it holds; past it, it does not
    clock.advance(TTL * SAFETY - 0.01)
    assert a.holds()
    clock.advance(0.02)
    assert not a.holds()

    # When a round renews the leases, it holds again
    await a.round()
    assert a.holds()


# -- the dispatcher -----------------------------------------------------------------------------
async def test_set_ownership_runs_each_subscription_on_exactly_the_owned_partitions(
    store_url: str,
) -> None:
    # Given a node with two subscriptions, dispatching every partition (no leases)
    node = Node(NodeSettings(store=store_url, cluster=False), clock=FakeClock())
    await node.start()
    try:
        audit = Topic(name="audit", partitions=2)
        await node.catalog.put_topic(ORDERS)
        await node.catalog.put_topic(audit)
        for name, topic in (("billing", ORDERS), ("archive", audit)):
            await node.catalog.put_subscription(
                Subscription(name=name, topic=topic.name, lambda_name="worker")
            )
        first = node.dispatcher.runner("billing")
        assert first is not None
        assert first.partitions is None
        now_ms = to_ms(node.clock.now())
        epochs: dict[int, int] = {}
        for part in (1, 6):
            epoch = await node.store.acquire_lease("orders", part, "n", now_ms, now_ms + 10_000)
            assert epoch is not None
            epochs[part] = epoch

        # When it is told to own two partitions of orders
        await node.dispatcher.set_ownership({("orders", p): e for p, e in epochs.items()})

        # Then billing's runner is a new one on exactly those; archive has none
        billing = node.dispatcher.runner("billing")
        assert billing is not None
        assert billing is not first
        assert billing.partitions == epochs
        assert node.dispatcher.runner("archive") is None

        # When told the same again, the runner stays
        await node.dispatcher.set_ownership({("orders", p): e for p, e in epochs.items()})
        assert node.dispatcher.runner("billing") is billing

        # When it owns nothing, no runner is left
        await node.dispatcher.set_ownership({})
        assert node.dispatcher.runner("billing") is None
        assert node.dispatcher.runner("archive") is None

        # When it owns a partition of audit again, archive runs on it alone
        await node.dispatcher.set_ownership({("audit", 1): 4})
        archive = node.dispatcher.runner("archive")
        assert archive is not None
        assert archive.partitions == {1: 4}
        assert node.dispatcher.runner("billing") is None
    finally:
        await node.aclose()


async def test_a_topic_created_during_a_round_is_leased_at_once_not_a_round_later(
    store: Store,
) -> None:
    # Given a running manager whose first round is under way when a topic appears (and
    # kicks it, as the catalog does)
    leases, told = manager(store, FakeClock(), "a")
    ticks = 10**9  # (TTL/4 of real time is far longer than this test may wait)
    leases.ttl = ticks
    real_round = leases.round
    rounds = 0

    async def round_with_a_new_topic() -> None:
        nonlocal rounds
        rounds += 1
        await real_round()
        if rounds == 1:  # after the round read the topics: only a next round can see it
            await store.put_topic(Topic(name="payments", partitions=1))
            leases.kick()

    leases.round = round_with_a_new_topic  # type: ignore[method-assign]
    task = asyncio.create_task(leases.run())
    try:
        # Then a second round follows at once and takes the new topic's partitions
        deadline = asyncio.get_running_loop().time() + 5
        while not any(t == "payments" for t, _ in leases.owned):
            assert asyncio.get_running_loop().time() < deadline, "the kick was lost"
            await asyncio.sleep(0.01)
        assert rounds >= 2
        assert told.calls
    finally:
        leases.stop()
        await task
