"""The fault suite's checker (faults/check.py) on journals and calls written by hand: each
figure counts what it says, so that a run reporting 0 means none was seen."""

from __future__ import annotations

import pytest
from faults.check import Result, check, recoveries
from faults.driver import Publish, rfc3339_ms
from faults.records import Call, Fault

T = 1_000_000.0  # a wall time, epoch seconds


def acked(seq: int, *, key: str = "k", due: float | None = None, ids: int = 1) -> Publish:
    p = Publish(f"{key}-{seq}", key, seq, None if due is None else round(due * 1000), T + seq)
    p.ids = {f"e-{key}-{seq}-{n}" for n in range(ids)}
    p.acked_at = T + seq + 0.01
    return p


def call(p: Publish, entered: float, *, copy: int = 0, pid: int = 1) -> Call:
    return Call(f"e-{p.key}-{p.seq}-{copy}", p.idem, p.key, p.seq, p.deliver_at_ms, entered, 1, pid)


def checked(journal: list[Publish], calls: list[Call]) -> Result:
    return check(Result("hand-written"), journal, calls)


def test_every_acknowledged_event_handled_once_in_order_and_on_time_is_a_clean_run() -> None:
    # Given three events of one key, the last due at T + 5, each handled once, in order
    journal = [acked(0), acked(1), acked(2, due=T + 5)]
    calls = [call(journal[0], T + 1), call(journal[1], T + 2), call(journal[2], T + 5)]
    # When checked
    result = checked(journal, calls)
    # Then nothing is reported
    assert result.ok
    assert (result.acked, result.calls, result.duplicates) == (3, 3, 0)


def test_an_acknowledged_event_never_handled_is_lost() -> None:
    journal = [acked(0), acked(1)]
    result = checked(journal, [call(journal[0], T + 1)])
    assert result.lost == 1
    assert not result.ok


def test_an_event_handled_twice_is_a_duplicate_not_a_failure() -> None:
    journal = [acked(0)]
    result = checked(journal, [call(journal[0], T + 1), call(journal[0], T + 2, pid=2)])
    assert result.duplicates == 1
    assert result.ok


def test_an_event_handled_before_an_earlier_one_of_its_key_is_an_order_violation() -> None:
    # Given seq 2 handled before seq 1 (seq 0 first); another key's order is its own
    journal = [acked(0), acked(1), acked(2), acked(0, key="other")]
    calls = [
        call(journal[0], T + 1),
        call(journal[2], T + 2),
        call(journal[1], T + 3),
        call(journal[3], T + 0.5),
    ]
    # Then one violation: the one that overtook
    result = checked(journal, calls)
    assert result.order_violations == 1
    assert result.examples["order violations"] == ["k: seq 2 ran 1.000 s before seq 1"]


def test_a_call_that_ran_a_millisecond_before_deliver_at_is_early() -> None:
    journal = [acked(0, due=T + 5), acked(1, due=T + 6)]
    calls = [call(journal[0], T + 4.999), call(journal[1], T + 6)]
    result = checked(journal, calls)
    assert result.early == 1


def test_one_idempotency_key_with_two_event_ids_is_stored_twice() -> None:
    # Given a publish acknowledged with two ids (two nodes each stored it), and another
    # acknowledged once whose calls show a second id
    twice = acked(0, ids=2)
    once_acked = acked(1)
    calls = [
        call(twice, T + 1),
        call(twice, T + 1.1, copy=1),
        call(once_acked, T + 2),
        call(once_acked, T + 2.1, copy=7),
    ]
    result = checked([twice, once_acked], calls)
    assert result.stored_twice == 2


def test_ambiguous_publishes_that_were_stored_are_counted_apart() -> None:
    # Given a publish whose unanswered try was stored (the retry's answer said duplicate),
    # one never answered but handled, and one refused on every try but handled
    retried = acked(0)
    retried.ambiguous, retried.duplicate_ack = 1, True
    unanswered = Publish("k-1", "k", 1, None, T + 1, ambiguous=3)
    refused = Publish("k-2", "k", 2, None, T + 2, refused=3, errors=["503"])
    calls = [call(retried, T + 1), call(unanswered, T + 2), call(refused, T + 3)]
    result = checked([retried, unanswered, refused], calls)
    assert (result.ambiguous, result.ambiguous_stored) == (2, 2)
    assert (result.unresolved, result.unresolved_stored, result.refused_stored) == (3 - 1, 2, 1)
    assert result.lost == 0


def test_recovery_is_measured_from_the_restore_to_the_first_ack_and_call() -> None:
    journal = [acked(0), acked(5)]
    calls = [call(journal[0], T + 1), call(journal[1], T + 6, pid=9)]
    result = checked(journal, calls)
    faults = [Fault("kill -9", "serve", T + 2, T + 4), Fault("kill -9", "worker 0", T, T + 1, 9)]
    recoveries(result, faults, journal, calls)
    assert result.recovery_publish == [pytest.approx(1.01)]
    assert result.recovery_delivery == [pytest.approx(2.0), pytest.approx(5.0)]


def test_deliver_at_is_written_exactly_to_the_millisecond() -> None:
    assert rfc3339_ms(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert rfc3339_ms(1_700_000_000_007) == "2023-11-14T22:13:20.007Z"
