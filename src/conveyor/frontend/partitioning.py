"""Which partition an event goes to.

An event with a key goes to ``crc32(key) % partitions``: stable across processes, restarts
and versions (Python's ``hash`` is salted per process and would scatter a key). An event
without a key is spread round-robin by the caller's counter.
"""

from __future__ import annotations

import zlib


def partition_for(key: str | None, partitions: int, counter: int) -> int:
    """The partition of an event.

    Args:
        key: the ordering key, or ``None``.
        partitions: the topic's partition count.
        counter: a running count used to spread keyless events.

    Returns:
        A partition number in ``range(partitions)``.
    """
    if key is None:
        return counter % partitions
    return zlib.crc32(key.encode()) % partitions
