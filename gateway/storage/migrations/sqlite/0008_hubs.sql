-- Edge hubs (mirrors TimescaleDB's 0008). Times are UTC microseconds since 1970.
CREATE TABLE hubs (
    id                 TEXT PRIMARY KEY,
    created_at         INTEGER NOT NULL,
    online             INTEGER NOT NULL DEFAULT 0,
    presence_at        INTEGER,
    last_heartbeat_at  INTEGER,
    version            TEXT,
    queue_depth        INTEGER,
    clock_skew_seconds REAL,
    alarms             TEXT NOT NULL DEFAULT ''
);

CREATE TABLE hub_devices (
    device_id        TEXT PRIMARY KEY REFERENCES devices (device_id),
    hub_id           TEXT NOT NULL REFERENCES hubs (id),
    address          TEXT NOT NULL,
    paired_at        INTEGER NOT NULL,
    connected        INTEGER,
    battery_percent  INTEGER,
    rssi             INTEGER,
    last_seen_at     INTEGER
);
CREATE INDEX hub_devices_hub ON hub_devices (hub_id);
