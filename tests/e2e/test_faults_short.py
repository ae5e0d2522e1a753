"""The fault suite's short version (``python -m faults --short``; the long one is ``make
faults``): real ``conveyor serve`` and ``conveyor worker`` processes driven over HTTP under
kill -9, SIGSTOP, a full disk and a second PostgreSQL node, each run checked for what the
platform promises (see faults/check.py for the definitions).

Duplicates are reported, not asserted: at-least-once allows them around crashes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from faults.check import Result
from faults.report import details, table
from faults.scenarios import SHORT, by_name
from faults.suite import run_one

pytestmark = [pytest.mark.slow, pytest.mark.timeout(100)]


def run(name: str, tmp_path: Path, postgres: str | None = None) -> Result:
    scenario = by_name(SHORT, name)
    seed = int(time.time())
    result = asyncio.run(run_one(scenario, tmp_path, seed=seed, postgres=postgres, short=True))
    print(f"\nseed {seed}\n{table([(scenario, result)])}\n{details([(scenario, result)])}")
    if result.skipped is not None:
        pytest.skip(result.skipped)
    return result


def assert_kept_every_promise(result: Result) -> None:
    assert result.acked > 0
    found = {what: n for what, n in result.failures.items() if n}
    assert not found, f"{found}: {result.examples}"


@pytest.mark.parametrize("scenario", ["sqlite kill -9", "sqlite SIGSTOP", "disk full"])
def test_under_faults_no_acknowledged_event_is_lost_early_reordered_or_stored_twice(
    scenario: str, tmp_path: Path
) -> None:
    # Given serve and two workers on SQLite, keys publishing in sequence, some delayed
    # When the scenario's faults come in cycles while the load goes on
    result = run(scenario, tmp_path)
    # Then every acknowledged event was handled, none early, per key in order, stored once
    assert result.cycles > 0
    assert_kept_every_promise(result)


@pytest.mark.pg
def test_two_postgresql_nodes_given_every_publish_at_once_store_each_key_once(
    tmp_path: Path, pg_server: str
) -> None:
    # Given two serve on one PostgreSQL schema, and every publish sent to both at once with
    # its idempotency key, while a node is killed with kill -9 in cycles
    result = run("postgres 2 nodes", tmp_path, postgres=pg_server)
    # Then each idempotency key names one stored event, and nothing is lost, early or
    # reordered
    assert_kept_every_promise(result)


def test_the_negative_control_a_store_wiped_at_a_kill_is_reported_as_loss(
    tmp_path: Path,
) -> None:
    # Given the same load, when the store's files are deleted at a kill -9 (the store is
    # lost: what a checker that cannot see loss would miss)
    result = run("control: store wiped", tmp_path)
    # Then the checker reports acknowledged events lost
    assert result.lost > 0
