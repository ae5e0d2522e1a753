"""LeasesPort and ReleasesPort: fenced leases, nodes, and each lambda's releases."""

from __future__ import annotations

import contract_kit
from contract_kit import NOW_MS

from conveyor.store.base import NodeInfo, StoredRelease
from conveyor.store.ports import LeasesPort, ReleasesPort

store_fixture = contract_kit.opened_store


async def test_a_lease_is_held_by_one_owner_with_a_rising_epoch(store: LeasesPort) -> None:
    epoch = await store.acquire_lease("orders", 0, "a", NOW_MS, NOW_MS + 10)
    assert epoch is not None
    assert await store.acquire_lease("orders", 0, "b", NOW_MS, NOW_MS + 10) is None
    assert await store.renew_leases("a", [("orders", 0, epoch)], NOW_MS + 20) == [("orders", 0)]
    assert await store.renew_leases("a", [("orders", 0, epoch + 1)], NOW_MS + 20) == []
    taken = await store.acquire_lease("orders", 0, "b", NOW_MS + 21, NOW_MS + 30)
    assert taken is not None
    assert taken > epoch
    await store.release_lease("orders", 0, "b", taken)
    leases = {(lease.topic, lease.partition): lease for lease in await store.list_leases()}
    assert (leases[("orders", 0)].owner, leases[("orders", 0)].epoch) == (None, taken)


async def test_nodes_heartbeat_in_place(store: LeasesPort) -> None:
    await store.heartbeat_node(NodeInfo("n1", "http://a", "all", NOW_MS))
    await store.heartbeat_node(NodeInfo("n1", "http://b", "all", NOW_MS + 5))
    assert await store.list_nodes() == [NodeInfo("n1", "http://b", "all", NOW_MS + 5)]


async def test_release_changes_bump_the_lambdas_revision(store: ReleasesPort) -> None:
    assert (await store.lambda_releases("worker")).releases == ()
    canary = StoredRelease("v2", "canary", NOW_MS)
    after = await store.change_releases("worker", lambda now: [canary])
    assert (after.revision, after.releases) == (1, (canary,))
    after = await store.set_release_policy("worker", b'{"steps":[5]}')
    assert (after.revision, after.policy) == (2, b'{"steps":[5]}')
    assert await store.release_revisions() == {"worker": 2}
