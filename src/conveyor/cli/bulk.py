"""``conveyor publish-many``: publish newline-delimited JSON through the batching publisher.

Each line is one event: by default an object with the keys a batch event takes
(``payload`` required; ``key``, ``attributes``, ``delay``, ``deliver_at``,
``idempotency_key``, ``priority``, ``schema_version``), or with ``--payloads`` the payload
itself. Lines travel in batch requests of up to ``--max-events``, several in flight; a bad
line fails alone, named by its line number, field and rule, and the command exits 1.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, TextIO

import msgspec
import typer

from conveyor._client.async_client import AsyncClient
from conveyor._client.batching import AsyncPublisher, BatchSettings
from conveyor._client.publish import build_request, request_from_mapping
from conveyor.cli.common import console
from conveyor.errors import InvalidRequest
from conveyor.wire.connections import DEFAULT_URL
from conveyor.wire.schemas import PublishRequest, PublishResult

__all__ = ["BulkSummary", "publish_lines", "publish_many"]

_LINE = msgspec.json.Decoder()


class BulkSummary(msgspec.Struct):
    """What ``publish-many`` did.

    Attributes:
        published: events stored (duplicates included).
        duplicates: of those, replays of an earlier idempotency key.
        failed: lines refused or not sent, each ``{"line", "error", "field", "rule"}``.
        requests: batch requests sent.
        seconds: from the first line read to the last answer.
    """

    published: int = 0
    duplicates: int = 0
    failed: list[dict[str, object]] = msgspec.field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0


def _parse(line: str, number: int, payloads: bool) -> PublishRequest:
    """One line's request; raises ``ValueError`` or ``TypeError`` naming what is wrong."""
    try:
        value = _LINE.decode(line)
    except msgspec.DecodeError as e:
        raise ValueError(f"not JSON: {e}") from e
    if payloads:
        return build_request(msgspec.Raw(line.strip().encode()))
    if not isinstance(value, dict):
        raise TypeError("an event line is a JSON object with a 'payload' (or use --payloads)")
    return request_from_mapping(value, number)


async def publish_lines(
    client: AsyncClient,
    topic: str,
    lines: Iterable[str],
    *,
    payloads: bool = False,
    linger: float = 0.005,
    max_events: int = 1000,
    max_in_flight: int = 4,
) -> BulkSummary:
    """Publish every non-blank line as one event; return what happened to them.

    Args:
        client: the node's client.
        topic: the topic.
        lines: NDJSON lines (numbered from 1 in the summary).
        payloads: each line is the payload, not an event object.
        linger: seconds a batch waits for more lines.
        max_events: events per batch request.
        max_in_flight: batch requests at once.

    Returns:
        The counts, and every failed line with its error.
    """
    summary = BulkSummary()
    started = time.perf_counter()
    settings = BatchSettings(linger=linger, max_events=max_events, max_in_flight=max_in_flight)
    publisher = AsyncPublisher(client, settings)
    async with publisher:
        for number, line in _numbered(lines):
            try:
                request = _parse(line, number, payloads)
            except (TypeError, ValueError) as e:
                summary.failed.append({"line": number, "error": str(e)})
                continue
            await publisher.room()
            future = publisher.submit_request(topic, request)
            # Counted as each answer comes: nothing is kept per line but the failures. The
            # callbacks run in the order the futures were settled, before the flush that
            # ends the block returns (asyncio runs callbacks first in, first out).
            future.add_done_callback(functools.partial(_count, summary, number))
    summary.failed.sort(key=lambda f: int(str(f["line"])))
    summary.requests = publisher.requests
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _count(summary: BulkSummary, number: int, future: asyncio.Future[PublishResult]) -> None:
    error = future.exception()
    if error is None:
        summary.published += 1
        summary.duplicates += future.result().duplicate
        return
    failure: dict[str, object] = {"line": number, "error": str(error)}
    if isinstance(error, InvalidRequest):
        failure.update(field=error.field, rule=error.rule)
    summary.failed.append(failure)


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line


def publish_many(
    topic: str,
    source: Annotated[
        str, typer.Argument(help="The NDJSON file, one event per line ('-' reads stdin).")
    ] = "-",
    payloads: Annotated[
        bool, typer.Option(help="Each line is the payload, not an event object.")
    ] = False,
    linger: Annotated[
        float, typer.Option(min=0, max=60, help="Seconds a batch waits for more lines.")
    ] = 0.005,
    max_events: Annotated[
        int, typer.Option(min=1, max=10_000, help="Events per batch request.")
    ] = 1000,
    max_in_flight: Annotated[int, typer.Option(min=1, max=64, help="Batch requests at once.")] = 4,
    server: Annotated[
        str, typer.Option("--server", envvar="CONVEYOR_URL", help="The platform's base URL.")
    ] = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Publish NDJSON lines as events, in batches; each is durable when counted."""
    summary = asyncio.run(_run(server, topic, source, payloads, linger, max_events, max_in_flight))
    _report(summary, as_json)
    if summary.failed:
        raise typer.Exit(1)


async def _run(
    server: str,
    topic: str,
    source: str,
    payloads: bool,
    linger: float,
    max_events: int,
    max_in_flight: int,
) -> BulkSummary:
    async with AsyncClient(server) as client:
        with _open(source) as lines:
            return await publish_lines(
                client,
                topic,
                lines,
                payloads=payloads,
                linger=linger,
                max_events=max_events,
                max_in_flight=max_in_flight,
            )


def _open(source: str) -> TextIO:
    if source == "-":
        return sys.stdin
    try:
        return Path(source).open(encoding="utf-8")
    except OSError as e:
        raise typer.BadParameter(f"cannot read {source}: {e}") from e


def _report(summary: BulkSummary, as_json: bool) -> None:

    if as_json:
        typer.echo(msgspec.json.encode(summary).decode())
        return
    dup = f" ({summary.duplicates} duplicates)" if summary.duplicates else ""
    console.print(
        f"published {summary.published} events{dup} in {summary.requests} requests, "
        f"{summary.seconds:.3f} s; {len(summary.failed)} failed"
    )
    for failure in summary.failed:
        where = f" {failure['field']} ({failure['rule']})" if failure.get("field") else ""
        typer.echo(f"line {failure['line']}:{where} {failure['error']}", err=True)
