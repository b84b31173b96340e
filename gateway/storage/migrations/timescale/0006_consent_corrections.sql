-- Consent per patient and EHR destination, and corrections of stored readings (issue 8).

-- Who decided what, and what a reading said before it was corrected, is part of the record: the
-- application never changes those rows (only retention removes corrections, with their reading).
CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;

-- The decision in force per patient and destination (none: the destination's consent rule holds,
-- implied or required). Read when a reading is queued and when a worker claims a row.
CREATE TABLE consents (
    patient_id   text NOT NULL REFERENCES patients (id),
    destination  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('granted', 'revoked')),
    recorded_by  text NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (patient_id, destination)
);

-- Every change of a decision, in order, written in the transaction that changes consents.
CREATE TABLE consent_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id   text NOT NULL REFERENCES patients (id),
    destination  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('granted', 'revoked')),
    recorded_by  text NOT NULL,
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX consent_events_patient ON consent_events (patient_id, id);
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- A reading's FHIR status: final as the mapper writes it, amended or entered-in-error once a care
-- team corrected it. Entered-in-error readings stay (search and read show them, an EHR is told)
-- but no series, rollup or $lastn counts them. A constant default: no table rewrite.
ALTER TABLE observations ADD COLUMN status text NOT NULL DEFAULT 'final'
    CHECK (status IN ('final', 'amended', 'entered-in-error'));
COMMENT ON COLUMN observations.received_at IS
    'arrival, or the last correction: the served meta.lastUpdated (Observation.issued keeps the arrival)';

-- What each correction changed: the resource before it, who and why. Retention removes a
-- reading's corrections with the reading.
CREATE TABLE observation_corrections (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reading_key        uuid NOT NULL,
    time               timestamptz NOT NULL,
    patient_id         text NOT NULL,
    kind               text NOT NULL,
    action             text NOT NULL CHECK (action IN ('entered-in-error', 'amend')),
    reason             text NOT NULL,
    corrected_by       text NOT NULL,
    corrected_at       timestamptz NOT NULL,
    previous_resource  jsonb NOT NULL
);
CREATE INDEX observation_corrections_reading ON observation_corrections (reading_key, time);
CREATE INDEX observation_corrections_time ON observation_corrections (time);
CREATE TRIGGER observation_corrections_append_only BEFORE UPDATE ON observation_corrections
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- Outbox rows are creates (a new reading, once per destination) or updates (a correction, once
-- per correction and destination): the uniqueness holds for creates only.
ALTER TABLE outbox ADD COLUMN action text NOT NULL DEFAULT 'create' CHECK (action IN ('create', 'update'));
ALTER TABLE outbox DROP CONSTRAINT outbox_once_per_destination;
CREATE UNIQUE INDEX outbox_once_per_destination ON outbox (reading_key, time, destination) WHERE action = 'create';
