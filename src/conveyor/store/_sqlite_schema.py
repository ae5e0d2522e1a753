"""The SQLite schema, as numbered migrations applied in order on open."""

from __future__ import annotations

from conveyor.store._shared_migrations import (
    ENDPOINT_PLACEMENT,
    KEYED_TIMERS,
    PRIORITY_LANES,
    RELEASES,
)

MIGRATIONS: list[str] = [
    # 1: the log with cursors, sparse delivery rows, timers, idempotency keys.
    """
    CREATE TABLE topics (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        spec BLOB NOT NULL
    );
    CREATE TABLE partitions (
        topic_id INTEGER NOT NULL,
        part     INTEGER NOT NULL,
        next_off INTEGER NOT NULL,
        PRIMARY KEY (topic_id, part)
    ) WITHOUT ROWID;
    CREATE TABLE subscriptions (
        name  TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        spec  BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE endpoints (
        lambda      TEXT NOT NULL,
        id          TEXT NOT NULL,
        url         TEXT NOT NULL,
        expires_ms  INTEGER NOT NULL,
        concurrency INTEGER NOT NULL,
        PRIMARY KEY (lambda, id)
    ) WITHOUT ROWID;
    CREATE TABLE log (
        topic_id      INTEGER NOT NULL,
        part          INTEGER NOT NULL,
        off           INTEGER NOT NULL,
        id            TEXT NOT NULL,
        key           TEXT,
        attrs         BLOB,
        payload       BLOB NOT NULL,
        publish_ms    INTEGER NOT NULL,
        deliver_at_ms INTEGER,
        PRIMARY KEY (topic_id, part, off)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX log_by_id ON log (id);
    CREATE TABLE timers (
        id            TEXT PRIMARY KEY,
        topic_id      INTEGER NOT NULL,
        part          INTEGER NOT NULL,
        due_ms        INTEGER NOT NULL,
        key           TEXT,
        attrs         BLOB,
        payload       BLOB NOT NULL,
        publish_ms    INTEGER NOT NULL
    );
    CREATE INDEX timers_by_due ON timers (due_ms);
    CREATE TABLE cursors (
        sub    TEXT NOT NULL,
        part   INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        acked  BLOB,
        start  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (sub, part)
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        sub        TEXT NOT NULL,
        part       INTEGER NOT NULL,
        off        INTEGER NOT NULL,
        key        TEXT,
        state      TEXT NOT NULL,
        attempts   INTEGER NOT NULL,
        next_ms    INTEGER,
        last_error TEXT,
        history    BLOB,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (sub, part, off)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_by_state ON deliveries (sub, state);
    CREATE TABLE idempotency (
        topic_id      INTEGER NOT NULL,
        key           TEXT NOT NULL,
        event_id      TEXT NOT NULL,
        part          INTEGER,
        off           INTEGER,
        deliver_at_ms INTEGER,
        digest        BLOB,
        created_ms    INTEGER NOT NULL,
        PRIMARY KEY (topic_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_age ON idempotency (created_ms);
    """,
    # 2: partition leases (owner, fencing epoch, expiry) and the nodes of a cluster. Leases
    # live apart from the partition heads, so that appends (which lock heads) and fencing
    # checks (which share-lock leases) never wait on each other.
    """
    CREATE TABLE leases (
        topic_id INTEGER NOT NULL,
        part     INTEGER NOT NULL,
        owner    TEXT,
        epoch    INTEGER NOT NULL DEFAULT 0,
        lease_ms INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (topic_id, part)
    );
    INSERT INTO leases (topic_id, part) SELECT topic_id, part FROM partitions;
    CREATE TABLE nodes (
        id         TEXT PRIMARY KEY,
        url        TEXT NOT NULL,
        roles      TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX timers_by_partition ON timers (topic_id, part, due_ms)
    """,
    # 3: priority lanes (the same in every dialect).
    PRIORITY_LANES,
    # 4: dead letters. They are listed (and redriven or purged) by the time they went dead;
    # keyset pages by (part, off) use deliveries_by_state, which in a WITHOUT ROWID table
    # already ends with the key (sub, state, part, off).
    """
    CREATE INDEX deliveries_by_time ON deliveries (sub, state, updated_ms)
    """,
    # 5: the schema registry. Subjects carry their compatibility mode (NULL: the registry's
    # default, kept in meta); versions are immutable, numbered per subject, with ids global
    # to the registry. Each event records the schema id it was written with.
    """
    CREATE TABLE subjects (
        name          TEXT PRIMARY KEY,
        compatibility TEXT
    );
    CREATE TABLE schemas (
        id          INTEGER PRIMARY KEY,
        subject     TEXT NOT NULL,
        version     INTEGER NOT NULL,
        type        TEXT NOT NULL,
        definition  TEXT NOT NULL,
        message     TEXT,
        fingerprint TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        UNIQUE (subject, version)
    );
    CREATE INDEX schemas_by_fingerprint ON schemas (subject, fingerprint);
    ALTER TABLE log ADD COLUMN schema_id INTEGER;
    ALTER TABLE timers ADD COLUMN schema_id INTEGER
    """,
    # 6: endpoint locality, version and static flag (the same in every dialect).
    ENDPOINT_PLACEMENT,
    # 7: releases and their policies (the same in every dialect).
    RELEASES,
    # 8: timers by key, for per-key order (the same in every dialect).
    KEYED_TIMERS,
]
