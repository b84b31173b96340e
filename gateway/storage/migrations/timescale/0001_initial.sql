-- Registry, observations hypertable and quarantine.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE patients (
    id          text PRIMARY KEY,
    name        text,
    mrn         text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    resource_id   uuid PRIMARY KEY,
    device_id     text NOT NULL UNIQUE,
    kind          text,
    display_name  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Readings are attributed by the device's own time: a cuff lent to A, then to B.
CREATE TABLE device_assignments (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_resource_id  uuid NOT NULL REFERENCES devices (resource_id),
    patient_id          text NOT NULL REFERENCES patients (id),
    valid_from          timestamptz,
    valid_to            timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to)
);
CREATE INDEX device_assignments_device ON device_assignments (device_resource_id);

CREATE TABLE observations (
    time                timestamptz NOT NULL,
    reading_key         uuid NOT NULL,
    patient_id          text NOT NULL,
    device_resource_id  uuid NOT NULL,
    kind                text NOT NULL,
    code                text NOT NULL,
    value               numeric,
    unit                text NOT NULL,
    resource            jsonb NOT NULL,
    received_at         timestamptz NOT NULL,
    source              text NOT NULL,
    -- TimescaleDB requires the partitioning column in every unique index; the key already
    -- determines the time, so this is uniqueness of the reading key.
    CONSTRAINT observations_reading_key UNIQUE (reading_key, time)
);
-- 7-day chunks: a programme of 10,000 patients sending ~50 readings a day writes ~3.5 M rows
-- (~4 GB with the FHIR JSON and indexes) a week, so a chunk's indexes stay in memory on a
-- modest server, and per-kind retention drops whole weeks.
SELECT create_hypertable('observations', by_range('time', INTERVAL '7 days'));
CREATE INDEX observations_patient_kind_time ON observations (patient_id, kind, time DESC);
CREATE INDEX observations_patient_time ON observations (patient_id, time DESC);

CREATE TABLE quarantine (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint  bytea NOT NULL UNIQUE,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    seen_count   integer NOT NULL DEFAULT 1,
    source       text NOT NULL,
    channel      text NOT NULL,
    device_id    text,
    stage        text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    item_index   integer,
    payload      bytea NOT NULL
);
CREATE INDEX quarantine_last_seen ON quarantine (last_seen DESC);
