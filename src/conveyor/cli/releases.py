"""``conveyor release``: a lambda's releases — list, promote, roll back, and the policy.

A release starts by itself when a worker registers with a new ``--version``; these commands
show how it goes and let an operator decide by hand. ``release policy LAMBDA`` prints the
policy; with options it changes those fields and keeps the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from conveyor.cli.common import AsJson, Server, ask, console, parse_duration, print_json, session
from conveyor.wire.connections import DEFAULT_URL

if TYPE_CHECKING:
    from conveyor.wire.releases import LambdaReleases, ReleasePolicy, ReleaseView, SideFigures

release_app = typer.Typer(
    help="A lambda's releases: list, promote, roll back, and the release policy.",
    no_args_is_help=True,
)

LambdaName = Annotated[str, typer.Argument(help="The lambda's name.")]
Version = Annotated[str, typer.Argument(help="The version released.")]


def _latency(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3g} ms"


def _side(figures: SideFigures) -> str:
    return (
        f"{figures.pushes} pushes, {figures.failure_rate:.1%} failed, "
        f"p50 {_latency(figures.latency_p50)}, p95 {_latency(figures.latency_p95)}"
    )


def _print_releases(releases: LambdaReleases) -> None:

    stable = releases.stable.version if releases.stable else "-"
    console.print(f"[bold]{releases.lambda_name}[/]  stable: {stable}")
    canary = releases.canary
    if canary is not None:
        console.print(
            f"canary: {canary.version} (share {releases.policy.share:.0%}) — {canary.reason}"
        )
        if canary.window is not None:
            console.print(f"  canary  {_side(canary.window.canary)}")
            console.print(f"  stable  {_side(canary.window.stable)}")
    if releases.pending:
        console.print("pending: " + ", ".join(r.version for r in releases.pending))
    table = Table("version", "state", "started", "decided", "reason")
    for r in releases.history:
        table.add_row(
            r.version,
            r.state.value,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            "-" if r.decided_at is None else f"{r.decided_at:%Y-%m-%d %H:%M:%S}",
            r.reason or "-",
        )
    console.print(table)


def _print_decision(releases: LambdaReleases, version: str, as_json: bool) -> None:

    if as_json:
        print_json(releases)
        return
    found: ReleaseView | None = next((r for r in releases.history if r.version == version), None)
    state = found.state.value if found is not None else "unknown"
    console.print(f"{releases.lambda_name} {version}: {state}")


@release_app.command("list")
def release_list(
    lambda_name: LambdaName, server: Server = DEFAULT_URL, as_json: AsJson = False
) -> None:
    """Show a lambda's stable version, its canary with live figures, and its history."""
    releases = ask(server, as_json, lambda client: client.list_releases(lambda_name))
    if releases is None:
        return
    _print_releases(releases)


@release_app.command("promote")
def release_promote(
    lambda_name: LambdaName, version: Version, server: Server = DEFAULT_URL, as_json: AsJson = False
) -> None:
    """Make a version stable now (a canary, a pending or a rolled-back version)."""
    with session(server) as client:
        releases = client.promote_release(lambda_name, version)
    _print_decision(releases, version, as_json)


@release_app.command("rollback")
def release_rollback(
    lambda_name: LambdaName, version: Version, server: Server = DEFAULT_URL, as_json: AsJson = False
) -> None:
    """Roll a version back now: it gets no pushes (the stable one: back to the one before)."""
    with session(server) as client:
        releases = client.rollback_release(lambda_name, version)
    _print_decision(releases, version, as_json)


def _print_policy(policy: ReleasePolicy) -> None:

    table = Table("setting", "value")
    table.add_row("share", f"{policy.share:g}")
    table.add_row("window", f"{policy.window_seconds:g} s")
    table.add_row("min pushes", str(policy.min_pushes))
    table.add_row("max failure increase", f"{policy.max_failure_increase:g}")
    table.add_row("max latency ratio", f"{policy.max_latency_ratio:g}")
    table.add_row("latency slack", f"{policy.latency_slack:g} s")
    table.add_row("auto promote", "yes" if policy.auto_promote else "no")
    console.print(table)


@release_app.command("policy")
def release_policy(
    lambda_name: LambdaName,
    share: Annotated[
        float | None, typer.Option(help="The canary's share of pushes (0 to 1).")
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="The window compared, and watched before promotion (60s).")
    ] = None,
    min_pushes: Annotated[
        int | None, typer.Option(help="Pushes to the canary before any decision.")
    ] = None,
    max_failure_increase: Annotated[
        float | None,
        typer.Option(help="Roll back above the stable failure rate plus this (0.1: 10 points)."),
    ] = None,
    max_latency_ratio: Annotated[
        float | None, typer.Option(help="Roll back above the stable p95 latency times this.")
    ] = None,
    latency_slack: Annotated[
        str | None, typer.Option(help="Added to the latency limit (50ms).")
    ] = None,
    auto_promote: Annotated[
        bool | None,
        typer.Option(
            "--auto-promote/--no-auto-promote", help="Promote a healthy canary by itself."
        ),
    ] = None,
    server: Server = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Show a lambda's release policy; with options, change those settings."""
    import msgspec

    changes: dict[str, object] = {
        "share": share,
        "window_seconds": None if window is None else parse_duration(window),
        "min_pushes": min_pushes,
        "max_failure_increase": max_failure_increase,
        "max_latency_ratio": max_latency_ratio,
        "latency_slack": None if latency_slack is None else parse_duration(latency_slack),
        "auto_promote": auto_promote,
    }
    changes = {name: value for name, value in changes.items() if value is not None}
    with session(server) as client:
        policy = client.get_release_policy(lambda_name)
        if changes:
            policy = client.set_release_policy(
                lambda_name, msgspec.structs.replace(policy, **changes)
            )
    if as_json:
        print_json(policy)
        return
    _print_policy(policy)
