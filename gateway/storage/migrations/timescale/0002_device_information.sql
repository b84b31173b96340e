-- What a device says about itself (Bluetooth Device Information), for its FHIR Device.
ALTER TABLE devices
    ADD COLUMN manufacturer text,
    ADD COLUMN model text,
    ADD COLUMN serial_number text,
    ADD COLUMN firmware text;
