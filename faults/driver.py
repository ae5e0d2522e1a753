"""The publisher of the fault suite: HTTP only, every publish journaled with what came back.

Each key has its own loop publishing sequence numbers 0, 1, 2 … one at a time: seq n+1 is
sent only once seq n was acknowledged or given up, so the order the platform owes is the
order of the sequence numbers. Every publish carries an idempotency key of its own, and a
try that gets no answer (a timeout, a refused or broken connection) is *ambiguous*: the
event may or may not be stored. It is retried with the same body and the same key until an
answer comes or ``give_up`` seconds passed since its first try.

Delays are chosen so that (due time, publish order) — the rule of ordered subscriptions —
gives the sequence order too: a key's delayed events are due no earlier than its earlier
ones, and an immediate event is sent only once the key's last due time is ``GUARD`` seconds
past (the key's loop waits until then).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from faults.lambdas import TOPIC

__all__ = ["Driver", "Load", "Publish", "rfc3339_ms"]

# A 4xx that retrying cannot change: the request itself is wrong.
FINAL_STATUSES = frozenset({400, 409, 413, 422})
GUARD = 0.5  # seconds after a key's last due time before it may publish without delay
RETRY_PAUSE = (0.1, 0.5)  # seconds between tries of one publish


@dataclass(frozen=True)
class Load:
    """The shape of the publishing load.

    Attributes:
        keys: keys publishing at once (one loop each).
        gap: mean seconds between two publishes of one key.
        delayed_keys: share of the keys whose every event has a ``deliver_at`` (so that
            such a key always has a timer waiting when it publishes the next: what a pause or
            a restart must not reorder).
        delayed: share of the other keys' events with a ``deliver_at``.
        delay: the range of those delays, seconds.
        timeout: seconds a try waits for its answer before it is ambiguous.
        give_up: seconds after the first try when an unanswered publish is left unresolved.
        pad: bytes of padding in each payload (to fill a disk faster).
    """

    keys: int = 64
    gap: float = 0.1
    delayed_keys: float = 0.25
    delayed: float = 0.2
    delay: tuple[float, float] = (0.2, 2.0)
    timeout: float = 2.0
    give_up: float = 60.0
    pad: int = 0


@dataclass
class Publish:
    """One event the driver published, and what every try of it got back.

    ``ids`` holds every event id an acknowledgement named (two on a cluster that stored the
    key twice); ``ambiguous`` counts tries without an answer, ``refused`` tries answered with
    an error.
    """

    idem: str
    key: str
    seq: int
    deliver_at_ms: int | None
    sent: float
    ids: set[str] = field(default_factory=set)
    acked_at: float | None = None
    duplicate_ack: bool = False
    tries: int = 0
    ambiguous: int = 0
    refused: int = 0
    final_refusal: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def acked(self) -> bool:
        return bool(self.ids)

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "ids": sorted(self.ids), "errors": self.errors[-3:]}


def rfc3339_ms(ms: int) -> str:
    """``ms`` (epoch milliseconds) in RFC 3339, UTC, exact (no float rounding)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Driver:
    """Publishes the load to ``urls`` until told to stop, and journals every publish.

    Args:
        urls: the nodes' base URLs. With ``fan_out``, every try goes to all of them at once
            (the same body and idempotency key: what a client does that retries on another
            node); else to the first.
        load: the load's shape.
        run: a prefix that makes this run's idempotency keys its own.
        seed: the random seed of delays and gaps.
    """

    def __init__(
        self, urls: Sequence[str], load: Load, *, run: str, seed: int, fan_out: bool = False
    ) -> None:
        self.urls = list(urls) if fan_out else [urls[0]]
        self.load = load
        self.run = run
        self.journal: list[Publish] = []
        self._rng = random.Random(seed)

    async def drive(self, stop: asyncio.Event) -> None:
        """Publish from every key's loop until ``stop`` is set; the loops finish the publish
        they are in (its tries may last up to ``give_up``)."""
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session, asyncio.TaskGroup() as tg:
            for k in range(self.load.keys):
                tg.create_task(self._key_loop(session, k, stop))

    async def _key_loop(self, session: aiohttp.ClientSession, k: int, stop: asyncio.Event) -> None:
        key = f"k{k:03d}"
        always_delayed = k < self.load.keys * self.load.delayed_keys
        horizon = 0.0  # the latest due time of this key's events so far (epoch seconds)
        seq = 0
        while not stop.is_set():
            deliver_at_ms = self._due(always_delayed, horizon, time.time())
            if deliver_at_ms is None and await _stopped(stop, horizon + GUARD - time.time()):
                # An immediate event waits until the key's last due time is GUARD past, so
                # that it is due after every earlier event of its key.
                return
            if deliver_at_ms is not None:
                horizon = max(horizon, deliver_at_ms / 1000)
            p = Publish(f"{self.run}-{key}-{seq}", key, seq, deliver_at_ms, time.time())
            self.journal.append(p)
            await self._publish(session, p)
            seq += 1
            if await _stopped(stop, self._rng.uniform(0, 2 * self.load.gap)):
                return

    def _due(self, always: bool, horizon: float, now: float) -> int | None:
        """A delayed event's due time (epoch ms): a random delay, or the key's last due time
        when that is later (due at the same time, events keep their publish order);
        ``None``: an immediate event."""
        if always or self._rng.random() < self.load.delayed:
            return round(max(horizon, now + self._rng.uniform(*self.load.delay)) * 1000)
        return None

    def _body(self, p: Publish) -> bytes:
        payload: dict[str, object] = {"idem": p.idem, "seq": p.seq}
        if self.load.pad:
            payload["pad"] = "x" * self.load.pad
        body: dict[str, object] = {"payload": payload, "key": p.key, "idempotency_key": p.idem}
        if p.deliver_at_ms is not None:
            body["deliver_at"] = rfc3339_ms(p.deliver_at_ms)
        return json.dumps(body).encode()

    async def _publish(self, session: aiohttp.ClientSession, p: Publish) -> None:
        body = self._body(p)
        while True:
            await asyncio.gather(*(self._try(session, url, body, p) for url in self.urls))
            if p.acked or p.final_refusal or time.time() - p.sent > self.load.give_up:
                return
            await asyncio.sleep(self._rng.uniform(*RETRY_PAUSE))

    async def _try(self, session: aiohttp.ClientSession, url: str, body: bytes, p: Publish) -> None:
        p.tries += 1
        timeout = aiohttp.ClientTimeout(total=self.load.timeout)
        headers = {"Content-Type": "application/json"}
        try:
            async with session.post(
                f"{url}/v1/topics/{TOPIC}/events", data=body, headers=headers, timeout=timeout
            ) as answer:
                content = await answer.read()
                status = answer.status
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            p.ambiguous += 1
            p.errors.append(f"{url}: {type(e).__name__}")
            return
        if status in (200, 201):
            ack = json.loads(content)
            p.ids.add(ack["id"])
            p.duplicate_ack |= bool(ack.get("duplicate"))
            if p.acked_at is None:
                p.acked_at = time.time()
            return
        p.refused += 1
        p.errors.append(f"{url}: {status} {content[:200].decode(errors='replace')}")
        p.final_refusal |= status in FINAL_STATUSES


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` (or not at all when not positive); whether ``stop`` is set."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
