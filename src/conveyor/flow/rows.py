"""What a runner writes down about an event: delivery rows, attempts, dead-letter copies.

Pure functions of their arguments (no I/O, no state): the settling part (``flow/settling.py``)
decides when, these say what.
"""

from __future__ import annotations

from conveyor.clock import to_ms
from conveyor.delivery.push import Result
from conveyor.model import (
    Attempt,
    AttemptOutcome,
    DeliveryState,
    Event,
    Topic,
    lane_of,
    log_partition,
)
from conveyor.store.base import DeliveryRow, NewEvent

# What a row's state says of its event, as the status API reports it.
ROW_STATES = {
    "retrying": DeliveryState.RETRYING,
    "blocked": DeliveryState.PENDING,
    "dead": DeliveryState.DEAD,
    "succeeded": DeliveryState.SUCCEEDED,
    "dropped": DeliveryState.DROPPED,
    "filtered": DeliveryState.FILTERED,
}


def new_row(event: Event, state: str, updated_ms: int) -> DeliveryRow:
    """A fresh row for an event, with no attempts."""
    return DeliveryRow(
        event.partition, event.offset, event.key, state, 0, None, None, [], updated_ms
    )


def attempt_of(
    attempt: int, result: Result, started: float, now: float, *, last: bool = False
) -> Attempt:
    """The history entry of one attempt, pushed at ``started`` and answered at ``now``."""
    # The last failure of an event that goes dead reads `dead`, unless the lambda said
    # `fatal` (which says why).
    outcome = AttemptOutcome(result.outcome)
    if last and outcome is AttemptOutcome.RETRY:
        outcome = AttemptOutcome.DEAD
    return Attempt(attempt, to_ms(started), outcome, result.error, to_ms(now) - to_ms(started))


def dead_letter_copy(
    subscription: str, source: Topic, dlq: Topic, event: Event, now_ms: int
) -> NewEvent:
    """The copy of a dead event that goes to the dead-letter topic ``dlq``: same key and
    payload, in the same priority lane, with attributes naming where it died."""
    from conveyor._ids import new_id
    from conveyor.frontend.partitioning import partition_for

    attributes = dict(event.attributes or {})
    attributes.update(
        {
            "conveyor.dead_letter.subscription": subscription,
            "conveyor.dead_letter.topic": event.topic,
            "conveyor.dead_letter.event_id": event.id,
        }
    )
    return NewEvent(
        new_id(now_ms),
        log_partition(
            partition_for(event.key, dlq.partitions, event.offset),
            lane_of(event.partition, source.partitions),
            dlq.partitions,
        ),
        event.key,
        attributes,
        event.payload,
        now_ms,
        None,
        False,
    )
