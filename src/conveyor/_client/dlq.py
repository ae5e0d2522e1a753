"""Turn a caller's dead-letter arguments into the wire's query and selection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from conveyor.wire.dead_letters import DeadLetterSelection

__all__ = ["listing_query", "selection"]


def _aware(name: str, when: datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return when.isoformat()


def listing_query(
    *,
    since: datetime | None,
    until: datetime | None,
    error: str | None,
    after: str | None,
    limit: int,
) -> dict[str, str]:
    """The query parameters of a dead-letter listing.

    Raises:
        ValueError: ``since`` or ``until`` is naive.
    """
    values = {
        "since": _aware("since", since),
        "until": _aware("until", until),
        "error": error,
        "after": after,
        "limit": str(limit),
    }
    return {name: value for name, value in values.items() if value is not None}


def selection(
    event_ids: Sequence[str] | None,
    *,
    all: bool,  # the wire's name (shadows the builtin in this function only)
    since: datetime | None,
    until: datetime | None,
    error: str | None,
) -> DeadLetterSelection:
    """The dead letters a redrive or a purge applies to.

    Raises:
        ValueError: neither ``event_ids`` nor ``all``, or both; an empty ``event_ids``;
            ``since``, ``until`` or ``error`` with ``event_ids``; a naive time.
    """
    if event_ids is None and not all:
        raise ValueError("give event_ids, or all=True for every dead letter")
    if event_ids is not None:
        if all:
            raise ValueError("give event_ids or all=True, not both")
        if not event_ids:
            raise ValueError("event_ids is empty")
        if since is not None or until is not None or error is not None:
            raise ValueError("since, until and error narrow all=True; not event_ids")
    _aware("since", since)
    _aware("until", until)
    return DeadLetterSelection(
        event_ids=None if event_ids is None else list(event_ids),
        all=all,
        since=since,
        until=until,
        error=error,
    )
