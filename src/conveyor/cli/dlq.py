"""``conveyor dlq``: a subscription's dead letters — list, show, redrive, purge.

Times (``--since``, ``--until``) are ISO 8601 (UTC unless a zone is given) or a duration ago
(``90m``, ``2d``). A redrive or a purge needs event ids or ``--all``, never both; it asks no
confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Column, Table

from conveyor.cli.common import AsJson, Server, ask, console, parse_duration, print_json, session
from conveyor.wire.connections import DEFAULT_URL
from conveyor.wire.dead_letters import DeadLetterCount

dlq_app = typer.Typer(
    help="A subscription's dead letters: list, show, redrive, purge.", no_args_is_help=True
)

Subscription = Annotated[str, typer.Argument(help="The subscription's name.")]
Since = Annotated[
    str | None,
    typer.Option(help="Only those gone dead since this time (ISO 8601, or a duration ago: 2h)."),
]
Until = Annotated[
    str | None,
    typer.Option(help="Only those gone dead before this time (ISO 8601, or a duration ago)."),
]
ErrorText = Annotated[
    str | None, typer.Option("--error", help="Only those whose last error contains this.")
]
EventIds = Annotated[list[str] | None, typer.Argument(help="The dead letters' event ids.")]
All = Annotated[bool, typer.Option("--all", help="Every dead letter (narrowed by the filters).")]


def parse_time(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """A time from ISO 8601 (UTC when it has no zone) or a duration before ``now``.

    Raises:
        typer.BadParameter: the text is neither.
    """

    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            ago = parse_duration(text)
        except typer.BadParameter:
            raise typer.BadParameter(
                f"{text!r} is neither an ISO 8601 time nor a duration ago (e.g. 2h)"
            ) from None
        return (now or datetime.now(UTC)) - timedelta(seconds=ago)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return "-"
    line = text.splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


@dlq_app.command("list")
def dlq_list(
    subscription: Subscription,
    since: Since = None,
    until: Until = None,
    error: ErrorText = None,
    limit: Annotated[int, typer.Option(help="Dead letters at most (1 to 1000).")] = 100,
    after: Annotated[str | None, typer.Option(help="The cursor a page before printed.")] = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """List a subscription's dead letters, by partition and offset."""
    with session(server) as client:
        page = client.dead_letters(
            subscription,
            since=parse_time(since),
            until=parse_time(until),
            error=error,
            after=after,
            limit=limit,
        )
    if as_json:
        print_json(page)
        return
    # An id is copied into `show` and `redrive`: it is never wrapped or cut.
    table = Table(
        Column("event", no_wrap=True, min_width=32),
        Column("part:off", no_wrap=True),
        "key",
        "tries",
        Column("dead at", no_wrap=True),
        "last error",
    )
    for d in page.items:
        table.add_row(
            d.id,
            f"{d.partition}:{d.offset}",
            d.key or "-",
            str(d.attempts),
            f"{d.dead_at:%Y-%m-%d %H:%M:%S}",
            _short(d.last_error),
        )
    console.print(table)
    if page.next is not None:
        console.print(f"more: --after {page.next}")


@dlq_app.command("show")
def dlq_show(
    subscription: Subscription,
    event_id: Annotated[str, typer.Argument(help="The dead letter's event id.")],
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Show one dead letter: its payload and every attempt."""
    import msgspec

    dead = ask(server, as_json, lambda client: client.dead_letter(subscription, event_id))
    if dead is None:
        return
    console.print(
        f"[bold]{dead.id}[/]  partition {dead.partition} offset {dead.offset}  "
        f"key {dead.key or '-'}  published {dead.publish_time:%Y-%m-%d %H:%M:%S.%f}"
    )
    console.print(
        f"dead at {dead.dead_at:%Y-%m-%d %H:%M:%S.%f} after {dead.attempts} attempts: "
        f"{dead.last_error or '-'}"
    )
    console.print_json(msgspec.json.encode(dead.payload).decode())
    table = Table("attempt", "at", "outcome", "duration", "error")
    for a in dead.history:
        table.add_row(
            str(a.attempt),
            "-" if a.at is None else f"{a.at:%Y-%m-%d %H:%M:%S.%f}",
            a.outcome.value,
            f"{a.duration_ms} ms",
            a.error or "-",
        )
    console.print(table)


def _move(
    verb: str,
    subscription: str,
    event_ids: list[str] | None,
    *,
    every: bool,
    filters: tuple[str | None, str | None, str | None],
    server: str,
    as_json: bool,
) -> None:

    since, until, error = filters
    if not event_ids and not every:
        raise typer.BadParameter("give event ids, or --all for every dead letter")
    if event_ids and every:
        raise typer.BadParameter("give event ids or --all, not both")
    if event_ids and any(f is not None for f in filters):
        raise typer.BadParameter("--since, --until and --error narrow --all, not event ids")
    ids, start, end = event_ids or None, parse_time(since), parse_time(until)
    with session(server) as client:
        if verb == "redrive":
            moved = client.redrive(
                subscription, ids, all=every, since=start, until=end, error=error
            )
        else:
            moved = DeadLetterCount(
                client.purge_dead_letters(
                    subscription, ids, all=every, since=start, until=end, error=error
                )
            )
    if as_json:
        print_json(moved)
        return
    done = "sent back to" if verb == "redrive" else "dropped from"
    console.print(f"{_letters(moved.count)} {done} {subscription}")
    if moved.before_purge:
        console.print(
            f"{_letters(moved.before_purge)} left dead: published before the subscription's "
            "purge, which drops them unpushed (drop them with `conveyor dlq purge`)"
        )


def _letters(count: int) -> str:
    return f"{count} dead letter{'' if count == 1 else 's'}"


def _mover(verb: str) -> Callable[..., None]:
    """The command of ``conveyor dlq <verb>``: redrive and purge take the same options."""

    def command(
        subscription: Subscription,
        event_ids: EventIds = None,
        every: All = False,
        since: Since = None,
        until: Until = None,
        error: ErrorText = None,
        server: Server = DEFAULT_URL,
        as_json: AsJson = False,
    ) -> None:
        _move(
            verb,
            subscription,
            event_ids,
            every=every,
            filters=(since, until, error),
            server=server,
            as_json=as_json,
        )

    return command


dlq_redrive = dlq_app.command(
    "redrive", help="Send dead letters back to the subscription: delivered again from attempt 1."
)(_mover("redrive"))
dlq_purge = dlq_app.command(
    "purge", help="Drop dead letters: they read `dropped` and are never delivered again."
)(_mover("purge"))
