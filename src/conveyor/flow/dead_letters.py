"""Each subscription's dead-letter queue: list, inspect, redrive, purge.

A dead letter is a delivery row in state ``dead`` (its event stays in the log while the row
lives). A *redrive* moves rows to ``redrive``, with their attempts reset: the runner that
dispatches their partition delivers them again from attempt 1 (their history is kept). A
*purge* moves rows to ``dropped``: the event reads ``dropped`` for the subscription until its
row is past the topic's retention. Both move the rows in one transaction.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from conveyor.catalog import Catalog
from conveyor.clock import Clock, to_ms
from conveyor.errors import InvalidRequest, NotFound
from conveyor.model import DeliveryState, Event, Subscription
from conveyor.store.base import DeliveryRow
from conveyor.store.ports import DeadLetterStorePort
from conveyor.wire.dead_letters import (
    MAX_PAGE,
    DeadLetter,
    DeadLetterCount,
    DeadLetterPage,
    DeadLetterQuery,
    DeadLetterSelection,
)
from conveyor.wire.schemas import AttemptView

OnRedrive = Callable[[str], None]
"""Told a subscription's name once some of its dead letters were sent back to it."""

DEAD = DeliveryState.DEAD.value
DROPPED = DeliveryState.DROPPED.value
REDRIVE = "redrive"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# A cursor's numbers are bounded like every number a request carries (a store's integers).
_Place = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_cursor_decoder = msgspec.json.Decoder(tuple[_Place, _Place])


class DeadLetters:
    """The dead-letter queues of every subscription.

    Args:
        store: the durable store.
        catalog: topics and subscriptions.
        clock: the source of time (stamps the rows moved).
        on_redrive: told a subscription's name after a redrive moved some of its rows, to
            wake the runner that delivers them.
    """

    def __init__(
        self, store: DeadLetterStorePort, catalog: Catalog, clock: Clock, on_redrive: OnRedrive
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._on_redrive = on_redrive

    async def get(self, sub_name: str, event_id: str) -> DeadLetter:
        """One dead letter with its whole attempt history.

        Raises:
            NotFound: no such subscription, no such event, or the event is not dead for the
                subscription (never was, was redriven, or purged).
        """
        sub = self._catalog.subscription(sub_name)
        found = await self._store.find_event(event_id)
        if found is None:
            raise NotFound("event", event_id)
        event, scheduled = found
        row: DeliveryRow | None = None
        if not scheduled and event.topic == sub.topic:
            topic = self._catalog.topic(sub.topic)
            rows = await self._store.delivery_rows(topic, event.partition, event.offset)
            row = rows.get(sub.name)
        if row is None or row.state != DEAD:
            raise _not_dead(sub, event, row)
        return _dead_letter(row, event, history=True)

    async def redrive(self, sub_name: str, selection: DeadLetterSelection) -> DeadLetterCount:
        """Send dead letters back to their subscription, to be delivered from attempt 1.

        A dead letter published before the subscription's purge stays dead and is counted
        apart: the purge drops such events unpushed, so it would be dropped at once.

        Returns:
            How many were sent back (event ids no longer dead are skipped), and how many
            were left dead for the purge.

        Raises:
            NotFound: no such subscription.
            InvalidRequest: the selection is malformed, or an event id names no event of
                the subscription's topic (nothing is moved then).
        """
        purged = self._catalog.subscription(sub_name).control.purged_before_ms
        if purged is None:
            moved, covered = await self._move(sub_name, selection, REDRIVE), 0
        else:
            moved, covered = await self._redrive_after_purge(sub_name, selection, purged)
        if moved:
            self._on_redrive(sub_name)
        return DeadLetterCount(moved, covered)

    async def _redrive_after_purge(
        self, sub_name: str, selection: DeadLetterSelection, purged: int
    ) -> tuple[int, int]:
        """Redrive the selected dead letters published at or after the purge mark; return
        how many moved and how many were left dead for being published before it."""
        sub = self._catalog.subscription(sub_name)
        _check(selection)
        topic = self._catalog.topic(sub.topic)
        if selection.event_ids is None:
            refs = await self._dead_refs(sub, selection)
        else:
            refs = []
            for part, off in await self._refs(sub, selection.event_ids):
                rows = await self._store.delivery_rows(topic, part, off)
                row = rows.get(sub.name)
                if row is not None and row.state == DEAD:
                    refs.append((part, off))
        published = {
            (e.partition, e.offset): e.publish_ms
            for e in await self._store.read_events(topic, refs)
        }
        # (An event gone from the log is sent back as before: its runner buries it again.)
        keep = [ref for ref in refs if published.get(ref, purged) >= purged]
        now_ms = to_ms(self._clock.now())
        moved = await self._store.mark_rows(sub.name, DEAD, REDRIVE, refs=keep, now_ms=now_ms)
        return moved, len(refs) - len(keep)

    async def _dead_refs(
        self, sub: Subscription, selection: DeadLetterSelection
    ) -> list[tuple[int, int]]:
        """Every dead letter ``all=true`` selects (narrowed by its filters), page by page."""
        since_ms, until_ms = _window(selection.since, selection.until, "")
        refs: list[tuple[int, int]] = []
        after: tuple[int, int] | None = None
        while True:
            rows = await self._store.list_rows(
                sub.name,
                DEAD,
                since_ms=since_ms,
                until_ms=until_ms,
                error=selection.error,
                after=after,
                limit=MAX_PAGE,
            )
            refs += [(r.partition, r.offset) for r in rows]
            if len(rows) < MAX_PAGE:
                return refs
            after = refs[-1]

    async def purge(self, sub_name: str, selection: DeadLetterSelection) -> int:
        """Drop dead letters: they read ``dropped`` and are never delivered again.

        Returns:
            How many were dropped (event ids no longer dead are skipped).

        Raises:
            NotFound: no such subscription.
            InvalidRequest: as for :meth:`redrive`.
        """
        return await self._move(sub_name, selection, DROPPED)

    async def _move(self, sub_name: str, selection: DeadLetterSelection, to_state: str) -> int:
        sub = self._catalog.subscription(sub_name)
        _check(selection)
        now_ms = to_ms(self._clock.now())
        if selection.event_ids is None:
            since_ms, until_ms = _window(selection.since, selection.until, "")
            return await self._store.mark_rows(
                sub.name,
                DEAD,
                to_state,
                since_ms=since_ms,
                until_ms=until_ms,
                error=selection.error,
                now_ms=now_ms,
            )
        refs = await self._refs(sub, selection.event_ids)
        return await self._store.mark_rows(sub.name, DEAD, to_state, refs=refs, now_ms=now_ms)

    async def _refs(self, sub: Subscription, event_ids: Sequence[str]) -> list[tuple[int, int]]:
        """The (partition, offset) of each event; scheduled events (never dead) are left out.

        Raises:
            InvalidRequest: some ids name no event of the subscription's topic.
        """
        refs: list[tuple[int, int]] = []
        unknown: list[InvalidRequest] = []
        for index, event_id in enumerate(event_ids):
            found = await self._store.find_event(event_id)
            if found is None or found[0].topic != sub.topic:
                unknown.append(
                    InvalidRequest(
                        f"event {event_id!r} is not an event of topic {sub.topic!r}",
                        field=f"/event_ids/{index}",
                        rule="exists",
                    )
                )
            elif not found[1]:
                refs.append((found[0].partition, found[0].offset))
        if unknown:
            raise InvalidRequest(
                f"{len(unknown)} of the event ids name no event of topic {sub.topic!r} "
                f"(first: {unknown[0].message}); nothing was changed",
                field=unknown[0].field,
                rule="exists",
                errors=unknown,
            )
        return refs

    # Last: in the class body below it, `list` would name this method.
    async def list(self, sub_name: str, query: DeadLetterQuery) -> DeadLetterPage:
        """A page of a subscription's dead letters, by partition and offset.

        Raises:
            NotFound: no such subscription.
            InvalidRequest: a query parameter is malformed (``field`` is ``/query/<name>``).
        """
        sub = self._catalog.subscription(sub_name)
        since_ms, until_ms = _window(query.since, query.until, "/query")
        rows = await self._store.list_rows(
            sub.name,
            DEAD,
            since_ms=since_ms,
            until_ms=until_ms,
            error=query.error,
            after=decode_cursor(query.after),
            limit=query.limit + 1,
        )
        more, rows = len(rows) > query.limit, rows[: query.limit]
        topic = self._catalog.topic(sub.topic)
        found = await self._store.read_events(topic, [(r.partition, r.offset) for r in rows])
        events = {(e.partition, e.offset): e for e in found}
        # An event past retention is gone from the log (only rows older than the sweep that
        # keeps dead letters' events can lose it): there is nothing left to show or send.
        items = [
            _dead_letter(r, event)
            for r in rows
            if (event := events.get((r.partition, r.offset))) is not None
        ]
        return DeadLetterPage(items, encode_cursor(rows[-1]) if more else None)


def encode_cursor(row: DeliveryRow) -> str:
    """The opaque cursor of the page after ``row``."""
    raw = msgspec.json.encode((row.partition, row.offset))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> tuple[int, int] | None:
    """The (partition, offset) a cursor stands for.

    Raises:
        InvalidRequest: it is not a cursor this service made.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        part, off = _cursor_decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError) as e:
        raise InvalidRequest(
            "after is not a cursor from a page of dead letters", field="/query/after", rule="format"
        ) from e
    return part, off


def _check(selection: DeadLetterSelection) -> None:
    """Event ids, or all=true (narrowed by since, until and error); never both."""
    if selection.event_ids is None and not selection.all:
        raise InvalidRequest(
            "give event_ids, or all=true for every dead letter", field="/event_ids", rule="required"
        )
    if selection.event_ids is not None and selection.all:
        raise InvalidRequest("give event_ids or all=true, not both", field="/all", rule="exclusive")
    if selection.event_ids is not None:
        for name in ("since", "until", "error"):
            if getattr(selection, name) is not None:
                raise InvalidRequest(
                    f"{name} narrows all=true; it cannot go with event_ids",
                    field=f"/{name}",
                    rule="exclusive",
                )


def _window(
    since: datetime | None, until: datetime | None, prefix: str
) -> tuple[int | None, int | None]:
    """[since, until) in milliseconds.

    Raises:
        InvalidRequest: a time has no zone, or until is not after since.
    """
    for name, when in (("since", since), ("until", until)):
        if when is not None and when.tzinfo is None:
            raise InvalidRequest(
                f"{name} needs a time zone (e.g. 2030-01-01T00:00:00Z)",
                field=f"{prefix}/{name}",
                rule="format",
            )
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("until must be after since", field=f"{prefix}/until", rule="range")
    return _ms(since), _ms(until)


def _ms(when: datetime | None) -> int | None:
    # Rounded up, exactly: an integer millisecond m is at or after `when` iff m >= this.
    return None if when is None else -((_EPOCH - when) // _MS)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _dead_letter(row: DeliveryRow, event: Event, *, history: bool = False) -> DeadLetter:
    return DeadLetter(
        id=event.id,
        partition=row.partition,
        offset=row.offset,
        attempts=row.attempts,
        dead_at=_dt(row.updated_ms),
        publish_time=_dt(event.publish_ms),
        payload=msgspec.Raw(event.payload),
        key=event.key,
        attributes=event.attributes,
        last_error=row.last_error,
        history=[
            AttemptView(
                attempt=a.attempt,
                at=_dt(a.at_ms),
                outcome=a.outcome,
                duration_ms=a.duration_ms,
                error=a.error,
            )
            for a in row.history
        ]
        if history
        else [],
    )


def _not_dead(sub: Subscription, event: Event, row: DeliveryRow | None) -> NotFound:
    error = NotFound("dead letter", event.id)
    state = f" (its delivery is {row.state})" if row is not None else ""
    error.message = f"event {event.id!r} is not a dead letter of subscription {sub.name!r}{state}"
    error.args = (error.message,)
    return error
