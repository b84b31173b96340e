-- Consent per patient and EHR destination, and corrections of stored readings (mirrors
-- TimescaleDB's 0006). Times are UTC microseconds since 1970.
CREATE TABLE consents (
    patient_id   TEXT NOT NULL REFERENCES patients (id),
    destination  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('granted', 'revoked')),
    recorded_by  TEXT NOT NULL,
    recorded_at  INTEGER NOT NULL,
    PRIMARY KEY (patient_id, destination)
);

CREATE TABLE consent_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id   TEXT NOT NULL REFERENCES patients (id),
    destination  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('granted', 'revoked')),
    recorded_by  TEXT NOT NULL,
    recorded_at  INTEGER NOT NULL
);
CREATE INDEX consent_events_patient ON consent_events (patient_id, id);
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only: UPDATE refused');
END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only: DELETE refused');
END;

ALTER TABLE observations ADD COLUMN status TEXT NOT NULL DEFAULT 'final'
    CHECK (status IN ('final', 'amended', 'entered-in-error'));

-- What each correction changed: never updated; retention deletes a reading's corrections with it.
CREATE TABLE observation_corrections (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    reading_key        TEXT NOT NULL,
    time               INTEGER NOT NULL,
    patient_id         TEXT NOT NULL,
    kind               TEXT NOT NULL,
    action             TEXT NOT NULL CHECK (action IN ('entered-in-error', 'amend')),
    reason             TEXT NOT NULL,
    corrected_by       TEXT NOT NULL,
    corrected_at       INTEGER NOT NULL,
    previous_resource  TEXT NOT NULL
);
CREATE INDEX observation_corrections_reading ON observation_corrections (reading_key, time);
CREATE INDEX observation_corrections_time ON observation_corrections (time);
CREATE TRIGGER observation_corrections_no_update BEFORE UPDATE ON observation_corrections
BEGIN
    SELECT RAISE(ABORT, 'observation_corrections is append-only: UPDATE refused');
END;

-- SQLite cannot drop a table's UNIQUE constraint: the outbox is rebuilt with the action column
-- and the uniqueness on creates only. It is built with the columns of 0010 (last_status,
-- last_outcome), which 0010 then leaves alone; a store that ran 0010 before this migration
-- keeps its rows and their status and error, not the EHR's last answer (diagnostics only).
CREATE TABLE outbox_rebuilt (
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
    action           TEXT NOT NULL DEFAULT 'create' CHECK (action IN ('create', 'update')),
    last_status      INTEGER,
    last_outcome     TEXT
);
INSERT INTO outbox_rebuilt (id, reading_key, time, destination, status, attempts, next_attempt_at, last_error, created_at,
                            updated_at)
SELECT id, reading_key, time, destination, status, attempts, next_attempt_at, last_error, created_at, updated_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
CREATE UNIQUE INDEX outbox_once_per_destination ON outbox (reading_key, time, destination) WHERE action = 'create';
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
