"""What happened to an event, and how a subscription is doing: the read side of flow control.

An event's state for a subscription combines, most recent first: what the runner on this node
holds in memory (running, rows not yet committed, progress not yet committed), the delivery
row in the store, then the cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from conveyor.catalog import Catalog
from conveyor.clock import Clock, to_ms
from conveyor.delivery.endpoints import EndpointPool
from conveyor.errors import NotFound
from conveyor.flow.dispatcher import Dispatcher
from conveyor.model import (
    AttemptOutcome,
    DeliveryState,
    Event,
    Priority,
    Subscription,
    Topic,
    lane_of,
)
from conveyor.store.base import CursorState, DeliveryRow, OverdueTimers
from conveyor.store.ports import FlowReadPort
from conveyor.wire.schemas import (
    AttemptView,
    ConcurrencyView,
    DeliveryView,
    EventView,
    SubscriptionInfo,
    SubscriptionStats,
)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _history(row: DeliveryRow | None, state: DeliveryState) -> list[AttemptView]:
    if row is None:
        # The normal path writes nothing per delivery: a success at the first attempt is
        # known (the cursor passed the event), not recorded; its time and duration are not.
        if state is DeliveryState.SUCCEEDED:
            return [AttemptView(attempt=1, outcome=AttemptOutcome.SUCCESS, recorded=False)]
        return []
    return [
        AttemptView(
            attempt=a.attempt,
            at=datetime.fromtimestamp(a.at_ms / 1000, tz=UTC),
            outcome=a.outcome,
            duration_ms=a.duration_ms,
            error=a.error,
        )
        for a in row.history
    ]


_ROW_STATES = {
    s.value: s
    for s in (
        DeliveryState.RETRYING,
        DeliveryState.DEAD,
        DeliveryState.SUCCEEDED,
        DeliveryState.DROPPED,
        DeliveryState.FILTERED,
    )
}


@dataclass(frozen=True, slots=True, eq=False)
class StatusService:
    """Answers "what happened to this event?" and "how is this subscription doing?".

    Args:
        store: the durable store.
        catalog: topics and subscriptions.
        dispatcher: the runners of this node.
        clock: the source of time.
        pool: the endpoints of every lambda (a subscription whose lambda has none is told).
    """

    store: FlowReadPort
    catalog: Catalog
    dispatcher: Dispatcher
    clock: Clock
    pool: EndpointPool | None = None

    async def event(self, event_id: str) -> EventView:
        """An event with its state for every subscription of its topic.

        Raises:
            NotFound: no event has that id (or it is past retention).
        """
        found = await self.store.find_event(event_id)
        if found is None:
            raise NotFound("event", event_id)
        event, scheduled = found
        subs = self.catalog.subscriptions(event.topic)
        topic = self.catalog.topic(event.topic)
        if scheduled:
            deliveries = [DeliveryView(s.name, DeliveryState.SCHEDULED.value) for s in subs]
        else:
            rows = await self.store.delivery_rows(topic, event.partition, event.offset)
            cursors = await self.store.cursors_of(topic, event.partition)
            deliveries = [
                view
                for s in subs
                if (view := self._delivery(s, event, rows.get(s.name), cursors.get(s.name)))
            ]
        return EventView(
            id=event.id,
            topic=event.topic,
            payload=msgspec.Raw(event.payload),
            publish_time=datetime.fromtimestamp(event.publish_ms / 1000, tz=UTC),
            key=event.key,
            attributes=event.attributes,
            deliver_at=_dt(event.deliver_at_ms),
            partition=None if scheduled else event.partition,
            offset=None if scheduled else event.offset,
            priority=lane_of(event.partition, topic.partitions),
            schema_id=event.schema_id,
            deliveries=deliveries,
        )

    def _delivery(
        self, sub: Subscription, event: Event, row: DeliveryRow | None, cursor: CursorState | None
    ) -> DeliveryView | None:
        if cursor is not None and event.offset < cursor.start:
            return None  # published before the subscription existed: not its event
        runner = self.dispatcher.runner(sub.name)
        live = runner.live_state(event.partition, event.offset) if runner else None
        state: DeliveryState
        if live is not None and live is not DeliveryState.PENDING:
            state = live
        elif row is not None and row.state != "blocked":
            state = _ROW_STATES.get(row.state, DeliveryState.RETRYING)  # redrive: retrying soon
        else:
            finished = runner.is_finished(event.partition, event.offset) if runner else None
            if finished is None and cursor is not None:
                finished = event.offset < cursor.cursor or any(
                    lo <= event.offset < hi for lo, hi in cursor.acked
                )
            state = DeliveryState.SUCCEEDED if finished and row is None else DeliveryState.PENDING
            due = event.deliver_at_ms
            if state is DeliveryState.PENDING and due is not None and due > to_ms(self.clock.now()):
                state = DeliveryState.SCHEDULED  # appended ahead of its time, held until due
        attempts = row.attempts if row else (1 if state is DeliveryState.SUCCEEDED else 0)
        if state is DeliveryState.RUNNING:
            attempts = (row.attempts if row else 0) + 1
        return DeliveryView(
            subscription=sub.name,
            state=state.value,
            attempts=attempts,
            next_attempt_at=_dt(row.next_ms) if row and state is DeliveryState.RETRYING else None,
            last_error=row.last_error if row else None,
            history=_history(row, state),
        )

    async def subscription(self, name: str) -> SubscriptionInfo:
        """A subscription with its live figures.

        Raises:
            NotFound: no such subscription.
        """
        sub = self.catalog.subscription(name)
        return SubscriptionInfo(sub, await self._stats(sub, await self._overdue()))

    async def subscriptions(self) -> list[SubscriptionInfo]:
        """Every subscription with its live figures."""
        overdue = await self._overdue()
        return [
            SubscriptionInfo(s, await self._stats(s, overdue)) for s in self.catalog.subscriptions()
        ]

    async def _overdue(self) -> list[OverdueTimers]:
        # Past due and still a timer: every subscription of the topic owes it a delivery.
        return await self.store.overdue_timers(to_ms(self.clock.now()))

    async def _stats(self, sub: Subscription, overdue: list[OverdueTimers]) -> SubscriptionStats:
        # Committed progress covers every partition (those other nodes dispatch included);
        # this node's runner knows its own partitions more recently, and wins for them.
        counts = await self.store.count_rows(sub.name)
        stats = SubscriptionStats(
            retrying=counts.get("retrying", 0) + counts.get("redrive", 0),
            dead=counts.get("dead", 0),
            dropped=counts.get("dropped", 0),
            filtered=counts.get("filtered", 0),
            paused=sub.control.paused,
        )
        topic = self.catalog.topic(sub.topic)
        cursors, _ = await self.store.load_progress(sub)
        ends = await self.store.log_ends(topic)
        runner = self.dispatcher.runner(sub.name)
        mine = runner.partition_backlogs() if runner else {}
        unfinished = runner.oldest_unfinished() if runner else []
        lanes = {lane.value: 0 for lane in Priority}
        for partition, end in enumerate(ends):
            backlog = mine.get(partition)
            state = cursors.get(partition)
            if backlog is None and state is not None:
                done = sum(hi - lo for lo, hi in state.acked)
                backlog = max(0, end - state.cursor - done)
                if state.cursor < end:
                    unfinished.append((partition, state.cursor))
            lanes[lane_of(partition, topic.partitions).value] += backlog or 0
        oldest = _count_overdue(stats, topic, overdue, lanes)
        # Retrying events are unfinished work too (the autoscaler reads this figure).
        stats.backlog = sum(lanes.values()) + stats.retrying
        stats.backlog_by_priority = lanes
        stats.warnings = self._warnings(sub)
        if runner is not None:
            live = runner.stats()
            stats.in_flight = live.in_flight
            stats.held = live.held
            limiter = live.limiter
            stats.concurrency = ConcurrencyView(
                limit=limiter.limit,
                floor=limiter.floor,
                cap=limiter.cap,
                adaptive=limiter.adaptive,
                in_flight=live.in_flight,
                min_rtt_ms=None if limiter.min_rtt is None else limiter.min_rtt * 1000,
                recent_rtt_ms=None if limiter.recent_rtt is None else limiter.recent_rtt * 1000,
            )
        for partition, cursor in unfinished:
            events = await self.store.read_log(topic, partition, cursor, 1)
            if events:
                due = max(events[0].publish_ms, events[0].deliver_at_ms or 0)
                oldest = due if oldest is None else min(oldest, due)
        if oldest is not None:
            stats.oldest_pending_age = max(0.0, self.clock.now() - oldest / 1000)
        return stats

    def _warnings(self, sub: Subscription) -> list[str]:
        if self.pool is None or self.pool.endpoints(sub.lambda_name):
            return []
        return [
            f"no endpoints: lambda {sub.lambda_name!r} has no live endpoint registered, so "
            "nothing is delivered and the backlog grows (start a worker for it)"
        ]


def _count_overdue(
    stats: SubscriptionStats, topic: Topic, overdue: list[OverdueTimers], lanes: dict[str, int]
) -> int | None:
    """Add the topic's overdue timers to the stats and lanes; the oldest one's due time."""
    oldest: int | None = None
    for timers in overdue:
        if timers.topic != topic.name:
            continue
        stats.overdue += timers.count
        lanes[lane_of(timers.partition, topic.partitions).value] += timers.count
        if oldest is None or timers.oldest_due_ms < oldest:
            oldest = timers.oldest_due_ms
    return oldest
