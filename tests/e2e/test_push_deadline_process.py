"""A push's deadline with real processes: a ``conveyor serve`` and a ``conveyor worker`` whose
handlers take 1.5 s on subscriptions with a 1 s push timeout and 3 attempts.

- An ``async`` handler is cancelled at the push's deadline: the event goes dead after its 3
  attempts and no call ever completes after the platform gave it up (before the deadline
  travelled with the push, each of the 3 calls completed, a second and a third run of work
  the platform had already counted as failed).
- A sync handler cannot be stopped: it completes in its thread, but the worker answered by
  the deadline and its late result is ignored; the event goes dead the same way.
- A worker stopped (SIGSTOP) while pushes wait in its socket: the platform gives them up
  (timeouts, connections closed) and retries; when the worker resumes it reads them, sees
  their connections closed, and cancels them, so each event completes once (before, every
  given-up push ran on resume: four completions per event).
"""

from __future__ import annotations

import signal
import time
from collections import Counter

from deadline_lambdas import HANDLER_SECONDS

from conftest import Platform, wait_for
from conveyor.client import Client

SUBS = ("deadline.slow", "deadline.blocking")


def dead(client: Client, ids: list[str]) -> bool:
    states = [d for i in ids for d in client.get_event(i).deliveries]
    return len(states) == len(ids) * len(SUBS) and all(d.state == "dead" for d in states)


def test_a_handler_past_the_push_timeout_never_completes_after_the_platform_gave_up(
    platform: Platform,
) -> None:
    # Given a worker whose handlers take 1.5 s, and pushes that time out after 1 s
    platform.worker("deadline_lambdas:app")
    with Client(platform.url) as client:
        # When three events are published
        ids = [
            r.id for r in client.publish_batch("slow", [{"payload": {"n": n}} for n in range(3)])
        ]

        # Then each goes dead after its three attempts
        wait_for(lambda: dead(client, ids), timeout=30)
        views = [client.get_event(i) for i in ids]
        time.sleep(HANDLER_SECONDS)  # long enough for any call still running to complete

    records = platform.records()
    steps = Counter((r["sub"], r["step"]) for r in records)
    # Every attempt started...
    assert steps[("deadline.slow", "start")] == 9
    # ...and no async call completed: each was cancelled at the push's deadline
    assert steps[("deadline.slow", "done")] == 0
    for view in views:
        by_sub = {d.subscription: d for d in view.deliveries}
        assert by_sub["deadline.slow"].attempts == 3
        assert "deadline (cancelled)" in (by_sub["deadline.slow"].last_error or "")
        # The sync handler's calls ran on in their threads; the worker answered without them
        assert by_sub["deadline.blocking"].attempts == 3
        assert "still running in its thread" in (by_sub["deadline.blocking"].last_error or "")


def test_pushes_given_up_while_the_worker_was_stopped_do_not_run_when_it_resumes(
    platform: Platform,
) -> None:
    # Given a worker whose handler takes 0.3 s (push timeout 1 s), stopped
    worker = platform.worker("deadline_lambdas:app", "--ttl", "60")
    with Client(platform.url) as client:
        worker.popen.send_signal(signal.SIGSTOP)
        try:
            # When events are pushed to it and time out, again and again, for 3 s
            results = client.publish_batch("quick", [{"payload": {"n": n}} for n in range(5)])
            ids = [r.id for r in results]
            time.sleep(3)
        finally:
            worker.popen.send_signal(signal.SIGCONT)

        # Then, once it resumes, every event succeeds...
        def succeeded() -> bool:
            states = [d.state for i in ids for d in client.get_event(i).deliveries]
            return states == ["succeeded"] * len(ids)

        wait_for(succeeded, timeout=30)
        attempts = [client.get_event(i).deliveries[0].attempts for i in ids]
        time.sleep(1)  # long enough for any given-up push still running to complete

    # ...after timed-out attempts, yet each completed exactly once: the pushes the platform
    # had given up were cancelled when the worker read them
    assert min(attempts) > 1
    done = Counter(r["id"] for r in platform.records() if r["step"] == "done")
    assert done == Counter(ids)
