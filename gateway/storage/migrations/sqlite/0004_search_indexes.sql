-- FHIR search by device (Observation?device=…) without a scan of the whole table.
-- Identifier search is served by the unique (reading_key, time) index already.
CREATE INDEX observations_device_time ON observations (device_resource_id, time DESC);
