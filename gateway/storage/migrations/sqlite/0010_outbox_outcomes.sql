-- What the EHR last answered for an outbox row: the HTTP status and, for a dead letter, the
-- OperationOutcome it sent (JSON text), so an operator sees why without the EHR's logs.
ALTER TABLE outbox ADD COLUMN last_status integer;
ALTER TABLE outbox ADD COLUMN last_outcome text;
