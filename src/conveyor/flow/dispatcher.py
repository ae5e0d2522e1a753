"""The dispatcher: one runner per subscription, and the commit of their progress.

The dispatcher routes every committed append to the runners of its topic, and commits the
runners' progress (cursors, delivery rows, dead letters) in one group-committed transaction
every ``flush_interval``. A failed commit is retried, oldest first, before anything newer, so
a cursor is never made durable ahead of the rows that own the offsets it passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conveyor.clock import Clock, to_ms
from conveyor.delivery.endpoints import EndpointPool
from conveyor.delivery.push import Pusher
from conveyor.errors import ConveyorError, LeaseLost
from conveyor.flow.retry import Jitter
from conveyor.flow.runner import Runner
from conveyor.metrics import Metrics
from conveyor.model import Event, Subscription, Topic
from conveyor.store.base import Progress, Store

if TYPE_CHECKING:
    from conveyor.cluster import Ownership  # the node runtime sits above flow: a type only

log = logging.getLogger("conveyor.flow")

RESTART_DELAY = 1.0  # seconds before a failed runner is started again
RETRY_COMMIT_DELAY = 0.2  # seconds between attempts to commit progress that failed
REDRIVE_BATCH = 1000  # redriven events taken per subscription per look


def _always() -> bool:
    return True


@dataclass(slots=True, eq=False, kw_only=True)
class Dispatcher:
    """Runs every subscription's flow control on this node.

    Args:
        store: the durable store.
        pool: the endpoint pool.
        pusher: the push transport.
        clock: the source of time.
        metrics: the node's metrics.
        topic_of: resolves a topic by name (``None`` when missing).
        flush_interval: seconds between progress commits.
        jitter: draws retry waits (tests pin it).
        redrive_interval: seconds between looks for dead events sent back by a redrive
            made through another node (this node's own redrives are taken at once).
    """

    store: Store
    pool: EndpointPool
    pusher: Pusher
    clock: Clock
    metrics: Metrics
    topic_of: Callable[[str], Topic | None]
    flush_interval: float = 0.005
    jitter: Jitter = random.uniform
    redrive_interval: float = 1.0
    _runners: dict[str, Runner] = field(init=False, default_factory=dict)
    _by_topic: dict[str, list[Runner]] = field(init=False, default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(init=False, default_factory=dict)
    _dirty: set[Runner] = field(init=False, default_factory=set)
    _dirty_event: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _failed: list[Progress] = field(init=False, default_factory=list)
    _flush_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    _stopping: bool = field(init=False, default=False)
    _tg: asyncio.TaskGroup | None = field(init=False, default=None)
    _subs: dict[str, Subscription] = field(init=False, default_factory=dict)
    # None: this node dispatches every partition (no leases, e.g. the embedded store).
    _owned: Ownership | None = field(init=False, default=None)
    _lease_valid: Callable[[], bool] = field(init=False, default=_always)
    _on_lease_lost: Callable[[str], Coroutine[object, object, None]] | None = field(
        init=False, default=None
    )
    _heads_interval: float | None = field(init=False, default=None)
    _retire_timeout: float | None = field(init=False, default=None)
    _redrive_wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.pool.set_listener(self._endpoints_changed)

    def use_leases(
        self,
        *,
        owned: Ownership,
        lease_valid: Callable[[], bool],
        on_lease_lost: Callable[[str], Coroutine[object, object, None]],
        heads_interval: float,
        retire_timeout: float | None = None,
    ) -> None:
        """Dispatch only the partitions this node leases (call before :meth:`run`).

        Args:
            owned: the partitions held now, with their epochs.
            lease_valid: whether the leases may still be trusted.
            on_lease_lost: told of a topic whose progress was refused by fencing.
            heads_interval: seconds between reads of partition heads (appends by others).
            retire_timeout: seconds a runner losing its partitions may take to settle.
        """
        self._owned = dict(owned)
        self._lease_valid = lease_valid
        self._on_lease_lost = on_lease_lost
        self._heads_interval = heads_interval
        self._retire_timeout = retire_timeout

    async def run(self, subscriptions: list[Subscription], started: asyncio.Event) -> None:
        """Run until :meth:`stop`; then settle in-flight pushes and commit all progress."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for sub in subscriptions:
                self.put(sub)
            if self._heads_interval is not None:
                tg.create_task(self._poll_heads(self._heads_interval))
            tg.create_task(self._poll_redrives())
            started.set()
            await self._flush_loop()
        self._tg = None

    def stop(self) -> None:
        """Stop taking work: runners finish their pushes, then progress is committed."""
        self._stopping = True
        for runner in self._runners.values():
            runner.stop()
        self._dirty_event.set()
        self._redrive_wake.set()

    # -- subscriptions ----------------------------------------------------------------------
    def put(self, sub: Subscription) -> None:
        """Start a subscription's runner, or apply its new settings."""
        topic = self.topic_of(sub.topic)
        if topic is None or self._tg is None or self._stopping:
            return
        self._subs[sub.name] = sub
        current = self._runners.get(sub.name)
        if current is not None and current.sub.ordered == sub.ordered:
            current.update(sub)
            return
        if current is not None:
            # Changing ordering rebuilds the runner from committed state.
            self._tg.create_task(self._replace(current, sub, topic))
            return
        partitions = self._partitions_of(topic.name)
        if partitions is None or partitions:
            self._start(sub, topic, partitions)

    def _partitions_of(self, topic: str) -> dict[int, int] | None:
        if self._owned is None:
            return None
        return {part: epoch for (name, part), epoch in self._owned.items() if name == topic}

    async def set_ownership(self, owned: Ownership) -> None:
        """Dispatch exactly these partitions from now on.

        Runners whose partitions change are stopped (their in-flight pushes settle and their
        progress is committed under the old epochs) before the new ones start.
        """
        self._owned = dict(owned)
        for sub in list(self._subs.values()):
            topic = self.topic_of(sub.topic)
            if topic is None or self._stopping:
                continue
            want = self._partitions_of(topic.name)
            runner = self._runners.get(sub.name)
            if runner is not None and runner.partitions == want:
                continue
            if runner is not None:
                await self._retire(runner)
            if want and not self._stopping and sub.name in self._subs:
                self._start(sub, topic, want)

    async def remove(self, name: str) -> None:
        """Stop a subscription's runner and forget its uncommitted progress."""
        self._subs.pop(name, None)
        runner = self._runners.pop(name, None)
        if runner is None:
            return
        self._by_topic[runner.sub.topic].remove(runner)
        task = self._tasks.pop(name, None)
        runner.stop()
        if task is not None:
            # In a cluster, a stop is bounded so lease rounds go on: pushes still out after
            # the bound are abandoned, and the partition's next holder delivers them again.
            done, _ = await asyncio.wait({task}, timeout=self._retire_timeout)
            if not done:
                log.warning("subscription %s: abandoning pushes still out", name)
                task.cancel()
                await asyncio.wait({task})
        self._dirty.discard(runner)

    def runner(self, name: str) -> Runner | None:
        """The runner of a subscription on this node."""
        return self._runners.get(name)

    def _start(self, sub: Subscription, topic: Topic, partitions: dict[int, int] | None) -> None:
        assert self._tg is not None
        runner = Runner(
            sub,
            topic,
            store=self.store,
            pool=self.pool,
            pusher=self.pusher,
            clock=self.clock,
            metrics=self.metrics,
            dead_letter=self.topic_of,
            on_dirty=self._mark_dirty,
            jitter=self.jitter,
            partitions=partitions,
            lease_valid=self._lease_valid,
        )
        self._runners[sub.name] = runner
        self._by_topic.setdefault(sub.topic, []).append(runner)
        self._tasks[sub.name] = self._tg.create_task(self._supervise(runner))

    async def _retire(self, runner: Runner) -> None:
        """Stop a runner, then commit what it did (in-flight pushes settle first)."""
        name = runner.sub.name
        sub = self._subs.get(name)
        await self.remove(name)
        if sub is not None:
            self._subs[name] = sub  # the subscription stays; only this runner goes
        progress = runner.take_progress()
        if progress is not None:
            self._failed.append(progress)
        await self._flush()

    async def _replace(self, old: Runner, sub: Subscription, topic: Topic) -> None:
        await self._retire(old)
        if not self._stopping:
            self._start(sub, topic, self._partitions_of(topic.name))

    async def _supervise(self, runner: Runner) -> None:
        # A runner that fails is rebuilt from committed state: uncommitted progress is
        # redelivered (at least once), nothing is lost.
        try:
            await runner.run()
        except Exception:
            log.exception("subscription %s failed; restarting", runner.sub.name)
            if self._runners.get(runner.sub.name) is runner and not self._stopping:
                await asyncio.sleep(RESTART_DELAY)
                if self._runners.get(runner.sub.name) is runner and not self._stopping:
                    await self._retire(runner)
                    topic = self.topic_of(runner.sub.topic)
                    if topic is not None:
                        self._start(runner.sub, topic, self._partitions_of(topic.name))

    def _endpoints_changed(self, lambda_name: str) -> None:
        for runner in self._runners.values():
            if runner.sub.lambda_name == lambda_name:
                runner.wake()

    # -- appends ----------------------------------------------------------------------------
    def on_append(self, events: list[Event]) -> None:
        """Route committed events (in commit order) to the runners of their topics."""
        if not events:
            return
        by_part: dict[tuple[str, int], list[Event]] = {}
        for event in events:
            key = (event.topic, event.partition)
            group = by_part.get(key)
            if group is None:
                by_part[key] = [event]
            else:
                group.append(event)
        for (topic, partition), group in by_part.items():
            for runner in self._by_topic.get(topic, ()):
                runner.on_append(partition, group)

    # -- progress ---------------------------------------------------------------------------
    def _mark_dirty(self, runner: Runner) -> None:
        self._dirty.add(runner)
        self._dirty_event.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty_event.wait()
            if not self._stopping:
                await asyncio.sleep(self.flush_interval)  # let more progress gather
            # Invariant: stop() sets the event after _stopping, so clearing it here never
            # loses a stop: _stopping is read after the clear.
            self._dirty_event.clear()
            if self._stopping:
                await self._drain_runners()
                await self._flush()
                return
            await self._flush()

    async def _drain_runners(self) -> None:
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks)

    async def _flush(self) -> None:
        # One flush at a time: a runner being retired must not find its progress already
        # taken by a flush still writing it, and start its successor on older state.
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        while True:
            batch = self._failed
            self._failed = []
            for runner in list(self._dirty):
                progress = runner.take_progress()
                if progress is not None:
                    batch.append(progress)
            self._dirty.clear()
            if not batch:
                return
            if not await self._commit(batch):
                await asyncio.sleep(RETRY_COMMIT_DELAY)
                continue
            if not self._failed and not self._dirty:
                return

    async def _commit(self, batch: list[Progress]) -> bool:
        """Commit each subscription's progress (one group-committed transaction for all).

        Progress refused by fencing is dropped (the lease is gone; the new holder redelivers
        from its committed state); progress that failed otherwise is kept, in order, for the
        next attempt. Returns whether nothing has to be tried again.
        """
        now_ms = to_ms(self.clock.now())
        results = await asyncio.gather(
            *(self.store.commit_progress([p], now_ms) for p in batch), return_exceptions=True
        )
        retry: list[Progress] = []
        lost: set[str] = set()
        for progress, result in zip(batch, results, strict=True):
            if isinstance(result, LeaseLost):
                log.warning("%s", result.message)
                lost.add(progress.topic)
            elif isinstance(result, ConveyorError):
                log.warning("committing progress failed, retrying: %s", result)
                retry.append(progress)
            elif isinstance(result, BaseException):
                raise result
            else:
                self.on_append(result)
        self._failed = retry + self._failed
        if lost and self._on_lease_lost is not None and self._tg is not None:
            for topic in lost:
                self._tg.create_task(self._on_lease_lost(topic))
        return not retry

    async def _poll_heads(self, interval: float) -> None:
        """Learn the heads of partitions appended to by other nodes."""
        while not self._stopping:
            await asyncio.sleep(interval)
            if not self._runners:
                continue
            try:
                heads = await self.store.heads()
            except ConveyorError as e:
                log.warning("reading partition heads failed: %s", e)
                continue
            for (topic, partition), head in heads.items():
                for runner in self._by_topic.get(topic, ()):
                    runner.on_head(partition, head)

    # -- redrives ---------------------------------------------------------------------------
    def redrive_requested(self, subscription: str) -> None:
        """Dead events of a subscription were sent back: look for them now."""
        self._redrive_wake.set()

    async def _poll_redrives(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._redrive_wake.wait(), self.redrive_interval)
            self._redrive_wake.clear()
            for runner in list(self._runners.values()):
                await self._take_redrives(runner)

    async def _take_redrives(self, runner: Runner) -> None:
        parts = None if runner.partitions is None else runner.owned_partitions()
        if self._stopping or not runner.loaded.is_set() or parts == []:
            return
        # Under the flush lock: a redriven row whose new state is taken but not yet
        # committed is never read back as still waiting (and delivered twice).
        async with self._flush_lock:
            try:
                rows = await self.store.redrive_requests(runner.sub.name, parts, REDRIVE_BATCH)
            except ConveyorError as e:
                log.warning("looking for redriven events failed: %s", e)
                return
            if rows and self._runners.get(runner.sub.name) is runner:
                runner.redrive(rows)
