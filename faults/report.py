"""The suite's table (Markdown), its verdicts, and the section of docs/reliability.md."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from faults.check import Result
from faults.runner import Scenario

__all__ = ["details", "passed", "table", "verdict"]

HEADER = (
    "| scenario | cycles | acked | lost | duplicated events | order violations | early "
    "| stored twice | ambiguous (stored) | unresolved (stored) | recovery: publish p50 / max "
    "| recovery: delivery p50 / max | verdict |\n"
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
)


def verdict(scenario: Scenario, result: Result) -> str:
    """``ok``, ``FAIL: …`` or ``skipped: …``; the control passes when it reports loss."""
    if result.skipped is not None:
        return f"skipped: {result.skipped}"
    if scenario.control:
        return "ok: loss reported" if result.lost else "FAIL: the control reported no loss"
    failed = [f"{n} {what}" for what, n in result.failures.items() if n]
    return "ok" if not failed else "FAIL: " + ", ".join(failed)


def passed(scenario: Scenario, result: Result) -> bool:
    return verdict(scenario, result).startswith(("ok", "skipped"))


def _seconds(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} / {max(values):.2f} s"


def _row(scenario: Scenario, r: Result) -> str:
    if r.skipped is not None:
        cells = ["-"] * 11
    else:
        cells = [
            str(r.cycles),
            f"{r.acked:,}",
            str(r.lost),
            str(r.duplicates),
            str(r.order_violations),
            str(r.early),
            str(r.stored_twice),
            f"{r.ambiguous} ({r.ambiguous_stored})",
            f"{r.unresolved} ({r.unresolved_stored})",
            _seconds(r.recovery_publish),
            _seconds(r.recovery_delivery),
        ]
    return "| " + " | ".join([scenario.name, *cells, verdict(scenario, r)]) + " |"


def table(runs: Sequence[tuple[Scenario, Result]]) -> str:
    """The Markdown table of ``runs``, one row each."""
    return "\n".join([HEADER, *(_row(s, r) for s, r in runs)])


def details(runs: Sequence[tuple[Scenario, Result]], examples: int = 5) -> str:
    """What each run did, its unexpected exits, and up to ``examples`` of each finding."""
    lines = []
    for scenario, r in runs:
        lines.append(f"* **{scenario.name}** — {scenario.title}; {r.seconds:.0f} s")
        if r.skipped is None:
            lines.append(
                f"  published {r.published:,}, {r.calls:,} calls, refused but stored "
                f"{r.refused_stored}, deliver_at changed {r.wrong_due}, calls for unknown "
                f"events {r.phantom_calls}"
            )
        if r.unexpected_exits:
            lines.append(f"  unexpected exits: {'; '.join(r.unexpected_exits)}")
        for kind, found in sorted(r.examples.items()):
            lines.append(f"  {kind}: {'; '.join(found[:examples])}")
    return "\n".join(lines)
