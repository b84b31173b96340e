-- Edge hubs: the devices paired with each hub (sent to it as its retained configuration; the
-- gateway accepts a device's readings from a hub only while the device is paired with it),
-- and what the hub last said about itself and its devices (presence, heartbeat).
CREATE TABLE hubs (
    id                 text PRIMARY KEY,
    created_at         timestamptz NOT NULL DEFAULT now(),
    online             boolean NOT NULL DEFAULT false,
    presence_at        timestamptz,
    last_heartbeat_at  timestamptz,
    version            text,
    queue_depth        bigint,
    clock_skew_seconds double precision,
    alarms             text NOT NULL DEFAULT ''
);

CREATE TABLE hub_devices (
    device_id        text PRIMARY KEY REFERENCES devices (device_id),
    hub_id           text NOT NULL REFERENCES hubs (id),
    address          text NOT NULL,
    paired_at        timestamptz NOT NULL,
    connected        boolean,
    battery_percent  smallint,
    rssi             smallint,
    last_seen_at     timestamptz
);
CREATE INDEX hub_devices_hub ON hub_devices (hub_id);
