"""Whether a node does its job, as ``/v1/health`` and ``/metrics`` tell it.

A node can answer HTTP while it cannot do its job: with a full disk, every publish fails and
delayed events wait in the timer store past their time, and nothing else says so. Health
is therefore judged on two facts, each with a reason a person can act on:

* the store refuses writes: the last group-committed transaction failed and none has
  succeeded since (publishes, timer firings and progress all go through it);
* delayed events are overdue: timers due more than ``overdue_after`` seconds ago are still
  in the timer store (no node fires them: the store refuses writes, no dispatch node runs).

``/metrics`` gets the same figures as gauges, refreshed when scraped: per subscription its
backlog and oldest pending age (overdue timers and retrying events included), and the
overdue timers and the store's write state of the node.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, InitVar, dataclass, field

from prometheus_client import Gauge

from conveyor.clock import Clock, to_ms
from conveyor.errors import ConveyorError
from conveyor.flow.status import StatusService
from conveyor.metrics import Metrics
from conveyor.store.ports import NodeHealthPort


class _Gauges:
    """The gauges refreshed at each scrape, in the node's registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.backlog = Gauge(
            "conveyor_subscription_backlog",
            "Unfinished events of a subscription: pending, running, blocked, retrying, and "
            "delayed events past due still in the timer store",
            ["subscription"],
            registry=r,
        )
        self.oldest_age = Gauge(
            "conveyor_subscription_oldest_pending_age_seconds",
            "Seconds since the oldest unfinished event of a subscription became due",
            ["subscription"],
            registry=r,
        )
        self.overdue = Gauge(
            "conveyor_timers_overdue",
            "Delayed events past their due time still in the timer store",
            registry=r,
        )
        self.overdue_seconds = Gauge(
            "conveyor_timers_overdue_seconds",
            "How long the most overdue delayed event is past its due time (0: none)",
            registry=r,
        )
        self.write_failing = Gauge(
            "conveyor_store_write_failing",
            "1 while the store refuses writes (the last commit failed), else 0",
            registry=r,
        )


@dataclass(slots=True, eq=False)
class NodeHealth:
    """Judges the node's health and refreshes the gauges that show it.

    Args:
        store: the durable store.
        status: subscriptions' live figures.
        metrics: the node's metrics (the gauges are added to its registry).
        clock: the source of time.
        overdue_after: seconds past due after which overdue timers make the node fail its
            health check (0: never).
    """

    store: NodeHealthPort
    status: StatusService
    metrics: InitVar[Metrics]
    clock: Clock
    _: KW_ONLY
    overdue_after: float
    _gauges: _Gauges = field(init=False)

    def __post_init__(self, metrics: Metrics) -> None:
        self._gauges = _Gauges(metrics)

    async def problems(self) -> list[str]:
        """Why the node is failing; empty when it is healthy."""
        problems: list[str] = []
        failure = self.store.write_failure()
        if failure is not None:
            problems.append(f"the store refuses writes: the last commit failed: {failure}")
        if self.overdue_after > 0:
            try:
                late = await self._overdue(self.overdue_after)
            except ConveyorError as e:
                problems.append(f"the store cannot be read: {e}")
            else:
                if late is not None:
                    count, seconds = late
                    problems.append(
                        f"{count} delayed events are overdue by more than "
                        f"{self.overdue_after:g} s (the oldest by {seconds:.1f} s): "
                        "their timers are not firing"
                    )
        return problems

    async def _overdue(self, by: float) -> tuple[int, float] | None:
        """(count, the oldest's lateness in seconds) of timers overdue by more than ``by``."""
        now = self.clock.now()
        timers = await self.store.overdue_timers(to_ms(now - by))
        if not timers:
            return None
        oldest = min(t.oldest_due_ms for t in timers)
        return sum(t.count for t in timers), now - oldest / 1000

    async def refresh_gauges(self) -> None:
        """Set the gauges to the figures of now (called before each scrape)."""
        g = self._gauges
        g.write_failing.set(0 if self.store.write_failure() is None else 1)
        late = await self._overdue(0)
        g.overdue.set(0 if late is None else late[0])
        g.overdue_seconds.set(0 if late is None else late[1])
        infos = await self.status.subscriptions()
        # Cleared first: a deleted subscription's series disappears.
        g.backlog.clear()
        g.oldest_age.clear()
        for info in infos:
            name, stats = info.subscription.name, info.stats
            g.backlog.labels(name).set(stats.backlog)
            g.oldest_age.labels(name).set(stats.oldest_pending_age or 0)
