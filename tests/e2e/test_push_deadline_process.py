"""A push's deadline with real processes: a ``conveyor serve`` and a ``conveyor worker`` whose
handlers take 1.5 s on subscriptions with a 1 s push timeout and 3 attempts.

- An ``async`` handler is cancelled at the push's deadline: the event goes dead after its 3
  attempts and no call ever completes after the platform gave it up (before the deadline
  travelled with the push, each of the 3 calls completed, a second and a third run of work
  the platform had already counted as failed).
- A sync handler cannot be stopped: it completes in its thread, but the worker answered by
  the deadline and its late result is ignored; the event goes dead the same way.
"""

from __future__ import annotations

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
