"""Retry backoff: exponential growth of the bound, full jitter inside it.

For attempt ``n`` (1 = the first delivery that failed) the bound is
``min(max_backoff, min_backoff * multiplier ** (n - 1))`` and the wait is drawn uniformly from
``[min_backoff, bound]`` ("full jitter" as in the AWS architecture note, floored at
``min_backoff`` so that a subscription's minimum is honoured). A lambda's ``retry(after=…)``
overrides the draw, capped at ``max_backoff``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from conveyor.model import RetryPolicy

Jitter = Callable[[float, float], float]
"""Draws a wait in ``[low, high]``; injected so tests can pin the draw."""


def backoff_bound(policy: RetryPolicy, attempt: int) -> float:
    """The largest wait after failed attempt ``attempt`` (1-based), in seconds."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    # Cap the exponent so huge attempt counts cannot overflow a float.
    growth = policy.multiplier ** min(attempt - 1, 1000)
    return min(policy.max_backoff, policy.min_backoff * growth)


def next_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    after: float | None = None,
    jitter: Jitter = random.uniform,
) -> float:
    """Seconds to wait before the attempt that follows failed attempt ``attempt``.

    Args:
        policy: the subscription's retry policy.
        attempt: the failed attempt's number, 1-based.
        after: the lambda's requested wait, if it gave one.
        jitter: draws a value in ``[low, high]``.

    Returns:
        The wait in seconds, never below ``min_backoff`` unless the lambda asked for less,
        never above ``max_backoff``.
    """
    if after is not None:
        return max(0.0, min(after, policy.max_backoff))
    bound = backoff_bound(policy, attempt)
    return jitter(policy.min_backoff, bound) if bound > policy.min_backoff else bound


def exhausted(policy: RetryPolicy, attempts: int, retrying_for: float = 0.0) -> bool:
    """Whether the policy is used up.

    Args:
        policy: the subscription's retry policy.
        attempts: deliveries tried so far.
        retrying_for: seconds from the first attempt to the latest failure.
    """
    if attempts >= policy.max_attempts:
        return True
    limit = policy.max_retry_duration
    return limit is not None and retrying_for >= limit
