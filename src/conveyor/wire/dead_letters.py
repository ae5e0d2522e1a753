"""The dead-letter queue's request and response bodies (msgspec Structs).

A subscription's dead letters are its events that went dead (out of attempts, or fatal). They
can be listed, inspected with their attempt history, sent back to the subscription
(*redrive*: delivered again from attempt 1) or dropped (*purge*). Like :mod:`.schemas`, these
types are shared by the server, the Python client and the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from conveyor.wire.schemas import AttemptView

MAX_PAGE = 1000  # dead letters in one page
DEFAULT_PAGE = 100
MAX_SELECTED = 1000  # event ids in one redrive or purge
MAX_ERROR_TEXT = 1024

ErrorText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ERROR_TEXT)]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


def _param(description: str, **schema: object) -> msgspec.Meta:
    return msgspec.Meta(description=description, extra_json_schema=schema or None)


Time = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class DeadLetterQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The query parameters of a dead-letter listing (each field describes itself)."""

    since: (
        Annotated[Time, _param("Only events that went dead at or after this time (RFC 3339).")]
        | None
    ) = None
    until: (
        Annotated[Time, _param("Only events that went dead before this time (RFC 3339).")] | None
    ) = None
    error: (
        Annotated[ErrorText, _param("Only events whose last error contains this, ignoring case.")]
        | None
    ) = None
    after: (
        Annotated[str, msgspec.Meta(max_length=256), _param("The `next` of the page before.")]
        | None
    ) = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE), _param("Dead letters at most.")] = (
        DEFAULT_PAGE
    )


class DeadLetter(msgspec.Struct, omit_defaults=True):
    """An event that went dead for one subscription.

    Attributes:
        id: the event's id.
        partition: its partition.
        offset: its offset in that partition.
        attempts: deliveries tried before it went dead.
        dead_at: when it went dead.
        publish_time: when it was published.
        payload: its payload, as JSON.
        key: its ordering key.
        attributes: its attributes.
        last_error: the last failure's message.
        history: every attempt recorded (only when one dead letter is asked for).
    """

    id: str
    partition: int
    offset: int
    attempts: int
    dead_at: datetime
    publish_time: datetime
    payload: msgspec.Raw
    key: str | None = None
    attributes: dict[str, str] | None = None
    last_error: str | None = None
    history: list[AttemptView] = []


class DeadLetterPage(msgspec.Struct, omit_defaults=True):
    """One page of a subscription's dead letters, by partition and offset.

    Attributes:
        items: the dead letters.
        next: the cursor of the next page (pass it as ``after``); absent on the last page.
    """

    items: list[DeadLetter]
    next: str | None = None


class DeadLetterSelection(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The dead letters a redrive or a purge applies to: some by id, or all of them.

    Attributes:
        event_ids: these events (those no longer dead are skipped); excludes ``all``.
        all: every dead letter, narrowed by ``since``, ``until`` and ``error``.
        since: with ``all``: only those that went dead at or after this time.
        until: with ``all``: only those that went dead before this time.
        error: with ``all``: only those whose last error contains this text, ignoring case.
    """

    event_ids: (
        Annotated[list[EventId], msgspec.Meta(min_length=1, max_length=MAX_SELECTED)] | None
    ) = None
    all: bool = False
    since: datetime | None = None
    until: datetime | None = None
    error: ErrorText | None = None


class DeadLetterCount(msgspec.Struct, omit_defaults=True):
    """How many dead letters a redrive or a purge moved.

    Attributes:
        count: dead letters sent back (a redrive) or dropped (a purge).
        before_purge: for a redrive, the selected dead letters left dead because they were
            published before the subscription's purge (``subscription purge``), which drops
            such events unpushed: sent back, they would be dropped at once. Purge them, or
            keep them to inspect.
    """

    count: int
    before_purge: int = 0


__all__ = [
    "DeadLetter",
    "DeadLetterCount",
    "DeadLetterPage",
    "DeadLetterQuery",
    "DeadLetterSelection",
]
