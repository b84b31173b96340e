"""TimescaleDB SQL for the dashboard: account passwords and a patient's device activity and adherence."""

from __future__ import annotations

import asyncpg

from device_adapters.errors import NotFoundError
from gateway.storage.dashboard_port import BATTERY_KIND, ActivityQuery, DeviceActivity, PatientActivity

_UPSERT_HASH = """
INSERT INTO account_passwords (account_id, hash) VALUES ($1, $2)
ON CONFLICT (account_id) DO UPDATE SET hash = excluded.hash, updated_at = now()
"""
_DEVICES = """
SELECT device_resource_id, max(time) AS last_reading FROM observations
WHERE patient_id = $1 AND time >= $2 GROUP BY device_resource_id ORDER BY device_resource_id
"""
_BATTERIES = f"""
SELECT DISTINCT ON (device_resource_id) device_resource_id, value, time FROM observations
WHERE patient_id = $1 AND kind = '{BATTERY_KIND}' AND time >= $2 AND value IS NOT NULL
ORDER BY device_resource_id, time DESC
"""  # noqa: S608 - a constant
_DAYS = f"""
SELECT count(DISTINCT time_bucket(INTERVAL '1 day', time)) FROM observations
WHERE patient_id = $1 AND time >= $2 AND kind <> '{BATTERY_KIND}'
"""  # noqa: S608 - a constant


async def set_account_password(pool: asyncpg.Pool, account_id: str, password_hash: str) -> None:
    try:
        await pool.execute(_UPSERT_HASH, account_id, password_hash)
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFoundError(f"no account {account_id!r}: add it first (pulsebridge account add)") from exc


async def account_password(pool: asyncpg.Pool, account_id: str) -> str | None:
    value: str | None = await pool.fetchval("SELECT hash FROM account_passwords WHERE account_id = $1", account_id)
    return value


async def patient_activity(pool: asyncpg.Pool, query: ActivityQuery) -> PatientActivity:
    async with pool.acquire() as connection, connection.transaction(readonly=True, isolation="repeatable_read"):
        devices = await connection.fetch(_DEVICES, query.patient_id, query.since)
        batteries = {row["device_resource_id"]: row for row in await connection.fetch(_BATTERIES, query.patient_id, query.since)}
        days = await connection.fetchval(_DAYS, query.patient_id, query.since)
    activity = []
    for row in devices:
        battery = batteries.get(row["device_resource_id"])
        activity.append(
            DeviceActivity(
                row["device_resource_id"],
                row["last_reading"],
                None if battery is None else float(battery["value"]),
                None if battery is None else battery["time"],
            )
        )
    return PatientActivity(query.patient_id, tuple(activity), int(days or 0))
