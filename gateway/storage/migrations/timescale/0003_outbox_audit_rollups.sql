-- Outbox, audit trail, hourly rollups and the maintenance watermark (issue 6).
-- Migration versions are recorded in schema_migrations, which the migrator itself creates.

-- One row per stored reading and EHR destination: a reading is pushed once to each EHR that
-- cares for the patient. Filled in the transaction that stores the reading once destinations
-- exist (the EHR push issue); workers claim due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reading_key      uuid NOT NULL,
    time             timestamptz NOT NULL,
    destination      text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outbox_once_per_destination UNIQUE (reading_key, time, destination)
);
COMMENT ON TABLE outbox IS 'EHR push ledger: stored = pushed (done) + dead_lettered (dead) + pending';
-- Only pending rows are claimed, oldest due first: a partial index stays small as rows finish.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';

-- Append-only trail of who did what; each row's hash chains the previous one (tamper evidence).
CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    entity       text NOT NULL,
    outcome      text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash    bytea,
    hash         bytea NOT NULL
);
COMMENT ON TABLE audit_events IS 'append-only: rows are inserted, never updated or deleted';
CREATE INDEX audit_events_recorded_at ON audit_events (recorded_at);

-- Hourly aggregates of numeric readings, recomputed from raw rows by the maintenance pass and
-- kept after raw retention drops the rows. Glucose kinds keep the device's unit, so a bucket is
-- per unit as well; mean = sum / count.
CREATE TABLE observation_rollups_hourly (
    patient_id  text NOT NULL,
    kind        text NOT NULL,
    unit        text NOT NULL,
    bucket      timestamptz NOT NULL,
    count       bigint NOT NULL,
    min         numeric NOT NULL,
    max         numeric NOT NULL,
    sum         numeric NOT NULL,
    last_value  numeric NOT NULL,
    last_time   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, kind, bucket, unit)
);

-- Where the last maintenance pass stopped (received_at watermark of the rollups).
CREATE TABLE maintenance_state (
    name   text PRIMARY KEY,
    value  timestamptz NOT NULL
);

-- The rollup pass looks for rows received since its watermark; BRIN is nearly free to maintain
-- on an append-mostly column (a B-tree here would cost every insert).
CREATE INDEX observations_received_at ON observations USING brin (received_at);
