-- What the EHR last answered for an outbox row: the HTTP status and, for a dead letter, the
-- OperationOutcome it sent (JSON text), so an operator sees why without the EHR's logs.
-- The columns (last_status integer, last_outcome text) are created by 0006, which had to rebuild
-- the outbox table (SQLite cannot drop a UNIQUE constraint) and ran first on any new store; on a
-- store that had run this migration before 0006 existed, 0006 rebuilt the table with them.
SELECT 1;
