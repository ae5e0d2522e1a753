"""``conveyor subscription``: create, list, show, pause, resume, purge, rate-limit, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer
from rich.table import Table

from conveyor.cli.common import (
    AsJson,
    Server,
    ask,
    console,
    duration_text,
    err,
    parse_duration,
    parse_locality,
    print_json,
    session,
)
from conveyor.model import DeliveryFormat, RetryPolicy, Subscription
from conveyor.options import SUBSCRIPTION_DEFAULTS
from conveyor.wire.connections import DEFAULT_URL

if TYPE_CHECKING:
    from conveyor.wire.schemas import SubscriptionInfo

# The defaults shown are the model's (conveyor.options): the CLI states none of its own.
_DEFAULT = SUBSCRIPTION_DEFAULTS

sub_app = typer.Typer(help="Create and inspect subscriptions.", no_args_is_help=True)


@sub_app.command("create")
def subscription_create(
    name: str,
    topic: Annotated[str, typer.Option(help="The topic to read.")],
    lambda_name: Annotated[str, typer.Option("--lambda", help="The lambda to push to.")],
    ordered: Annotated[bool, typer.Option(help="Per-key FIFO delivery.")] = _DEFAULT.ordered,
    max_concurrency: Annotated[
        int, typer.Option(help="Events in flight at once.")
    ] = _DEFAULT.max_concurrency,
    min_concurrency: Annotated[
        int, typer.Option(help="Least adaptive limit.")
    ] = _DEFAULT.min_concurrency,
    adaptive: Annotated[
        bool, typer.Option(help="Move the limit with the lambda's latency and errors.")
    ] = _DEFAULT.adaptive,
    max_batch: Annotated[int, typer.Option(help="Events per push.")] = _DEFAULT.max_batch,
    max_batch_bytes: Annotated[
        int, typer.Option(help="Payload bytes per push.")
    ] = _DEFAULT.max_batch_bytes,
    max_wait: Annotated[
        str, typer.Option(help="Wait this long to fill a push (0s).")
    ] = duration_text(_DEFAULT.max_wait),
    push_timeout: Annotated[str, typer.Option(help="Wait for a push's answer.")] = duration_text(
        _DEFAULT.push_timeout
    ),
    max_attempts: Annotated[
        int, typer.Option(help="Deliveries before dead.")
    ] = _DEFAULT.retry.max_attempts,
    min_backoff: Annotated[str, typer.Option(help="Least wait before a retry.")] = duration_text(
        _DEFAULT.retry.min_backoff
    ),
    max_backoff: Annotated[str, typer.Option(help="Most wait before a retry.")] = duration_text(
        _DEFAULT.retry.max_backoff
    ),
    multiplier: Annotated[
        float, typer.Option(help="Backoff growth per attempt.")
    ] = _DEFAULT.retry.multiplier,
    max_retry_duration: Annotated[
        str | None, typer.Option(help="No retry this long after the first attempt (e.g. 1h).")
    ] = None,
    dead_letter_topic: Annotated[
        str | None, typer.Option(help="Topic receiving dead events.")
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="What the lambda receives: json, avro or protobuf.")
    ] = "json",
    cloudevents: Annotated[bool, typer.Option(help="Wrap each event in a CloudEvent.")] = False,
    schema_version: Annotated[
        int | None, typer.Option(help="Deliver in this version of the topic's subject.")
    ] = None,
    filter_pattern: Annotated[
        str | None,
        typer.Option("--filter", help="An EventBridge-style pattern (JSON, or @file.json)."),
    ] = None,
    locality: Annotated[
        list[str] | None,
        typer.Option(
            "--locality",
            help="A preferred place (cloud/region/zone or a prefix); repeat, most preferred first.",
        ),
    ] = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Create a subscription: the topic's events pushed to a lambda."""
    try:
        retry = RetryPolicy(
            max_attempts=max_attempts,
            min_backoff=parse_duration(min_backoff),
            max_backoff=parse_duration(max_backoff),
            multiplier=multiplier,
            max_retry_duration=parse_duration(max_retry_duration) if max_retry_duration else None,
        )
        fmt = msgspec.convert(
            {"encoding": encoding, "cloudevents": cloudevents, "schema_version": schema_version},
            DeliveryFormat,
        )
    except (ValueError, msgspec.ValidationError) as e:
        raise typer.BadParameter(str(e)) from e
    with session(server) as client:
        info = client.create_subscription(
            name,
            topic,
            lambda_name,
            ordered=ordered,
            max_concurrency=max_concurrency,
            min_concurrency=min_concurrency,
            adaptive=adaptive,
            max_batch=max_batch,
            max_batch_bytes=max_batch_bytes,
            max_wait=parse_duration(max_wait),
            push_timeout=parse_duration(push_timeout),
            retry=retry,
            dead_letter_topic=dead_letter_topic,
            format=fmt,
            filter=_pattern(filter_pattern),
            locality=[parse_locality(place) for place in locality or ()],
        )
    if as_json:
        print_json(info)
    else:
        console.print(f"subscription [bold]{name}[/]: {topic} → lambda {lambda_name}")
        _print_warnings([info])


@sub_app.command("list")
def subscription_list(server: Server = DEFAULT_URL, as_json: AsJson = False) -> None:
    """List subscriptions with backlog, in-flight, retrying and dead counts."""
    infos = ask(server, as_json, lambda client: client.list_subscriptions())
    if infos is None:
        return
    table = Table(
        "subscription",
        "topic",
        "lambda",
        "ordered",
        "backlog",
        "in flight",
        "retrying",
        "dead",
        "oldest",
        "limit",
        "gate",
    )
    for i in infos:
        s, st = i.subscription, i.stats
        oldest = "-" if st.oldest_pending_age is None else f"{st.oldest_pending_age:.1f}s"
        table.add_row(
            s.name,
            s.topic,
            s.lambda_name,
            "yes" if s.ordered else "no",
            str(st.backlog),
            str(st.in_flight),
            str(st.retrying),
            str(st.dead),
            oldest,
            "-" if st.concurrency is None else str(st.concurrency.limit),
            _gate(s),
        )
    console.print(table)
    _print_warnings(infos)


def _print_warnings(infos: list[SubscriptionInfo]) -> None:
    """What keeps a subscription's events from being delivered (e.g. no endpoints)."""
    for info in infos:
        for warning in info.stats.warnings:
            err.print(f"[bold yellow]warning:[/] subscription {info.subscription.name}: {warning}")


def _pattern(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise typer.BadParameter(f"cannot read {text[1:]}: {e.strerror}") from e
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"--filter is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise typer.BadParameter("--filter must be a JSON object")
    return value


def _gate(sub: Subscription) -> str:
    control = sub.control
    parts = ["paused" if control.paused else "open"]
    if control.rate_limit is not None:
        parts.append(f"{control.rate_limit.per_second:g}/s burst {control.rate_limit.burst}")
    return ", ".join(parts)


@sub_app.command("show")
def subscription_show(name: str, server: Server = DEFAULT_URL) -> None:
    """Show a subscription and its live figures as JSON."""
    with session(server) as client:
        print_json(client.get_subscription(name))


@sub_app.command("pause")
def subscription_pause(name: str, server: Server = DEFAULT_URL) -> None:
    """Pause pushes; the backlog keeps growing and stays visible."""
    with session(server) as client:
        info = client.pause(name)
    console.print(f"subscription [bold]{name}[/] paused (backlog {info.stats.backlog})")


@sub_app.command("resume")
def subscription_resume(name: str, server: Server = DEFAULT_URL) -> None:
    """Resume a paused subscription."""
    with session(server) as client:
        info = client.resume(name)
    console.print(f"subscription [bold]{name}[/] resumed (backlog {info.stats.backlog})")


@sub_app.command("purge")
def subscription_purge(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    server: Server = DEFAULT_URL,
) -> None:
    """Drain to drop: every event published until now is dropped unpushed."""
    if not yes:
        typer.confirm(f"drop every event of {name!r} published until now?", abort=True)
    with session(server) as client:
        info = client.purge(name)
    count = info.purged or 0
    console.print(
        f"subscription [bold]{name}[/] purged: {count} unfinished event"
        f"{'' if count == 1 else 's'} (backlog and retrying) dropped unpushed"
    )


# A negative rate reaches the command as a value (refused by the rule of rates), not as an
# unknown option "-1".
@sub_app.command("rate-limit", context_settings={"ignore_unknown_options": True})
def subscription_rate_limit(
    name: str,
    per_second: Annotated[
        float | None, typer.Argument(help="Events per second (omit with --off).")
    ] = None,
    burst: Annotated[int, typer.Option(help="Events that may go at once.")] = 1,
    off: Annotated[bool, typer.Option("--off", help="Remove the rate limit.")] = False,
    server: Server = DEFAULT_URL,
) -> None:
    """Set (or remove, with --off) a subscription's rate limit, at run time."""
    if off == (per_second is not None):
        raise typer.BadParameter("give a rate in events per second, or --off")
    with session(server) as client:
        if per_second is None:
            client.clear_rate_limit(name)
            console.print(f"subscription [bold]{name}[/]: no rate limit")
        else:
            client.set_rate_limit(name, per_second, burst=burst)
            console.print(f"subscription [bold]{name}[/]: {per_second:g}/s, burst {burst}")


@sub_app.command("delete")
def subscription_delete(name: str, server: Server = DEFAULT_URL) -> None:
    """Delete a subscription and its progress."""
    with session(server) as client:
        client.delete_subscription(name)
    console.print(f"subscription [bold]{name}[/] deleted")
