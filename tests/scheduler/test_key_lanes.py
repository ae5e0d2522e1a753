"""KeyLanes: per-key FIFO for ordered subscriptions, without head-of-line blocking."""

from __future__ import annotations

from conveyor.model import Event
from conveyor.scheduler.ordering import Admit, KeyLanes, Release


def ev(offset: int, key: str | None) -> Event:
    return Event(f"{offset:032x}", "orders", 0, offset, key, None, b"{}", 0)


def drain(lanes: KeyLanes, key: str) -> list[int]:
    """Finish the key's heads one after another; the offsets released, in order."""
    released: list[int] = []
    while (release := lanes.finished(key)) is not None:
        if release.event is not None:
            released.append(release.event.offset)
        else:
            assert release.offset is not None
            released.append(release.offset)
    return released


def test_keyless_events_flow_freely() -> None:
    # Given lanes
    lanes = KeyLanes()

    # When keyless events are admitted, fail and finish
    verdicts = [lanes.admit(ev(o, None)) for o in range(3)]
    parked = lanes.failed(None)
    released = lanes.finished(None)

    # Then every one goes at once and no lane is kept
    assert verdicts == [Admit.GO] * 3
    assert (parked, released, len(lanes)) == ([], None, 0)


def test_one_event_per_key_is_in_flight_while_other_keys_go() -> None:
    # Given lanes
    lanes = KeyLanes()

    # When two keys' events are admitted interleaved
    verdicts = [lanes.admit(e) for e in (ev(0, "a"), ev(1, "b"), ev(2, "a"), ev(3, "b"))]

    # Then each key's first goes and its second waits
    assert verdicts == [Admit.GO, Admit.GO, Admit.WAIT, Admit.WAIT]
    assert len(lanes) == 2


def test_a_finished_head_releases_the_waiting_followers_in_log_order() -> None:
    # Given a key with a head and two followers waiting
    lanes = KeyLanes()
    for offset in (0, 2, 5):
        lanes.admit(ev(offset, "a"))

    # When its heads finish one after another
    first = lanes.finished("a")

    # Then the followers come one at a time, in order, and the lane is dropped at the end
    assert first == Release(event=ev(2, "a"))
    assert drain(lanes, "a") == [5]
    assert len(lanes) == 0
    assert lanes.admit(ev(9, "a")) is Admit.GO


def test_a_failing_head_parks_its_followers_and_only_its_key() -> None:
    # Given key "a" with a head and two followers waiting, and key "b" with a head
    lanes = KeyLanes()
    for event in (ev(0, "a"), ev(1, "b"), ev(2, "a"), ev(3, "a")):
        lanes.admit(event)

    # When the head of "a" fails
    parked = lanes.failed("a")

    # Then its followers are parked (they need blocked rows), later ones too; "b" flows
    assert [e.offset for e in parked] == [2, 3]
    assert lanes.is_parked("a")
    assert not lanes.is_parked("b")
    assert lanes.admit(ev(4, "a")) is Admit.PARK
    assert lanes.admit(ev(5, "b")) is Admit.WAIT
    assert lanes.finished("b") == Release(event=ev(5, "b"))
    assert lanes.admit(ev(6, "c")) is Admit.GO


def test_parked_followers_are_released_one_at_a_time_in_order_once_the_head_finishes() -> None:
    # Given key "a" parked behind its failing head, with followers 2, 3 and 4
    lanes = KeyLanes()
    for event in (ev(0, "a"), ev(2, "a"), ev(3, "a")):
        lanes.admit(event)
    lanes.failed("a")
    lanes.admit(ev(4, "a"))

    # When the head finishes
    first = lanes.finished("a")

    # Then the first follower is released by offset, and "a" stays parked while others remain
    assert first == Release(offset=2)
    assert lanes.admit(ev(7, "a")) is Admit.PARK
    assert drain(lanes, "a") == [3, 4, 7]
    assert not lanes.is_parked("a")
    assert lanes.admit(ev(8, "a")) is Admit.GO


def test_a_released_follower_that_fails_keeps_the_rest_parked() -> None:
    # Given key "a" parked with followers 1 and 2, and follower 1 released
    lanes = KeyLanes()
    for event in (ev(0, "a"), ev(1, "a"), ev(2, "a")):
        lanes.admit(event)
    lanes.failed("a")
    assert lanes.finished("a") == Release(offset=1)

    # When follower 1 fails in turn
    parked = lanes.failed("a")

    # Then nothing new is parked, and once it finishes, 2 follows
    assert parked == []
    assert lanes.is_parked("a")
    assert drain(lanes, "a") == [2]


def test_a_lane_restored_with_a_retrying_head_waits_for_it() -> None:
    # Given rows of key "a" after a restart: 3 retrying, 5 and 7 blocked
    lanes = KeyLanes()

    # When the lane is restored
    to_load = lanes.restore("a", [3, 5, 7], head_retrying=True)

    # Then nothing is delivered now, new events park behind, and the rest follow in order
    assert to_load is None
    assert lanes.is_parked("a")
    assert lanes.admit(ev(9, "a")) is Admit.PARK
    assert drain(lanes, "a") == [5, 7, 9]


def test_a_lane_restored_without_a_retrying_head_delivers_its_first_row() -> None:
    # Given rows of key "a" after a restart: 3 and 5 blocked, none retrying
    lanes = KeyLanes()

    # When the lane is restored
    to_load = lanes.restore("a", [3, 5], head_retrying=False)

    # Then 3 is delivered now and 5 waits for it
    assert to_load == 3
    assert lanes.admit(ev(6, "a")) is Admit.PARK
    assert drain(lanes, "a") == [5, 6]


def test_finishing_an_unknown_key_releases_nothing() -> None:
    assert KeyLanes().finished("nobody") is None
