"""Event ids: 128 bits, time-ordered, as 32 lowercase hex digits.

The first 48 bits are the Unix time in milliseconds, so ids sort by creation time and index
inserts land at the right edge of the B-tree; the other 80 bits are random.
"""

from __future__ import annotations

import random
import time

_rand = random.SystemRandom().getrandbits(64)
_rng = random.Random(_rand)


def new_id(now_ms: int | None = None) -> str:
    """Return a new event id."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms & 0xFFFFFFFFFFFF:012x}{_rng.getrandbits(80):020x}"


def is_event_id(text: str) -> bool:
    """Tell whether ``text`` has the shape of an event id."""
    if len(text) != 32:
        return False
    try:
        int(text, 16)
    except ValueError:
        return False
    return text == text.lower()
