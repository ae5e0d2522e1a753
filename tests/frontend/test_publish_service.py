"""The publish path over each real store: checks, atomic batches, delayed events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import pytest

from conveyor.catalog import Catalog
from conveyor.clock import FakeClock, to_ms
from conveyor.errors import InvalidRequest
from conveyor.frontend.publish import PublishService
from conveyor.metrics import Metrics
from conveyor.model import Event, Topic
from conveyor.node import open_store
from conveyor.store.base import Store
from conveyor.wire.schemas import MAX_ATTRIBUTE_VALUE, MAX_ATTRIBUTES, PublishRequest

TOPIC = Topic(name="orders", partitions=4)


class Told:
    """What the service told its listeners, after each commit."""

    def __init__(self) -> None:
        self.appended: list[Event] = []
        self.timers: list[tuple[int, str]] = []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def told() -> Told:
    return Told()


@pytest.fixture
async def service(store: Store, clock: FakeClock, told: Told) -> PublishService:
    catalog = Catalog(store)
    await catalog.put_topic(TOPIC)
    return PublishService(
        store,
        catalog,
        clock,
        Metrics(),
        on_append=told.appended.extend,
        on_timers=told.timers.extend,
        dedup_window=60,
    )


def req(
    payload: object = 1,
    *,
    key: str | None = None,
    attributes: dict[str, str] | None = None,
    deliver_at: datetime | None = None,
    delay: float | None = None,
) -> PublishRequest:
    return PublishRequest(
        payload=msgspec.Raw(msgspec.json.encode(payload)),
        key=key,
        attributes=attributes,
        deliver_at=deliver_at,
        delay=delay,
    )


async def test_a_deliver_at_between_two_milliseconds_is_rounded_up(
    service: PublishService, clock: FakeClock, told: Told
) -> None:
    # Given a time half a millisecond past a millisecond, 1 s from now
    now_ms = to_ms(clock.now())
    when = datetime.fromtimestamp((now_ms + 1000.5) / 1000, tz=UTC)

    # When an event is published for then
    (result,) = await service.publish("orders", [req(deliver_at=when)], batch=False)

    # Then it is scheduled for the next whole millisecond, never the one before
    assert result.state == "scheduled"
    assert told.timers == [(now_ms + 1001, result.id)]
    assert told.appended == []


async def test_a_delay_counts_from_the_arrival_rounded_up_never_down(
    service: PublishService, clock: FakeClock, told: Told
) -> None:
    # Given a request arriving 0.7 ms past a millisecond
    clock.advance(0.0007)
    arrival = clock.now()

    # When an event is published with a delay of 2 s
    (result,) = await service.publish("orders", [req(delay=2)], batch=False)

    # Then it is due at the next whole millisecond after arrival + 2 s (the truncated arrival
    # would have made it 0.7 ms early)
    ((due_ms, event_id),) = told.timers
    assert event_id == result.id
    assert due_ms == to_ms(arrival) + 1 + 2000
    assert due_ms / 1000 >= arrival + 2


async def test_an_event_due_now_or_in_the_past_is_appended_at_once(
    service: PublishService, clock: FakeClock, told: Told
) -> None:
    # Given a time one second ago
    past = datetime.fromtimestamp(clock.now() - 1, tz=UTC)

    # When an event is published for then, and one with no delay at all
    results = await service.publish("orders", [req(deliver_at=past), req(delay=0)], batch=True)

    # Then both are in the log, pending, and no timer was made
    assert [r.state for r in results] == ["pending", "pending"]
    assert [e.id for e in told.appended] == [r.id for r in results]
    assert told.timers == []


async def test_events_of_one_key_share_a_partition_and_keep_their_order(
    service: PublishService, told: Told
) -> None:
    # When five events of one key are published one by one
    results = [
        (await service.publish("orders", [req(n, key="customer-7")], batch=False))[0]
        for n in range(5)
    ]

    # Then they share a partition, with rising offsets
    assert len({r.partition for r in results}) == 1
    assert [r.offset for r in results] == [0, 1, 2, 3, 4]


async def test_a_batch_with_one_bad_event_stores_nothing_and_tells_no_one(
    service: PublishService, store: Store, told: Told
) -> None:
    # Given a batch whose second event carries too many attributes
    crowd = {f"a{n}": "v" for n in range(MAX_ATTRIBUTES + 1)}
    batch = [req(1), req(2, attributes=crowd), req(3, delay=5)]

    # When it is published
    with pytest.raises(InvalidRequest) as caught:
        await service.publish("orders", batch, batch=True)

    # Then the error names the event and the rule, and nothing was stored or announced
    error = caught.value
    assert (error.index, error.field, error.rule) == (1, "/events/1/attributes", "max_properties")
    assert await store.log_ends(TOPIC) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert await store.due_timers(2**62, 10) == []
    assert (told.appended, told.timers) == ([], [])


async def test_a_too_long_attribute_value_is_named(service: PublishService) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await service.publish(
            "orders", [req(attributes={"trace": "x" * (MAX_ATTRIBUTE_VALUE + 1)})], batch=False
        )
    assert (caught.value.field, caught.value.rule, caught.value.index) == (
        "/attributes/trace",
        "max_length",
        None,
    )
