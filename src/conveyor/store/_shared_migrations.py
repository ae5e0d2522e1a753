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
