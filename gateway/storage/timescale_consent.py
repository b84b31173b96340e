"""TimescaleDB SQL of consents and corrections (see :mod:`gateway.storage.consent` and :mod:`gateway.storage.corrections`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

import asyncpg

from device_adapters.errors import NotFoundError
from gateway.storage.consent import ConsentMode, ConsentRecord, ConsentStatus, effective_sql
from gateway.storage.corrections import CorrectionOutcome, Reviser, StoredReading

_CONSENT_COLUMNS = "patient_id, destination, status, recorded_by, recorded_at"

# An update row per destination that already has this reading (its create row, whatever became
# of it) and whose consent allows it now; the destinations come with their consent rule.
_QUEUE_UPDATES = f"""
INSERT INTO outbox (reading_key, time, destination, action, next_attempt_at, created_at, updated_at)
SELECT $1, $2, d.destination, 'update', $5, $5, $5
FROM unnest($3::text[], $4::text[]) AS d (destination, mode)
LEFT JOIN consents c ON c.patient_id = $6 AND c.destination = d.destination
WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.reading_key = $1 AND o.time = $2 AND o.destination = d.destination
              AND o.action = 'create')
  AND {effective_sql("c.status", "d.mode")}
RETURNING destination
"""  # noqa: S608 - constant text


async def set_consent(
    pool: asyncpg.Pool, patient_id: str, destination: str, status: ConsentStatus, *, recorded_by: str, now: datetime
) -> ConsentRecord:
    """Record the decision (and its history row) unless it is already the one in force, which stays as it was."""
    async with pool.acquire() as connection, connection.transaction():
        if not await connection.fetchval("SELECT 1 FROM patients WHERE id = $1 FOR SHARE", patient_id):
            msg = f"no patient {patient_id!r}"
            raise NotFoundError(msg)
        current = await connection.fetchrow(
            f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE patient_id = $1 AND destination = $2 FOR UPDATE",  # noqa: S608 - constant columns
            patient_id, destination,
        )  # fmt: skip
        if current is not None and current["status"] == status:
            return ConsentRecord(**dict(current))
        await connection.execute(
            "INSERT INTO consents (patient_id, destination, status, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (patient_id, destination) DO UPDATE SET status = EXCLUDED.status, recorded_by = EXCLUDED.recorded_by, "
            "recorded_at = EXCLUDED.recorded_at",
            patient_id, destination, status, recorded_by, now,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO consent_events (patient_id, destination, status, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5)",
            patient_id, destination, status, recorded_by, now,
        )  # fmt: skip
    return ConsentRecord(patient_id, destination, status, recorded_by, now)


async def consents(pool: asyncpg.Pool, patient_id: str) -> list[ConsentRecord]:
    rows = await pool.fetch(
        f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE patient_id = $1 ORDER BY destination",  # noqa: S608 - constant columns
        patient_id,
    )
    return [ConsentRecord(**dict(row)) for row in rows]


async def consent_history(pool: asyncpg.Pool, patient_id: str) -> list[ConsentRecord]:
    rows = await pool.fetch(
        f"SELECT {_CONSENT_COLUMNS} FROM consent_events WHERE patient_id = $1 ORDER BY id",  # noqa: S608 - constant columns
        patient_id,
    )
    return [ConsentRecord(**dict(row)) for row in rows]


async def correct_observation(
    pool: asyncpg.Pool, reading_key: uuid.UUID, revise: Reviser, destinations: Mapping[str, ConsentMode], now: datetime
) -> CorrectionOutcome | None:
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "SELECT reading_key, time, patient_id, kind, unit, value, status, resource::text AS resource FROM observations "
            "WHERE reading_key = $1 LIMIT 1 FOR UPDATE",
            reading_key,
        )
        if row is None:
            return None
        stored = StoredReading(**dict(row))
        revision = revise(stored)
        await connection.execute(
            "UPDATE observations SET resource = $3::jsonb, status = $4, value = $5, received_at = $6 "
            "WHERE reading_key = $1 AND time = $2",
            stored.reading_key, stored.time, revision.resource.decode(), revision.status, revision.value, now,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO observation_corrections (reading_key, time, patient_id, kind, action, reason, corrected_by, "
            "corrected_at, previous_resource) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
            stored.reading_key, stored.time, stored.patient_id, stored.kind, revision.action, revision.reason,
            revision.corrected_by, now, stored.resource,
        )  # fmt: skip
        names = sorted(destinations)
        queued = await connection.fetch(
            _QUEUE_UPDATES, stored.reading_key, stored.time, names, [destinations[name] for name in names], now, stored.patient_id
        )
    return CorrectionOutcome(revision, tuple(sorted(row["destination"] for row in queued)))
