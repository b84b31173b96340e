"""TimescaleDB SQL of edge hubs (see :mod:`gateway.storage.hubs`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import asyncpg

from device_adapters.errors import RegistryError
from gateway.storage.hubs import HubDevice, HubHeartbeat, HubRecord

_HUB_COLUMNS = "id, online, presence_at, last_heartbeat_at, version, queue_depth, clock_skew_seconds, alarms"
_DEVICE_COLUMNS = "hub_id, device_id, address, paired_at, connected, battery_percent, rssi, last_seen_at"


async def pair(pool: asyncpg.Pool, hub_id: str, device_id: str, address: str, now: datetime) -> None:
    async with pool.acquire() as connection, connection.transaction():
        if await connection.fetchval("SELECT 1 FROM devices WHERE device_id = $1", device_id) is None:
            raise RegistryError(f"device {device_id!r} is not registered")
        await connection.execute("INSERT INTO hubs (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", hub_id, now)
        # One hub per device: pairing it with another hub moves it (the old hub stops being sent it).
        await connection.execute(
            "INSERT INTO hub_devices (device_id, hub_id, address, paired_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (device_id) DO UPDATE SET hub_id = $2, address = $3, paired_at = $4, "
            "connected = NULL, battery_percent = NULL, rssi = NULL, last_seen_at = NULL",
            device_id, hub_id, address, now,
        )  # fmt: skip


async def unpair(pool: asyncpg.Pool, hub_id: str, device_id: str) -> bool:
    result = await pool.execute("DELETE FROM hub_devices WHERE hub_id = $1 AND device_id = $2", hub_id, device_id)
    return bool(result != "DELETE 0")


async def devices(pool: asyncpg.Pool, hub_ids: Collection[str] | None) -> list[HubDevice]:
    if hub_ids is None:
        rows = await pool.fetch(f"SELECT {_DEVICE_COLUMNS} FROM hub_devices ORDER BY hub_id, device_id")  # noqa: S608 - fixed columns
    else:
        rows = await pool.fetch(
            f"SELECT {_DEVICE_COLUMNS} FROM hub_devices WHERE hub_id = ANY($1::text[]) ORDER BY hub_id, device_id",  # noqa: S608 - a fixed column list, values are parameters
            list(hub_ids),
        )
    return [HubDevice(**dict(row)) for row in rows]


async def presence(pool: asyncpg.Pool, hub_id: str, online: bool, at: datetime) -> None:  # noqa: FBT001 - the state itself
    await pool.execute(
        "INSERT INTO hubs (id, created_at, online, presence_at) VALUES ($1, $3, $2, $3) "
        "ON CONFLICT (id) DO UPDATE SET online = $2, presence_at = $3",
        hub_id, online, at,
    )  # fmt: skip


async def heartbeat(pool: asyncpg.Pool, beat: HubHeartbeat) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO hubs (id, created_at, online, last_heartbeat_at, version, queue_depth, clock_skew_seconds, alarms) "
            "VALUES ($1, $2, true, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET online = true, last_heartbeat_at = $2, "
            "version = $3, queue_depth = $4, clock_skew_seconds = $5, alarms = $6",
            beat.hub_id, beat.received_at, beat.version, beat.queue_depth, beat.clock_skew_seconds, ",".join(beat.alarms),
        )  # fmt: skip
        # Only devices paired with this hub: a hub cannot write another hub's device status.
        await connection.executemany(
            "UPDATE hub_devices SET connected = $3, battery_percent = $4, rssi = $5, "
            "last_seen_at = GREATEST(last_seen_at, $6) WHERE hub_id = $1 AND device_id = $2",
            [(beat.hub_id, d.device_id, d.connected, d.battery_percent, d.rssi, d.last_seen_at) for d in beat.devices],
        )


async def hubs(pool: asyncpg.Pool) -> list[HubRecord]:
    rows = await pool.fetch(
        f"SELECT {_HUB_COLUMNS} FROM hubs ORDER BY id"  # noqa: S608 - fixed columns
    )
    return [
        HubRecord(row["id"], row["online"], row["presence_at"], row["last_heartbeat_at"], row["version"], row["queue_depth"],
                  row["clock_skew_seconds"], tuple(filter(None, row["alarms"].split(","))))
        for row in rows
    ]  # fmt: skip
