-- Patients, devices and access (issue 7): accounts, care teams, caregiver delegations, EHR
-- identifiers, user slots of shared devices, pairing codes, device credentials; and the audit
-- trail made append-only.

-- Who signs in. A patient's account names their own Patient; no other account does.
CREATE TABLE accounts (
    id            text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('patient', 'caregiver', 'practitioner', 'admin', 'system')),
    display_name  text,
    patient_id    text REFERENCES patients (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz,
    CHECK ((role = 'patient') = (patient_id IS NOT NULL))
);

CREATE TABLE care_teams (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE care_team_members (
    team_id     text NOT NULL REFERENCES care_teams (id),
    account_id  text NOT NULL REFERENCES accounts (id),
    PRIMARY KEY (team_id, account_id)
);
-- Relationships are looked up per request by account.
CREATE INDEX care_team_members_account ON care_team_members (account_id);

CREATE TABLE care_team_patients (
    team_id     text NOT NULL REFERENCES care_teams (id),
    patient_id  text NOT NULL REFERENCES patients (id),
    PRIMARY KEY (team_id, patient_id)
);

-- Revoked rows stay: who could see whom, and when, is part of the record.
CREATE TABLE caregiver_delegations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  text NOT NULL REFERENCES patients (id),
    account_id  text NOT NULL REFERENCES accounts (id),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX caregiver_delegations_active ON caregiver_delegations (patient_id, account_id) WHERE revoked_at IS NULL;
CREATE INDEX caregiver_delegations_account ON caregiver_delegations (account_id) WHERE revoked_at IS NULL;

-- A patient's identifier in each EHR that cares for them (an MRN per system).
CREATE TABLE patient_identifiers (
    patient_id  text NOT NULL REFERENCES patients (id),
    system      text NOT NULL,
    value       text NOT NULL,
    PRIMARY KEY (system, value)
);
CREATE INDEX patient_identifiers_patient ON patient_identifiers (patient_id);

-- Shared BP cuffs and scales report a user number: each slot is lent to a patient for a time,
-- like device_assignments.
CREATE TABLE device_user_slots (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_resource_id  uuid NOT NULL REFERENCES devices (resource_id),
    user_slot           integer NOT NULL CHECK (user_slot >= 0),
    patient_id          text NOT NULL REFERENCES patients (id),
    valid_from          timestamptz,
    valid_to            timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from < valid_to)
);
CREATE INDEX device_user_slots_device ON device_user_slots (device_resource_id, user_slot);

-- Only the keyed digest of a code is kept: a copy of the database pairs nothing.
CREATE TABLE pairing_codes (
    digest       bytea PRIMARY KEY,
    patient_id   text NOT NULL REFERENCES patients (id),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    device_kind  text,
    attempts     integer NOT NULL DEFAULT 0,
    redeemed_at  timestamptz,
    device_id    text
);

-- Hashes only (the secret is shown once, when issued).
CREATE TABLE device_credentials (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_resource_id  uuid NOT NULL REFERENCES devices (resource_id),
    kind                text NOT NULL CHECK (kind IN ('mqtt-password', 'api-token')),
    secret_hash         text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz
);
CREATE INDEX device_credentials_device ON device_credentials (device_resource_id);

-- The audit chain covers the event's own id and its patient; nothing wrote audit_events before
-- this migration, so the columns can be required.
ALTER TABLE audit_events
    ADD COLUMN event_id uuid NOT NULL UNIQUE,
    ADD COLUMN patient_id text;
CREATE INDEX audit_events_patient ON audit_events (patient_id, id DESC);

-- Append-only: the application cannot change or remove a row. A superuser can disable the
-- trigger, and the hash chain then shows the change (pulsebridge audit verify). TRUNCATE is
-- not a row event and stays possible for whoever owns the table.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
