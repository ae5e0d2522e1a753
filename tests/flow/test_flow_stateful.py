"""Flow control under random operations: a Hypothesis state machine over a real Node.

Each example runs a Node on a SQLite file in a temporary directory (the store port has its
own PostgreSQL tests) with a FakeClock, pushing over real HTTP to a PushEndpoint on
127.0.0.1, for one ordered subscription with a small retry policy (3 attempts, backoffs of 1
and 2 s with the jitter pinned to the top of its range). Its rules publish events (keys from a
small set or none, delays of 0-5 s or none, three priorities), move the clock, pause and
resume the subscription, and restart the node on the same store. Every payload carries its
own script (fail N times, by a retry result or by leaving the event out of the answer, then
succeed or answer fatal), so every event's end is known when it is published.

After every step, on everything the endpoint saw so far:

* no event arrived before its ``deliver_at``, and no retry before its backoff expired;
* attempts arrive in order, never past the policy; an event arrives again after its last
  answer, or repeats an attempt, only across a restart (at least once), and is counted;
* per key, in publish order: no event of a key arrived while an earlier one of that key was
  unfinished (not yet answered success, fatal, or its last failure). "Earlier" is the order
  the events entered the log: publish order for events due at once; a delayed event enters
  when its timer fires (``timer_lead_seconds`` before it is due, several at once by due
  time, then publish order). Priorities are lanes, each with its own log partitions, so a
  key's order is kept within its priority (the scope of this check);
* while paused, nothing is pushed beyond the pushes already out when the pause began.

At the end the machine resumes, moves the clock until every event has had its last answer,
and checks that each event's view reads ``succeeded`` or ``dead`` with the attempts and history
its script says: none lost, none stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from node_harness import LAMBDA, SUB, TOPIC, advance_to, delivery, highest, publish, request
from push_double import PushEndpoint, Reply

from conveyor.clock import FakeClock, to_ms
from conveyor.flow.retry import backoff_bound
from conveyor.model import AttemptOutcome, Outcome, Priority, RetryPolicy, Subscription, Topic
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.wire.push import PushRequest, PushResult

POLICY = RetryPolicy(max_attempts=3, min_backoff=1, max_backoff=4, multiplier=2)
KEYS = (None, "a", "b", "c")
LEAD_MS = round(NodeSettings().timer_lead_seconds * 1000)
QUIET = 0.03  # real seconds without any change before the node counts as settled
SETTLE_WITHIN = 10.0  # real seconds a settle may take before the node counts as stuck
DRAIN_STEP_MS = 1000  # the clock's step while draining at the end
DRAIN_ROUNDS = 400  # at most this many steps (fake seconds) to finish every event
ENDPOINT_TTL = 10.0**7  # fake seconds: the endpoint never expires in a run

T = TypeVar("T")


class Fate(msgspec.Struct, frozen=True):
    """An event's payload: its number and its script.

    Attributes:
        seq: unique, in publish order.
        failures: attempts that fail before the last word.
        missing: fail by leaving the event out of the answer (else a retry result).
        fatal: the last word is fatal (else success).
    """

    seq: int
    failures: int
    missing: bool
    fatal: bool

    def answer(self, attempt: int) -> Outcome | None:
        """The answer to ``attempt`` (``None``: left out, which counts as retry)."""
        if attempt <= self.failures:
            return None if self.missing else Outcome.RETRY
        return Outcome.FATAL if self.fatal else Outcome.SUCCESS

    def final(self, attempt: int) -> bool:
        """Whether the answer to ``attempt`` finishes the event."""
        answer = self.answer(attempt)
        return attempt >= POLICY.max_attempts or answer in (Outcome.SUCCESS, Outcome.FATAL)

    def end(self) -> tuple[str, int]:
        """The state the event must end in, and after how many attempts."""
        if self.failures >= POLICY.max_attempts:
            return "dead", POLICY.max_attempts
        return ("dead" if self.fatal else "succeeded"), self.failures + 1

    def history(self) -> list[AttemptOutcome]:
        """The outcomes its view must list: a first-time success too (known, not recorded);
        the last failure of an event out of attempts reads dead."""
        _, attempts = self.end()
        outcomes = [AttemptOutcome(self.answer(n) or Outcome.RETRY) for n in range(1, attempts + 1)]
        if outcomes[-1] is AttemptOutcome.RETRY:
            outcomes[-1] = AttemptOutcome.DEAD
        return outcomes


@dataclass
class Planned:
    """An event as published, and where it must stand in its key's order."""

    fate: Fate
    id: str
    key: str | None
    priority: Priority
    publish_ms: int
    due_ms: int | None  # deliver_at: publish time + delay
    entered: tuple[int, int, int] | None = None  # (step, due or 0, seq) it entered the log

    @property
    def delayed(self) -> bool:
        return self.due_ms is not None and self.due_ms > self.publish_ms


@dataclass
class Arrival:
    """One event in one push, as the endpoint saw and answered it."""

    seq: int
    attempt: int
    at_ms: int
    partition: int
    offset: int
    deliver_at_ms: int | None
    push: int
    arrived: int  # position in the endpoint's sequence of arrivals and answers
    restarts: int  # node restarts before it arrived
    answered: int | None = None
    outcome: Outcome | None = None
    final: bool = False


class ScriptedEndpoint(PushEndpoint):
    """The push endpoint, answering each event by its script and journaling everything.

    Arrivals and answers share one counter, so "B arrived after A's last answer" is a
    comparison of two numbers.
    """

    def __init__(self, clock: FakeClock, hold: float) -> None:
        super().__init__(clock, self._answer, hold=hold)
        self.journal: list[Arrival] = []
        self.restarts = 0
        self._counter = 0
        self._open: dict[tuple[int, str], Arrival] = {}

    def _tick(self) -> int:
        self._counter += 1
        return self._counter

    def _arrive(self, events: int, keys: list[str]) -> None:
        super()._arrive(events, keys)
        for received in self.received[len(self.received) - events :]:
            event = received.event
            fate = msgspec.json.decode(event.payload, type=Fate)
            arrival = Arrival(
                fate.seq,
                event.attempt,
                to_ms(received.at),
                event.partition,
                event.offset,
                event.deliver_at_ms,
                self.pushes,
                self._tick(),
                self.restarts,
            )
            self.journal.append(arrival)
            self._open[(self.pushes, event.id)] = arrival

    def _answer(self, push: PushRequest, number: int) -> Reply:
        results = []
        for event in push.events:
            fate = msgspec.json.decode(event.payload, type=Fate)
            arrival = self._open.pop((number, event.id))
            arrival.answered = self._tick()
            arrival.outcome = fate.answer(event.attempt)
            arrival.final = fate.final(event.attempt)
            if arrival.outcome is not None:
                results.append(PushResult(event.id, arrival.outcome, error="scripted"))
        return Reply(results=results)


class Problems(logging.Handler):
    """Collects errors logged by the platform (a runner that crashed and was rebuilt)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _retry_wait_ms(failed_attempt: int) -> int:
    # The jitter is pinned to the top of its range: the wait is the backoff's bound.
    return round(backoff_bound(POLICY, failed_attempt) * 1000)


def _first(journal: list[Arrival]) -> dict[tuple[int, int], Arrival]:
    """The first arrival of each (event, attempt)."""
    first: dict[tuple[int, int], Arrival] = {}
    for arrival in journal:
        first.setdefault((arrival.seq, arrival.attempt), arrival)
    return first


def _finished_at(journal: list[Arrival]) -> dict[int, int]:
    """For each finished event, the position of its first last answer."""
    done: dict[int, int] = {}
    for arrival in journal:
        if arrival.final and arrival.answered is not None:
            done[arrival.seq] = min(done.get(arrival.seq, arrival.answered), arrival.answered)
    return done


class FlowMachine(RuleBasedStateMachine):
    """One Node, one ordered subscription, random publishes, failures, pauses, restarts."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-stateful-"))
        self.clock = FakeClock()
        self.now_ms = to_ms(self.clock.now())
        self.endpoint: ScriptedEndpoint | None = None
        self.node: Node | None = None
        self.planned: dict[int, Planned] = {}
        self.step = 0
        self.paused = False
        self.pause_mark: int | None = None  # journal length once in-flight pushes settled
        self.duplicates = 0
        self.unfound = 0  # reads that found an acknowledged event neither logged nor pending
        self.broken = False
        self.fired: set[int] = set()  # delayed events seen out of the timer store
        self.problems = Problems()
        logging.getLogger("conveyor").addHandler(self.problems)

    # -- plumbing ---------------------------------------------------------------------------
    def _run(self, coro: Coroutine[object, object, T]) -> T:
        try:
            return self.loop.run_until_complete(coro)
        except BaseException:
            self.broken = True
            raise

    def _check(self, check: Callable[[], None]) -> None:
        try:
            check()
        except BaseException:
            self.broken = True
            raise

    @property
    def live(self) -> Node:
        assert self.node is not None
        return self.node

    @property
    def ep(self) -> ScriptedEndpoint:
        assert self.endpoint is not None
        return self.endpoint

    async def _start_node(self) -> None:
        settings_ = NodeSettings(store=str(self.dir / "c.db"), cluster=False)
        node = Node(settings_, clock=self.clock, jitter=highest)
        await node.start()
        self.node = node
        await node.register_endpoint(LAMBDA, "e1", self.ep.url, ttl=ENDPOINT_TTL, concurrency=64)

    async def _settle(self) -> None:
        """Wait (bounded) until due timers have fired and the node is quiet with nothing out."""
        deadline = time.monotonic() + SETTLE_WITHIN
        await self._until_fired(deadline)
        last: object = None
        quiet_since = time.monotonic()
        while True:
            runner = self.live.dispatcher.runner(SUB)
            stats = runner.stats() if runner is not None else None
            figures = None if stats is None else (stats.backlog, stats.retrying, stats.held)
            ready = runner is not None and runner.loaded.is_set() and runner.in_flight == 0
            snapshot = (self.ep.pushes, len(self.ep.journal), figures, ready)
            now = time.monotonic()
            if snapshot != last:
                last, quiet_since = snapshot, now
            elif ready and now - quiet_since >= QUIET:
                return
            if now > deadline:
                raise AssertionError(f"the node did not settle in {SETTLE_WITHIN}s: {snapshot}")
            await asyncio.sleep(0.002)

    async def _until_fired(self, deadline: float) -> None:
        """Every delayed event whose timer is due (lead included) has left the timer store."""
        for planned in self.planned.values():
            seq = planned.fate.seq
            if seq in self.fired or planned.entered is None or not planned.delayed:
                continue
            while True:
                # None: read while the timer fired (the log, then the timers, are read apart);
                # an event truly lost is caught by the views checked at the end.
                found = await self.live.store.find_event(planned.id)
                self.unfound += found is None
                if found is not None and not found[1]:
                    self.fired.add(seq)
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"the timer of event {seq} did not fire")
                await asyncio.sleep(0.002)

    async def _set_paused(self, paused: bool) -> None:
        sub = self.live.catalog.subscription(SUB)
        await self.live.catalog.set_control(
            SUB, msgspec.structs.replace(sub.control, paused=paused)
        )
        self.paused = paused

    def _advance(self, ms: int) -> None:
        self.now_ms += ms
        advance_to(self.clock, self.now_ms / 1000)
        for planned in self.planned.values():
            due = planned.due_ms
            if planned.entered is None and due is not None and due - LEAD_MS <= self.now_ms:
                planned.entered = (self.step, due, planned.fate.seq)

    # -- rules ------------------------------------------------------------------------------
    @initialize(
        partitions=st.integers(1, 2),
        max_concurrency=st.integers(1, 4),
        max_batch=st.integers(1, 3),
        adaptive=st.booleans(),
        hold=st.sampled_from([0.0, 0.003]),
    )
    def start(
        self, partitions: int, max_concurrency: int, max_batch: int, adaptive: bool, hold: float
    ) -> None:
        async def go() -> None:
            self.endpoint = ScriptedEndpoint(self.clock, hold)
            await self.endpoint.__aenter__()
            await self._start_node()
            await self.live.catalog.put_topic(Topic(name=TOPIC, partitions=partitions))
            sub = Subscription(
                name=SUB,
                topic=TOPIC,
                lambda_name=LAMBDA,
                ordered=True,
                max_concurrency=max_concurrency,
                max_batch=max_batch,
                adaptive=adaptive,
                retry=POLICY,
            )
            await self.live.catalog.put_subscription(sub)

        self._run(go())

    @rule(
        events=st.lists(
            st.tuples(
                st.sampled_from(KEYS),
                st.none() | st.integers(0, 20).map(lambda q: q / 4),  # delay, quarter seconds
                st.sampled_from(Priority),
                st.sampled_from([0, 0, 1, 2, POLICY.max_attempts]),  # failures
                st.booleans(),  # missing
                st.integers(0, 3).map(lambda n: n == 3),  # fatal, one time in four
            ),
            min_size=1,
            max_size=4,
        )
    )
    def publish_events(
        self, events: list[tuple[str | None, float | None, Priority, int, bool, bool]]
    ) -> None:
        self.step += 1
        first = len(self.planned)
        fates = [
            Fate(first + i, failures, missing, fatal)
            for i, (_, _, _, failures, missing, fatal) in enumerate(events)
        ]
        requests = [
            request(fate, key=key, delay=delay, priority=priority)
            for fate, (key, delay, priority, *_) in zip(fates, events, strict=True)
        ]

        async def go() -> None:
            ids = await publish(self.live, *requests)
            for fate, event_id, (key, delay, priority, *_) in zip(fates, ids, events, strict=True):
                due = None if delay is None else self.now_ms + math.ceil(delay * 1000)
                planned = Planned(fate, event_id, key, priority, self.now_ms, due)
                if not planned.delayed:
                    planned.entered = (self.step, 0, fate.seq)
                elif due is not None and due - LEAD_MS <= self.now_ms:
                    planned.entered = (self.step, due, fate.seq)  # fired at once, after the rest
                self.planned[fate.seq] = planned
            await self._settle()

        self._run(go())

    @rule(ms=st.integers(0, 3000))
    def advance_clock(self, ms: int) -> None:
        self.step += 1

        async def go() -> None:
            self._advance(ms)
            await self._settle()

        self._run(go())

    @precondition(lambda self: not self.paused)
    @rule()
    def pause(self) -> None:
        self.step += 1

        async def go() -> None:
            await self._set_paused(True)
            runner = self.live.dispatcher.runner(SUB)
            out = runner.in_flight if runner is not None else 0
            before = len(self.ep.journal)
            await self._settle()
            arrived = len(self.ep.journal) - before
            assert arrived <= out, (
                f"{arrived} events arrived after the pause, with only {out} pushes out"
            )
            self.pause_mark = len(self.ep.journal)

        self._run(go())

    @precondition(lambda self: self.paused)
    @rule()
    def resume(self) -> None:
        self.step += 1

        async def go() -> None:
            await self._set_paused(False)
            self.pause_mark = None
            await self._settle()

        self._run(go())

    @rule()
    def restart(self) -> None:
        self.step += 1

        async def go() -> None:
            await self.live.aclose()
            self.node = None
            self.ep.restarts += 1
            await self._start_node()
            await self._settle()

        self._run(go())

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def nothing_went_wrong_inside(self) -> None:
        self._check(self._no_platform_errors)

    @invariant()
    def no_event_arrives_early(self) -> None:
        self._check(self._never_early)

    @invariant()
    def attempts_arrive_in_order_and_repeat_only_across_a_restart(self) -> None:
        self._check(self._attempts_in_order)

    @invariant()
    def each_key_goes_in_log_order_one_event_at_a_time_per_priority(self) -> None:
        self._check(self._key_order)

    @invariant()
    def nothing_new_is_pushed_while_paused(self) -> None:
        self._check(self._paused_quiet)

    def _no_platform_errors(self) -> None:
        assert self.problems.messages == [], self.problems.messages

    def _never_early(self) -> None:
        first = _first(self.ep.journal)
        for arrival in self.ep.journal:
            planned = self.planned[arrival.seq]
            assert arrival.deliver_at_ms == planned.due_ms, (arrival, planned)
            if planned.due_ms is not None:
                assert arrival.at_ms >= planned.due_ms, f"early: {arrival} due {planned.due_ms}"
            if arrival.attempt > 1:
                before = first.get((arrival.seq, arrival.attempt - 1))
                assert before is not None, f"attempt {arrival.attempt} came first: {arrival}"
                due = before.at_ms + _retry_wait_ms(arrival.attempt - 1)
                assert arrival.at_ms >= due, f"retried early: {arrival}, due {due}"

    def _attempts_in_order(self) -> None:
        seen: dict[tuple[int, int], Arrival] = {}
        finished: dict[int, Arrival] = {}
        duplicates = 0
        for arrival in self.ep.journal:
            assert 1 <= arrival.attempt <= POLICY.max_attempts, arrival
            ref = (arrival.seq, arrival.attempt)
            earlier = finished.get(arrival.seq) or seen.get(ref)
            if earlier is not None:
                # At least once: a delivery repeats only when the node restarted after it.
                assert arrival.restarts > earlier.restarts, f"again: {arrival} after {earlier}"
                duplicates += 1
            seen.setdefault(ref, arrival)
            if arrival.final:
                finished.setdefault(arrival.seq, arrival)
        self.duplicates = duplicates

    def _key_order(self) -> None:
        scopes: dict[tuple[str, Priority], list[Planned]] = {}
        for planned in self.planned.values():
            if planned.key is not None and planned.entered is not None:
                scopes.setdefault((planned.key, planned.priority), []).append(planned)
        first = _first(self.ep.journal)
        done = _finished_at(self.ep.journal)
        for events in scopes.values():
            events.sort(key=lambda p: p.entered or (0, 0, 0))
            self._scope_in_log_order(events, first)
            for i, later in enumerate(events):
                arrival = first.get((later.fate.seq, 1))
                if arrival is None:
                    continue
                for earlier in events[:i]:
                    end = done.get(earlier.fate.seq)
                    in_order = end is not None and end < arrival.arrived
                    assert in_order, (
                        f"key {later.key!r} ({later.priority}): event {later.fate.seq} arrived "
                        f"while event {earlier.fate.seq} before it was unfinished"
                    )

    @staticmethod
    def _scope_in_log_order(events: list[Planned], first: dict[tuple[int, int], Arrival]) -> None:
        """The log holds a key's events of one priority in one partition, in our order."""
        places = [(p.fate.seq, first.get((p.fate.seq, 1))) for p in events]
        known = [(seq, a.partition, a.offset) for seq, a in places if a is not None]
        assert len({part for _, part, _ in known}) <= 1, f"one key, many partitions: {known}"
        offsets = [offset for _, _, offset in known]
        assert offsets == sorted(offsets), f"the log's order is not publish order: {known}"

    def _paused_quiet(self) -> None:
        if self.paused and self.pause_mark is not None:
            assert self.ep.journal[self.pause_mark :] == [], "pushed while paused"

    # -- the end ----------------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if not self.broken and self.node is not None:
                self._run(self._drain())
                self._run(self._check_views())
        finally:
            logging.getLogger("conveyor").removeHandler(self.problems)
            self._close()
            with contextlib.suppress(InvalidArgument):  # steps replayed by hand, outside a test
                note(f"{len(self.planned)} events; duplicates: {self.duplicates}")
                note(f"reads that found an event nowhere: {self.unfound}")

    async def _drain(self) -> None:
        if self.paused:
            await self._set_paused(False)
            self.pause_mark = None
        for _ in range(DRAIN_ROUNDS):
            done = _finished_at(self.ep.journal)
            if all(seq in done for seq in self.planned):
                break
            self.step += 1
            self._advance(DRAIN_STEP_MS)
            await self._settle()
        for check in (
            self._no_platform_errors,
            self._never_early,
            self._attempts_in_order,
            self._key_order,
        ):
            check()
        done = _finished_at(self.ep.journal)
        stuck = [p.fate for p in self.planned.values() if p.fate.seq not in done]
        assert stuck == [], f"never finished: {stuck}"

    async def _check_views(self) -> None:
        for planned in self.planned.values():
            state, attempts = planned.fate.end()
            deadline = time.monotonic() + SETTLE_WITHIN
            while True:
                view = await delivery(self.live, planned.id)
                if (view.state, view.attempts) == (state, attempts):
                    break
                assert time.monotonic() < deadline, f"{planned.fate}: ends as {view}"
                await asyncio.sleep(0.005)
            outcomes = [a.outcome for a in view.history]
            assert outcomes == planned.fate.history(), (planned.fate, view)
            assert [a.attempt for a in view.history] == list(range(1, len(outcomes) + 1))
        runner = self.live.dispatcher.runner(SUB)
        assert runner is not None
        stats = runner.stats()
        assert (stats.backlog, stats.retrying, stats.held, stats.in_flight) == (0, 0, 0, 0)

    def _close(self) -> None:
        async def close() -> None:
            if self.node is not None:
                await self.node.aclose()
            if self.endpoint is not None:
                await self.endpoint.aclose()

        try:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(close())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)


TestFlowUnderRandomPublishesFailuresPausesAndRestarts = FlowMachine.TestCase
TestFlowUnderRandomPublishesFailuresPausesAndRestarts.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None
)
