-- Patients, devices and access (mirrors TimescaleDB's 0005). Times are UTC microseconds since 1970.
CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('patient', 'caregiver', 'practitioner', 'admin', 'system')),
    display_name  TEXT,
    patient_id    TEXT REFERENCES patients (id),
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER,
    CHECK ((role = 'patient') = (patient_id IS NOT NULL))
);

CREATE TABLE care_teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE care_team_members (
    team_id     TEXT NOT NULL REFERENCES care_teams (id),
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    PRIMARY KEY (team_id, account_id)
);
CREATE INDEX care_team_members_account ON care_team_members (account_id);

CREATE TABLE care_team_patients (
    team_id     TEXT NOT NULL REFERENCES care_teams (id),
    patient_id  TEXT NOT NULL REFERENCES patients (id),
    PRIMARY KEY (team_id, patient_id)
);

CREATE TABLE caregiver_delegations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id  TEXT NOT NULL REFERENCES patients (id),
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    granted_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE UNIQUE INDEX caregiver_delegations_active ON caregiver_delegations (patient_id, account_id) WHERE revoked_at IS NULL;
CREATE INDEX caregiver_delegations_account ON caregiver_delegations (account_id) WHERE revoked_at IS NULL;

CREATE TABLE patient_identifiers (
    patient_id  TEXT NOT NULL REFERENCES patients (id),
    system      TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (system, value)
);
CREATE INDEX patient_identifiers_patient ON patient_identifiers (patient_id);

CREATE TABLE device_user_slots (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    device_resource_id  TEXT NOT NULL REFERENCES devices (resource_id),
    user_slot           INTEGER NOT NULL CHECK (user_slot >= 0),
    patient_id          TEXT NOT NULL REFERENCES patients (id),
    valid_from          INTEGER,
    valid_to            INTEGER,
    created_at          INTEGER NOT NULL,
    CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to)
);
CREATE INDEX device_user_slots_device ON device_user_slots (device_resource_id, user_slot);

CREATE TABLE pairing_codes (
    digest       BLOB PRIMARY KEY,
    patient_id   TEXT NOT NULL REFERENCES patients (id),
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    device_kind  TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    redeemed_at  INTEGER,
    device_id    TEXT
);

CREATE TABLE device_credentials (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    device_resource_id  TEXT NOT NULL REFERENCES devices (resource_id),
    kind                TEXT NOT NULL CHECK (kind IN ('mqtt-password', 'api-token')),
    secret_hash         TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    revoked_at          INTEGER
);
CREATE INDEX device_credentials_device ON device_credentials (device_resource_id);

-- SQLite cannot add a NOT NULL column without a default: the store always writes event_id.
ALTER TABLE audit_events ADD COLUMN event_id TEXT;
ALTER TABLE audit_events ADD COLUMN patient_id TEXT;
CREATE UNIQUE INDEX audit_events_event_id ON audit_events (event_id);
CREATE INDEX audit_events_patient ON audit_events (patient_id, id DESC);

-- Append-only, as in TimescaleDB: whoever edits the file directly is caught by the hash chain.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;
