"""The Store over a SQL database: the logic both adapters share (SQLite, PostgreSQL).

One part per concern, each a mixin over :class:`~conveyor.store.sql._core.SqlCore` (the
dialect, the writer and reader threads, the group commit, the open transaction's appends):

- ``_catalog``: topics, subscriptions, endpoints;
- ``_log`` (over ``_timers``): publishing with idempotency keys, reading events; timers;
- ``_progress`` (over ``_log``): cursors and delivery rows, under lease epochs;
- ``_registry``, ``_releases``, ``_dead_letters``, ``_cluster``, ``_housekeeping``;
- ``_rows``: the typed decoding of each query shape's rows.

The adapters (``sqlite.py``, ``postgres.py``) supply the dialect only.
"""

from __future__ import annotations

from conveyor.store.base import Store
from conveyor.store.sql._catalog import CatalogSql
from conveyor.store.sql._cluster import ClusterSql
from conveyor.store.sql._core import Connection, Cursor, SqlCore
from conveyor.store.sql._dead_letters import DeadLetterSql
from conveyor.store.sql._housekeeping import SWEEP_PARTS, SWEEP_ROWS, HousekeepingSql
from conveyor.store.sql._progress import ProgressSql
from conveyor.store.sql._registry import RegistrySql
from conveyor.store.sql._releases import ReleasesSql

__all__ = ["SWEEP_PARTS", "SWEEP_ROWS", "Connection", "Cursor", "SqlCore", "SqlStore"]


class SqlStore(
    ProgressSql,  # over LogSql over TimersSql
    CatalogSql,
    ReleasesSql,
    RegistrySql,
    DeadLetterSql,
    ClusterSql,
    HousekeepingSql,
    Store,
):
    """The Store on a SQL database; adapters supply the dialect.

    Args:
        max_batch: operations at most in one group-committed transaction.
    """
