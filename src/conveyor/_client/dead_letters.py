"""The dead-letter methods of :class:`~conveyor.AsyncClient`: list, read, redrive, purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from conveyor._client.dlq import listing_query, selection
from conveyor._client.http import HttpSession
from conveyor.wire.dead_letters import DEFAULT_PAGE, DeadLetter, DeadLetterCount, DeadLetterPage

__all__ = ["DeadLetterMethods"]

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_DEAD_LETTER_PAGE = msgspec.json.Decoder(DeadLetterPage)
_DEAD_LETTER = msgspec.json.Decoder(DeadLetter)
_COUNT = msgspec.json.Decoder(DeadLetterCount)


class DeadLetterMethods:
    """A subscription's dead letters: list, read, redrive, purge.

    Mixed into :class:`AsyncClient`.
    """

    _http: HttpSession

    async def dead_letters(
        self,
        subscription: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> DeadLetterPage:
        """Read a page of a subscription's dead letters, by partition and offset.

        Args:
            subscription: the subscription's name.
            since: only those that went dead at or after this time (timezone-aware).
            until: only those that went dead before this time (timezone-aware).
            error: only those whose last error contains this text, ignoring case.
            after: the ``next`` of the page before, for the page after it.
            limit: dead letters at most in the page (1 to 1,000).

        Raises:
            ValueError: ``since`` or ``until`` is naive.
            NotFound: there is no such subscription.
            InvalidRequest: a value breaks a rule (``field`` is ``/query/<name>``).

        Returns:
            The page: its ``items`` (without their history) and the ``next`` cursor, which
            is ``None`` on the last page.
        """
        query = listing_query(since=since, until=until, error=error, after=after, limit=limit)
        answer = await self._http.request(
            "GET", ["subscriptions", subscription, "dead-letters"], query=query
        )
        return self._http.decode(answer, _DEAD_LETTER_PAGE)

    async def dead_letter(self, subscription: str, event_id: str) -> DeadLetter:
        """Read one dead letter with its payload and whole attempt history.

        Raises:
            NotFound: no such subscription or event, or the event is not dead for the
                subscription (it never was, or was redriven or purged).

        Returns:
            The dead letter.
        """
        answer = await self._http.request(
            "GET", ["subscriptions", subscription, "dead-letters", event_id]
        )
        return self._http.decode(answer, _DEAD_LETTER)

    async def redrive(
        self,
        subscription: str,
        event_ids: Sequence[str] | None = None,
        *,
        all: bool = False,  # the wire's name (shadows the builtin in this method only)
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
    ) -> DeadLetterCount:
        """Send dead letters back to their subscription, delivered again from attempt 1.

        Dead letters published before the subscription's :meth:`purge` stay dead (the purge
        would drop them unpushed at once); ``before_purge`` counts them.

        Args:
            subscription: the subscription's name.
            event_ids: these dead letters; those no longer dead are skipped.
            all: every dead letter instead, narrowed by ``since``, ``until`` and ``error``.
            since: with ``all``: only those that went dead at or after this time.
            until: with ``all``: only those that went dead before this time.
            error: with ``all``: only those whose last error contains this text, ignoring
                case.

        Raises:
            ValueError: neither ``event_ids`` nor ``all``, or both, or an empty
                ``event_ids``, or a filter with ``event_ids``, or a naive time.
            NotFound: there is no such subscription.
            InvalidRequest: an id names no event of the subscription's topic (``errors``
                lists each, ``field`` ``/event_ids/<index>``); nothing was sent back.

        Returns:
            How many were sent back (``count``), and how many were left dead for the
            subscription's purge (``before_purge``).
        """
        chosen = selection(event_ids, all=all, since=since, until=until, error=error)
        answer = await self._http.request(
            "POST", ["subscriptions", subscription, "dead-letters:redrive"], chosen
        )
        return self._http.decode(answer, _COUNT)

    async def purge_dead_letters(
        self,
        subscription: str,
        event_ids: Sequence[str] | None = None,
        *,
        all: bool = False,  # the wire's name (shadows the builtin in this method only)
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
    ) -> int:
        """Drop dead letters: they read ``dropped`` and are never delivered again.

        Takes the arguments of :meth:`redrive`, and raises the same errors.

        Returns:
            How many were dropped.
        """
        chosen = selection(event_ids, all=all, since=since, until=until, error=error)
        answer = await self._http.request(
            "POST", ["subscriptions", subscription, "dead-letters:purge"], chosen
        )
        return self._http.decode(answer, _COUNT).count

    # -- schema registry -------------------------------------------------------------------
