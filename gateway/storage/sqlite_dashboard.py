"""Embedded-store SQL for the dashboard, with the same semantics as ``timescale_dashboard``.

Instants are UTC microseconds, so a UTC day is ``time / 86400000000``.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

from device_adapters.errors import NotFoundError
from gateway.storage.dashboard_port import BATTERY_KIND, ActivityQuery, DeviceActivity, PatientActivity
from gateway.storage.sqlite_time import MICROSECOND, micros, required_instant

_DAY = timedelta(days=1) // MICROSECOND
_UPSERT_HASH = """
INSERT INTO account_passwords (account_id, hash, updated_at) VALUES (?, ?, ?)
ON CONFLICT (account_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at
"""
_DEVICES = """
SELECT device_resource_id, max(time) AS last_reading FROM observations
WHERE patient_id = ? AND time >= ? GROUP BY device_resource_id ORDER BY device_resource_id
"""
# SQLite's bare-column rule: with max(time), the other columns come from the row holding the maximum.
_BATTERIES = f"""
SELECT device_resource_id, CAST(value AS REAL) AS value, max(time) AS time FROM observations
WHERE patient_id = ? AND kind = '{BATTERY_KIND}' AND time >= ? AND value IS NOT NULL GROUP BY device_resource_id
"""  # noqa: S608 - a constant
_DAYS = f"""
SELECT count(DISTINCT time / {_DAY}) FROM observations WHERE patient_id = ? AND time >= ? AND kind <> '{BATTERY_KIND}'
"""  # noqa: S608 - a constant


def set_account_password(connection: sqlite3.Connection, account_id: str, password_hash: str) -> None:
    try:
        connection.execute(_UPSERT_HASH, (account_id, password_hash, micros(datetime.now(UTC))))
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise NotFoundError(f"no account {account_id!r}: add it first (pulsebridge account add)") from exc
        raise


def account_password(connection: sqlite3.Connection, account_id: str) -> str | None:
    row = connection.execute("SELECT hash FROM account_passwords WHERE account_id = ?", (account_id,)).fetchone()
    return None if row is None else str(row["hash"])


def patient_activity(connection: sqlite3.Connection, query: ActivityQuery) -> PatientActivity:
    args = (query.patient_id, micros(query.since))
    devices = connection.execute(_DEVICES, args).fetchall()
    batteries = {row["device_resource_id"]: row for row in connection.execute(_BATTERIES, args).fetchall()}
    days = connection.execute(_DAYS, args).fetchone()[0]
    activity = []
    for row in devices:
        battery = batteries.get(row["device_resource_id"])
        activity.append(
            DeviceActivity(
                uuid.UUID(row["device_resource_id"]),
                required_instant(row["last_reading"]),
                None if battery is None else float(battery["value"]),
                None if battery is None else required_instant(battery["time"]),
            )
        )
    return PatientActivity(query.patient_id, tuple(activity), int(days or 0))
