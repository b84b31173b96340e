-- Alerts (issue 10): one row per alert, kept when resolved; per-patient rules that replace the
-- configured defaults. Instants are UTC microseconds.
CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    patient_id       TEXT NOT NULL REFERENCES patients (id),
    rule             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    severity         TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    status           TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'snoozed', 'resolved')),
    summary          TEXT NOT NULL,
    raised_at        INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    cleared_at       INTEGER,
    acknowledged_by  TEXT,
    acknowledged_at  INTEGER,
    snoozed_until    INTEGER,
    detail           TEXT NOT NULL DEFAULT '{}',
    CHECK ((status = 'resolved') = (cleared_at IS NOT NULL)),
    CHECK (status <> 'snoozed' OR snoozed_until IS NOT NULL)
);
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (patient_id, rule, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_patient_raised ON alerts (patient_id, raised_at DESC);

CREATE TABLE alert_rules (
    patient_id  TEXT PRIMARY KEY REFERENCES patients (id),
    rules       TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
