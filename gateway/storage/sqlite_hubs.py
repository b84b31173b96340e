"""SQLite SQL of edge hubs (see :mod:`gateway.storage.hubs`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime

from device_adapters.errors import RegistryError
from gateway.storage.hubs import HubDevice, HubHeartbeat, HubRecord
from gateway.storage.sqlite_time import instant, micros, required_instant

_HUB_COLUMNS = "id, online, presence_at, last_heartbeat_at, version, queue_depth, clock_skew_seconds, alarms"
_DEVICE_COLUMNS = "hub_id, device_id, address, paired_at, connected, battery_percent, rssi, last_seen_at"


def pair(connection: sqlite3.Connection, hub_id: str, device_id: str, address: str, now: datetime) -> None:
    if connection.execute("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)).fetchone() is None:
        raise RegistryError(f"device {device_id!r} is not registered")
    connection.execute("INSERT INTO hubs (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (hub_id, micros(now)))
    connection.execute(
        "INSERT INTO hub_devices (device_id, hub_id, address, paired_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (device_id) DO UPDATE SET hub_id = excluded.hub_id, address = excluded.address, "
        "paired_at = excluded.paired_at, connected = NULL, battery_percent = NULL, rssi = NULL, last_seen_at = NULL",
        (device_id, hub_id, address, micros(now)),
    )


def unpair(connection: sqlite3.Connection, hub_id: str, device_id: str) -> bool:
    return connection.execute("DELETE FROM hub_devices WHERE hub_id = ? AND device_id = ?", (hub_id, device_id)).rowcount > 0


def devices(connection: sqlite3.Connection, hub_ids: Collection[str] | None) -> list[HubDevice]:
    rows = connection.execute(f"SELECT {_DEVICE_COLUMNS} FROM hub_devices ORDER BY hub_id, device_id").fetchall()  # noqa: S608 - fixed columns
    return [
        HubDevice(row["hub_id"], row["device_id"], row["address"], required_instant(row["paired_at"]),
                  None if row["connected"] is None else bool(row["connected"]), row["battery_percent"], row["rssi"],
                  instant(row["last_seen_at"]))
        for row in rows
        if hub_ids is None or row["hub_id"] in hub_ids
    ]  # fmt: skip


def presence(connection: sqlite3.Connection, hub_id: str, online: bool, at: datetime) -> None:  # noqa: FBT001 - the state itself
    connection.execute(
        "INSERT INTO hubs (id, created_at, online, presence_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET online = excluded.online, presence_at = excluded.presence_at",
        (hub_id, micros(at), int(online), micros(at)),
    )


def heartbeat(connection: sqlite3.Connection, beat: HubHeartbeat) -> None:
    at = micros(beat.received_at)
    connection.execute(
        "INSERT INTO hubs (id, created_at, online, last_heartbeat_at, version, queue_depth, clock_skew_seconds, alarms) "
        "VALUES (?, ?, 1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET online = 1, "
        "last_heartbeat_at = excluded.last_heartbeat_at, "
        "version = excluded.version, queue_depth = excluded.queue_depth, clock_skew_seconds = excluded.clock_skew_seconds, "
        "alarms = excluded.alarms",
        (beat.hub_id, at, at, beat.version, beat.queue_depth, beat.clock_skew_seconds, ",".join(beat.alarms)),
    )
    connection.executemany(
        "UPDATE hub_devices SET connected = ?, battery_percent = ?, rssi = ?, "
        "last_seen_at = COALESCE(max(last_seen_at, ?), last_seen_at, ?) WHERE hub_id = ? AND device_id = ?",
        [
            (int(d.connected), d.battery_percent, d.rssi, _at(d.last_seen_at), _at(d.last_seen_at), beat.hub_id, d.device_id)
            for d in beat.devices
        ],
    )  # fmt: skip


def hubs(connection: sqlite3.Connection) -> list[HubRecord]:
    rows = connection.execute(
        f"SELECT {_HUB_COLUMNS} FROM hubs ORDER BY id"  # noqa: S608 - fixed columns
    ).fetchall()
    return [
        HubRecord(row["id"], bool(row["online"]), instant(row["presence_at"]), instant(row["last_heartbeat_at"]), row["version"],
                  row["queue_depth"], row["clock_skew_seconds"], tuple(filter(None, row["alarms"].split(","))))
        for row in rows
    ]  # fmt: skip


def _at(value: datetime | None) -> int | None:
    return None if value is None else micros(value)
