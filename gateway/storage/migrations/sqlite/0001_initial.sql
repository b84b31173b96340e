-- The embedded store mirrors the TimescaleDB schema; times are UTC microseconds since 1970.
CREATE TABLE patients (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    mrn         TEXT UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE devices (
    resource_id   TEXT PRIMARY KEY,
    device_id     TEXT NOT NULL UNIQUE,
    kind          TEXT,
    display_name  TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE device_assignments (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    device_resource_id  TEXT NOT NULL REFERENCES devices (resource_id),
    patient_id          TEXT NOT NULL REFERENCES patients (id),
    valid_from          INTEGER,
    valid_to            INTEGER,
    created_at          INTEGER NOT NULL,
    CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to)
);
CREATE INDEX device_assignments_device ON device_assignments (device_resource_id);

CREATE TABLE observations (
    time                INTEGER NOT NULL,
    reading_key         TEXT NOT NULL,
    patient_id          TEXT NOT NULL,
    device_resource_id  TEXT NOT NULL,
    kind                TEXT NOT NULL,
    code                TEXT NOT NULL,
    value               TEXT,
    unit                TEXT NOT NULL,
    resource            TEXT NOT NULL,
    received_at         INTEGER NOT NULL,
    source              TEXT NOT NULL,
    UNIQUE (reading_key, time)
);
CREATE INDEX observations_patient_kind_time ON observations (patient_id, kind, time DESC);
CREATE INDEX observations_patient_time ON observations (patient_id, time DESC);

CREATE TABLE quarantine (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint  BLOB NOT NULL UNIQUE,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    seen_count   INTEGER NOT NULL DEFAULT 1,
    source       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    device_id    TEXT,
    stage        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    item_index   INTEGER,
    payload      BLOB NOT NULL
);
CREATE INDEX quarantine_last_seen ON quarantine (last_seen DESC);
