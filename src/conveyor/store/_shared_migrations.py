"""Migrations that are the same text in every SQL dialect."""

from __future__ import annotations

# 3: priority lanes. A topic of P partitions keeps 3P log partitions: P per lane, normal
# first, then high, then low (see model.LANES). Existing topics get their new lanes'
# partitions, leases and cursors (starting at 0: the new partitions are empty). The
# per-topic counts are read before any partition row is added.
PRIORITY_LANES = """
    INSERT INTO cursors (sub, part, cursor, acked, start)
    SELECT c.sub, c.part + n.n * l.lane, 0, NULL, 0 FROM cursors c
    JOIN subscriptions s ON s.name = c.sub
    JOIN topics t ON t.name = s.topic
    JOIN (SELECT topic_id, count(*) AS n FROM partitions GROUP BY topic_id) n
      ON n.topic_id = t.id
    CROSS JOIN (SELECT 1 AS lane UNION ALL SELECT 2) l;
    INSERT INTO leases (topic_id, part)
    SELECT p.topic_id, p.part + n.n * l.lane FROM partitions p
    JOIN (SELECT topic_id, count(*) AS n FROM partitions GROUP BY topic_id) n
      ON n.topic_id = p.topic_id
    CROSS JOIN (SELECT 1 AS lane UNION ALL SELECT 2) l;
    INSERT INTO partitions (topic_id, part, next_off)
    SELECT p.topic_id, p.part + n.n * l.lane, 0 FROM partitions p
    JOIN (SELECT topic_id, count(*) AS n FROM partitions GROUP BY topic_id) n
      ON n.topic_id = p.topic_id
    CROSS JOIN (SELECT 1 AS lane UNION ALL SELECT 2) l
    """

# 6: endpoints carry a locality label (``cloud/region/zone``, for locality-aware routing),
# the version of the lambda they run (for releases), and whether they were added by hand
# (static: never expire, not renewed by a worker), and where active probes GET its health.
ENDPOINT_PLACEMENT = """
    ALTER TABLE endpoints ADD COLUMN locality TEXT NOT NULL DEFAULT '';
    ALTER TABLE endpoints ADD COLUMN version TEXT NOT NULL DEFAULT '';
    ALTER TABLE endpoints ADD COLUMN static INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE endpoints ADD COLUMN health_url TEXT NOT NULL DEFAULT ''
"""

# 7: releases (delivery/releases.py). One row per lambda holds its release policy (NULL: the
# defaults) and a revision bumped by every change to its releases, so that nodes re-read only
# the lambdas that changed; transitions lock this row, so two nodes never decide at once. One
# row per version released: its state, when its trial started and when it was decided, why,
# and the window figures the decision was made on (JSON).
RELEASES = """
    CREATE TABLE release_lambdas (
        lambda   TEXT PRIMARY KEY,
        policy   TEXT,
        revision BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE releases (
        lambda     TEXT NOT NULL,
        version    TEXT NOT NULL,
        state      TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        decided_ms BIGINT,
        reason     TEXT NOT NULL DEFAULT '',
        figures    TEXT,
        PRIMARY KEY (lambda, version)
    )
"""

# 8: timers by key (store/_key_order.py): before a keyed event is appended, the timers of its
# key due no later are fired first; this index finds them without reading every due timer of
# the partition.
KEYED_TIMERS = """
    CREATE INDEX timers_by_key ON timers (topic_id, part, key, due_ms)
"""
