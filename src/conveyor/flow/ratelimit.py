"""A token bucket: the rate limit of a subscription's pushes.

Tokens accrue at ``rate`` per second up to ``burst``, the bucket's size; each event pushed
takes one. The bucket starts full and is filled lazily: every call first adds the tokens
earned since the previous call, so nothing runs between calls and nothing needs a timer.

Invariants:

* ``0 <= tokens <= burst``; only whole tokens are granted.
* A change of ``burst`` takes effect at once: the tokens are clamped to a smaller one, and
  grow by the difference to a larger one.
* Over any span ``[t0, t1]`` the bucket grants at most ``burst + rate * (t1 - t0)`` tokens,
  plus whatever was refunded in it; a caller that takes at every :meth:`TokenBucket.next_at`
  gets ``burst + floor(rate * (t1 - t0))`` from a full bucket (float rounding aside: a
  count within ``TOKEN_SLACK`` below a whole number counts as that number).
* Time never runs backwards for the bucket: a ``now`` earlier than one already seen counts
  as that one, so it neither earns nor loses tokens.
* Pure and deterministic: no I/O, no clock; time arrives only as ``now`` arguments (seconds,
  any origin, epoch seconds included).
"""

from __future__ import annotations

import math

TOKEN_SLACK = 1e-9  # a count this close below a whole number is that number (float drift)


class TokenBucket:
    """Tokens at ``rate`` per second, at most ``burst`` at once; starts full.

    Args:
        rate: tokens earned per second (``> 0``).
        burst: the bucket's size, the most tokens granted at once (``>= 1``).
        now: the current time in seconds.

    Raises:
        ValueError: ``rate`` is not a positive finite number, or ``burst < 1``.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        _check(rate, burst)
        self._rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._last = now

    @property
    def rate(self) -> float:
        """Tokens earned per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """The bucket's size."""
        return self._burst

    def configure(self, rate: float, burst: int, now: float) -> None:
        """Change the rate and size at run time; a new size takes effect at once.

        Tokens earned until ``now`` are earned at the old rate. A smaller bucket clamps the
        tokens to its size; a larger one adds the difference, so the tokens spent recently
        stay spent and the new headroom is there at once (keeping only the old tokens would
        leave a raised burst unusable until the bucket refilled at the rate).

        Raises:
            ValueError: ``rate`` is not a positive finite number, or ``burst < 1``.
        """
        _check(rate, burst)
        self._refill(now)
        grown = max(0, burst - self._burst)
        self._rate = rate
        self._burst = burst
        self._tokens = min(self._tokens + grown, float(burst))

    def take(self, want: int, now: float) -> int:
        """Take up to ``want`` tokens.

        Returns:
            ``min(want, whole tokens available)``; these are consumed.

        Raises:
            ValueError: ``want < 0``.
        """
        if want < 0:
            raise ValueError(f"want must be >= 0: {want!r}")
        self._refill(now)
        granted = min(want, _whole(self._tokens))
        self._tokens = max(0.0, self._tokens - granted)
        return granted

    def refund(self, n: int, now: float) -> None:
        """Give back ``n`` tokens that were taken but not used (the bucket stays at most full).

        Raises:
            ValueError: ``n < 0``.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0: {n!r}")
        self._refill(now)
        self._tokens = min(float(self._burst), self._tokens + n)

    def next_at(self, now: float) -> float:
        """When the next whole token is available: ``now`` if one is.

        :meth:`take` at the returned time grants at least one token (unless the bucket is
        taken from or reconfigured in between).
        """
        start = self._refill(now)
        if _whole(self._tokens) >= 1:
            return now
        at = start + (1.0 - self._tokens) / self._rate
        # Rounding `at` may land a hair short of the whole token; step to the first float
        # at which the refill of a later call reaches it.
        while _whole(self._earned(at)) < 1:
            at = math.nextafter(at, math.inf)
        return at

    def tokens(self, now: float) -> float:
        """The tokens in the bucket at ``now``, fractions included."""
        self._refill(now)
        return self._tokens

    def _refill(self, now: float) -> float:
        """Add the tokens earned until ``now``; returns the bucket's time (never earlier)."""
        if now > self._last:
            self._tokens = self._earned(now)
            self._last = now
        return self._last

    def _earned(self, now: float) -> float:
        return min(float(self._burst), self._tokens + (now - self._last) * self._rate)


def _whole(tokens: float) -> int:
    return math.floor(tokens + TOKEN_SLACK)


def _check(rate: float, burst: int) -> None:
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate must be a positive number of tokens per second: {rate!r}")
    if burst < 1:
        raise ValueError(f"burst must be >= 1: {burst!r}")
