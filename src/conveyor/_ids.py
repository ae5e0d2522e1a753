"""Event ids: 128 bits, time-ordered, as 32 lowercase hex digits.

The first 48 bits are the Unix time in milliseconds, so ids sort by creation time and index
inserts land at the right edge of the B-tree; the other 80 bits are random.

Invariant: within one process, ids increase strictly (a ULID's monotonic mode): an id made in
the same millisecond as the last one (or in an earlier one, should the clock step back) is the
last one plus a random step. So events published together keep their order wherever ids break
ties (delayed events due at the same millisecond fire in publish order).
"""

from __future__ import annotations

import random
import time

_rand = random.SystemRandom().getrandbits(64)
_rng = random.Random(_rand)


_RANDOM_BITS = 80
_last = 0  # the last id made, as an integer


def new_id(now_ms: int | None = None) -> str:
    """Return a new event id, greater than every id this process made before."""
    global _last  # noqa: PLW0603 - the process-wide monotonic state is the point
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = ((ms & 0xFFFFFFFFFFFF) << _RANDOM_BITS) | _rng.getrandbits(_RANDOM_BITS)
    if value <= _last:
        value = _last + 1 + _rng.getrandbits(32)
    _last = value
    return f"{value:032x}"


def is_event_id(text: str) -> bool:
    """Tell whether ``text`` has the shape of an event id."""
    if len(text) != 32:
        return False
    try:
        int(text, 16)
    except ValueError:
        return False
    return text == text.lower()
