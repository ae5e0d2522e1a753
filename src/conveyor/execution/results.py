"""Control signals a handler raises to choose its event's result.

A handler that returns normally succeeds. It raises :class:`Retry` to ask for another attempt
(optionally after a delay) or :class:`Fatal` to say the event can never succeed (it goes to the
dead-letter queue at once). Any other exception is a ``retry`` with the exception as its error.

These are exceptions but not errors: they are not part of the
:class:`~conveyor.errors.ConveyorError` tree, and nothing catches them but the lambda runtime.
"""

from __future__ import annotations

import math


class Retry(Exception):
    """Ask for the event to be delivered again.

    Args:
        reason: why, recorded as the attempt's error.
        after: seconds before the next attempt; ``None`` lets the subscription's retry policy
            choose.

    Raises:
        ValueError: ``after`` is negative or not finite.
    """

    def __init__(self, reason: str = "", *, after: float | None = None) -> None:
        if after is not None and not (math.isfinite(after) and after >= 0):
            raise ValueError(f"Retry(after=...) must be a finite number >= 0, got {after!r}")
        super().__init__(reason)
        self.reason = reason
        self.after = after


class Fatal(Exception):
    """Say the event can never succeed: it is not retried and goes dead at once.

    Args:
        reason: why, recorded as the attempt's error.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


__all__ = ["Fatal", "Retry"]
