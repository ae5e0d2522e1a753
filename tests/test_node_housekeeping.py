"""The node's housekeeping loop outlives any failure of a pass."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

import conveyor.node
from conveyor.clock import FakeClock
from conveyor.node import Node
from conveyor.settings import NodeSettings
from conveyor.store.sqlite import SqliteStore


class SweepBreaks(SqliteStore):
    """A real SQLite store whose housekeeping pass fails with an error of no Conveyor kind."""

    passes = 0

    async def sweep(self, now_ms: int, dedup_ms: int) -> int:
        self.passes += 1
        raise OSError("the disk went away")


async def test_a_failing_housekeeping_pass_is_logged_and_the_next_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a node whose housekeeping passes fail, run every 10 ms
    monkeypatch.setattr(conveyor.node, "SWEEP_INTERVAL", 0.01)
    store = SweepBreaks(tmp_path / "c.db")
    settings = NodeSettings(store=str(tmp_path / "c.db"))
    with caplog.at_level(logging.WARNING, logger="conveyor.node"):
        async with Node(settings, clock=FakeClock(), store=store):
            # When a few passes have failed
            deadline = time.monotonic() + 10
            while store.passes < 3:
                assert time.monotonic() < deadline, "housekeeping stopped after a failure"
                await asyncio.sleep(0.01)

    # Then each failure was logged, and the loop went on
    assert "housekeeping failed: the disk went away" in caplog.messages
