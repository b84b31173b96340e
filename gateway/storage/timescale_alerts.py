"""TimescaleDB SQL of the alerts (see :mod:`gateway.storage.alerts`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

import asyncpg

from device_adapters.errors import StorageError
from gateway.storage.alerts import (
    SEVERITY_RANK,
    AlertCandidate,
    AlertKey,
    AlertQuery,
    AlertRecord,
    DeviceActivity,
    RuleRecord,
)

_INSERT = (
    "INSERT INTO alerts (id, patient_id, rule, kind, severity, status, summary, raised_at, updated_at, detail) "
    "VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $7, $8::jsonb) "
    "ON CONFLICT (patient_id, rule, kind) WHERE status <> 'resolved' DO NOTHING RETURNING *"
)
_ACTIVITY = """
SELECT d.device_id, a.patient_id, coalesce(a.valid_from, a.created_at) AS watched_from,
       (SELECT max(o.time) FROM observations o
         WHERE o.device_resource_id = d.resource_id AND o.time > $2) AS last_time,
       (SELECT o.value FROM observations o
         WHERE o.device_resource_id = d.resource_id AND o.kind = 'battery_level' AND o.time > $2
         ORDER BY o.time DESC LIMIT 1) AS battery
FROM device_assignments a JOIN devices d ON d.resource_id = a.device_resource_id
WHERE (a.valid_from IS NULL OR a.valid_from <= $1) AND (a.valid_to IS NULL OR a.valid_to > $1)
ORDER BY d.device_id
"""

Translated = Callable[[str], AbstractAsyncContextManager[None]]


def _record(row: asyncpg.Record) -> AlertRecord:
    return AlertRecord(
        row["id"], AlertKey(row["patient_id"], row["rule"], row["kind"]), row["severity"], row["status"], row["summary"],
        row["raised_at"], row["updated_at"], row["cleared_at"], row["acknowledged_by"], row["acknowledged_at"],
        row["snoozed_until"], json.loads(row["detail"]),
    )  # fmt: skip


class TimescaleAlerts:
    def __init__(self, pool: asyncpg.Pool, translated: Translated) -> None:
        self._pool = pool
        self._translated = translated

    async def raise_alert(self, candidate: AlertCandidate) -> tuple[AlertRecord, bool]:
        key = candidate.key
        detail = json.dumps(dict(candidate.detail))
        async with self._translated("raise an alert"), self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                _INSERT, uuid.uuid4(), key.patient_id, key.rule, key.kind, candidate.severity, candidate.summary, candidate.at,
                detail,
            )  # fmt: skip
            if row is not None:
                return _record(row), True
            # The unresolved row exists; the insert's conflict check waited for any writer holding it.
            current = await connection.fetchrow(
                "SELECT * FROM alerts WHERE patient_id = $1 AND rule = $2 AND kind = $3 "
                "AND status <> 'resolved' FOR UPDATE",
                key.patient_id, key.rule, key.kind,
            )  # fmt: skip
            if current is None:
                msg = f"the unresolved alert {key} was resolved while it was raised again"
                raise StorageError(msg)
            if current["severity"] == candidate.severity:
                return _record(current), False
            # A rise in severity needs someone to look again: an acknowledged alert opens again.
            reopen = SEVERITY_RANK[candidate.severity] > SEVERITY_RANK[current["severity"]]
            row = await connection.fetchrow(
                "UPDATE alerts SET severity = $2, summary = $3, detail = $4::jsonb, updated_at = $5, "
                "status = CASE WHEN $6 AND status = 'acknowledged' THEN 'open' ELSE status END "
                "WHERE id = $1 RETURNING *",
                current["id"], candidate.severity, candidate.summary, detail, candidate.at, reopen,
            )  # fmt: skip
            assert row is not None  # noqa: S101 - locked above
            return _record(row), True

    async def resolve_alert(self, key: AlertKey, at: datetime) -> AlertRecord | None:
        async with self._translated("resolve an alert"):
            row = await self._pool.fetchrow(
                "UPDATE alerts SET status = 'resolved', cleared_at = $4, updated_at = $4, snoozed_until = NULL "
                "WHERE patient_id = $1 AND rule = $2 AND kind = $3 AND status <> 'resolved' RETURNING *",
                key.patient_id, key.rule, key.kind, at,
            )  # fmt: skip
        return None if row is None else _record(row)

    async def list_alerts(self, query: AlertQuery) -> list[AlertRecord]:
        patients = None if query.patient_ids is None else sorted(query.patient_ids)
        statuses = None if query.statuses is None else sorted(query.statuses)
        async with self._translated("list alerts"):
            rows = await self._pool.fetch(
                "SELECT * FROM alerts WHERE ($1::text[] IS NULL OR patient_id = ANY($1)) "
                "AND ($2::text[] IS NULL OR status = ANY($2)) ORDER BY raised_at DESC, id LIMIT $3",
                patients, statuses, query.limit,
            )  # fmt: skip
        return [_record(row) for row in rows]

    async def get_alert(self, alert_id: uuid.UUID) -> AlertRecord | None:
        async with self._translated("read an alert"):
            row = await self._pool.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        return None if row is None else _record(row)

    async def acknowledge_alert(self, alert_id: uuid.UUID, by: str, at: datetime) -> AlertRecord | None:
        async with self._translated("acknowledge an alert"):
            row = await self._pool.fetchrow(
                "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3, updated_at = $3, "
                "snoozed_until = NULL WHERE id = $1 AND status <> 'resolved' RETURNING *",
                alert_id, by, at,
            )  # fmt: skip
        return None if row is None else _record(row)

    async def snooze_alert(self, alert_id: uuid.UUID, until: datetime, by: str, at: datetime) -> AlertRecord | None:
        async with self._translated("snooze an alert"):
            row = await self._pool.fetchrow(
                "UPDATE alerts SET status = 'snoozed', snoozed_until = $2, acknowledged_by = $3, acknowledged_at = $4, "
                "updated_at = $4 WHERE id = $1 AND status <> 'resolved' RETURNING *",
                alert_id, until, by, at,
            )  # fmt: skip
        return None if row is None else _record(row)

    async def wake_snoozed(self, at: datetime) -> list[AlertRecord]:
        async with self._translated("wake snoozed alerts"):
            rows = await self._pool.fetch(
                "UPDATE alerts SET status = 'open', snoozed_until = NULL, updated_at = $1 "
                "WHERE status = 'snoozed' AND snoozed_until <= $1 RETURNING *",
                at,
            )
        return [_record(row) for row in rows]

    async def alert_rules(self, patient_id: str) -> RuleRecord | None:
        async with self._translated("read alert rules"):
            row = await self._pool.fetchrow(
                "SELECT patient_id, rules::text AS rules, updated_by, updated_at FROM alert_rules WHERE patient_id = $1",
                patient_id,
            )
        return None if row is None else RuleRecord(row["patient_id"], row["rules"], row["updated_by"], row["updated_at"])

    async def set_alert_rules(self, patient_id: str, rules: str | None, by: str, at: datetime) -> None:
        async with self._translated("store alert rules"):
            if rules is None:
                await self._pool.execute("DELETE FROM alert_rules WHERE patient_id = $1", patient_id)
                return
            await self._pool.execute(
                "INSERT INTO alert_rules (patient_id, rules, updated_by, updated_at) VALUES ($1, $2::jsonb, $3, $4) "
                "ON CONFLICT (patient_id) DO UPDATE SET rules = EXCLUDED.rules, updated_by = EXCLUDED.updated_by, "
                "updated_at = EXCLUDED.updated_at",
                patient_id, rules, by, at,
            )  # fmt: skip

    async def device_activity(self, now: datetime, since: datetime) -> list[DeviceActivity]:
        async with self._translated("read device activity"):
            rows = await self._pool.fetch(_ACTIVITY, now, since)
        return [
            DeviceActivity(row["device_id"], row["patient_id"], row["watched_from"], row["last_time"], row["battery"])
            for row in rows
        ]
