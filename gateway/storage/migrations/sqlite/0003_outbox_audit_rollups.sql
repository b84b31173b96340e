-- Outbox, audit trail, hourly rollups and the maintenance watermark (mirrors TimescaleDB's 0003).
-- Times are UTC microseconds since 1970; numbers in rollups are REAL.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    reading_key      TEXT NOT NULL,
    time             INTEGER NOT NULL,
    destination      TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (reading_key, time, destination)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at  INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    entity       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}',
    prev_hash    BLOB,
    hash         BLOB NOT NULL
);
CREATE INDEX audit_events_recorded_at ON audit_events (recorded_at);

CREATE TABLE observation_rollups_hourly (
    patient_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    unit        TEXT NOT NULL,
    bucket      INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    min         REAL NOT NULL,
    max         REAL NOT NULL,
    sum         REAL NOT NULL,
    last_value  REAL NOT NULL,
    last_time   INTEGER NOT NULL,
    PRIMARY KEY (patient_id, kind, bucket, unit)
);

CREATE TABLE maintenance_state (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);

CREATE INDEX observations_received_at ON observations (received_at);
