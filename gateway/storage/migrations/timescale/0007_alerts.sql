-- Alerts (issue 10): one row per alert, kept when resolved; per-patient rules that replace the
-- configured defaults.
CREATE TABLE alerts (
    id               uuid PRIMARY KEY,
    patient_id       text NOT NULL REFERENCES patients (id),
    rule             text NOT NULL,
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    status           text NOT NULL CHECK (status IN ('open', 'acknowledged', 'snoozed', 'resolved')),
    summary          text NOT NULL,
    raised_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    cleared_at       timestamptz,
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    snoozed_until    timestamptz,
    detail           jsonb NOT NULL DEFAULT '{}',
    CHECK ((status = 'resolved') = (cleared_at IS NOT NULL)),
    CHECK (status <> 'snoozed' OR snoozed_until IS NOT NULL)
);
-- De-duplication: one unresolved alert per patient, rule and kind, even across gateway processes.
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (patient_id, rule, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_patient_raised ON alerts (patient_id, raised_at DESC);
CREATE INDEX alerts_snoozed ON alerts (snoozed_until) WHERE status = 'snoozed';

CREATE TABLE alert_rules (
    patient_id  text PRIMARY KEY REFERENCES patients (id),
    rules       jsonb NOT NULL,
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL
);
