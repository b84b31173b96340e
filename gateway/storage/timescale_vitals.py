"""TimescaleDB SQL for vitals series, exports, hourly rollups and raw retention.

Kept apart from ``timescale.py`` (the write path and registry); the adapter's methods call these
inside its error translation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from gateway.storage.port import (
    ExportQuery,
    ExportRow,
    MaintenancePass,
    MaintenanceReport,
    RetentionPlan,
    VitalsBucket,
    VitalsQuery,
)

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_MAINTENANCE_LOCK = 0x70756C7366  # one maintenance pass at a time across gateway processes
_WATERMARK = "rollups_received_at"
ROLLUP_SLICE = timedelta(hours=6)
"""Received-at span one rollup statement covers: a few seconds of work at 10,000 patients."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_VITALS = """
SELECT time_bucket($5::interval, time, $6::timestamptz) AS start, unit, count(*) AS count,
       min(value)::float8 AS min, max(value)::float8 AS max, avg(value)::float8 AS mean,
       last(value, time)::float8 AS last, max(time) AS last_time
FROM observations
WHERE patient_id = $1 AND kind = $2 AND time >= $3 AND time < $4 AND value IS NOT NULL AND status <> 'entered-in-error'
GROUP BY 1, 2 ORDER BY 1, 2
"""


def _touched(only: str = "") -> str:
    """The kinds' cutoffs and the buckets with a row received in ``($1, $5]`` (and ``only``)."""
    return f"""
WITH cutoffs AS (
    SELECT kind, before FROM unnest($2::text[], $3::timestamptz[]) AS c (kind, before)
), touched AS (
    SELECT DISTINCT patient_id, kind, time_bucket('1 hour', time) AS bucket
    FROM observations WHERE received_at > $1 AND received_at <= $5 AND value IS NOT NULL{only}
)"""  # noqa: S608 - constant text


_KIND_CUTOFF = (
    "COALESCE(CASE WHEN t.kind IN (SELECT kind FROM cutoffs) THEN (SELECT before FROM cutoffs c WHERE c.kind = t.kind) "
    "ELSE $4 END, '-infinity')"
)

# Buckets with a row received since the watermark are recomputed whole from their raw rows, so
# a late or out-of-order arrival gives the same rollup as if it had come in order. A bucket
# older than its kind's retention cutoff that already has a rollup is left alone: its raw rows
# were dropped, and recomputing from a late straggler would overwrite a complete rollup with a
# partial one (the straggler, older than retention, is dropped with the rest).
_REFRESH_ROLLUPS = f"""{_touched()}
INSERT INTO observation_rollups_hourly AS r
    (patient_id, kind, unit, bucket, count, min, max, sum, last_value, last_time, updated_at)
SELECT t.patient_id, t.kind, a.unit, t.bucket, a.count, a.min, a.max, a.sum, a.last_value, a.last_time, now()
FROM touched t
-- LATERAL: one probe of the (patient_id, kind, time) index per bucket, with the chunks outside
-- the bucket excluded at run time; a plain join here sorts and merges the whole hypertable.
CROSS JOIN LATERAL (
    SELECT o.unit, count(*) AS count, min(o.value) AS min, max(o.value) AS max, sum(o.value) AS sum,
           last(o.value, o.time) AS last_value, max(o.time) AS last_time
    FROM observations o
    WHERE o.patient_id = t.patient_id AND o.kind = t.kind AND o.time >= t.bucket AND o.time < t.bucket + interval '1 hour'
          AND o.value IS NOT NULL AND o.status <> 'entered-in-error'
    GROUP BY o.unit
) AS a
WHERE t.bucket >= {_KIND_CUTOFF}
    OR NOT EXISTS (SELECT 1 FROM observation_rollups_hourly e
                   WHERE e.patient_id = t.patient_id AND e.kind = t.kind AND e.bucket = t.bucket)
ON CONFLICT (patient_id, kind, bucket, unit) DO UPDATE SET
    count = EXCLUDED.count, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
    last_value = EXCLUDED.last_value, last_time = EXCLUDED.last_time, updated_at = EXCLUDED.updated_at
"""  # noqa: S608 - constant text

# A bucket left without a reading that counts in some unit (all marked entered in error) loses
# that unit's rollup; only buckets with a reading marked since the watermark can. Buckets past
# their kind's retention cutoff keep theirs: their raw rows may be gone.
_DELETE_EMPTIED = f"""{_touched(" AND status = 'entered-in-error'")}
DELETE FROM observation_rollups_hourly r USING touched t
WHERE r.patient_id = t.patient_id AND r.kind = t.kind AND r.bucket = t.bucket AND t.bucket >= {_KIND_CUTOFF}
    AND NOT EXISTS (SELECT 1 FROM observations o
                    WHERE o.patient_id = r.patient_id AND o.kind = r.kind AND o.unit = r.unit AND o.time >= r.bucket
                          AND o.time < r.bucket + interval '1 hour' AND o.value IS NOT NULL
                          AND o.status <> 'entered-in-error')
"""  # noqa: S608 - constant text

_SET_WATERMARK = (
    "INSERT INTO maintenance_state (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
)

_ROLLUPS = """
SELECT bucket AS start, unit, count, min::float8 AS min, max::float8 AS max, (sum / count)::float8 AS mean,
       last_value::float8 AS last, last_time
FROM observation_rollups_hourly
WHERE patient_id = $1 AND kind = $2 AND bucket >= $3 AND bucket < $4
ORDER BY bucket, unit
"""

# Bounded deletes: each statement removes at most $3 rows through the unique (reading_key, time)
# index, so no transaction holds a huge set of locks or WAL.
_DELETE_KIND = """
DELETE FROM observations WHERE (reading_key, time) IN (
    SELECT reading_key, time FROM observations WHERE kind = ANY($1::text[]) AND time < $2 LIMIT $3)
"""
_DELETE_OTHER_KINDS = """
DELETE FROM observations WHERE (reading_key, time) IN (
    SELECT reading_key, time FROM observations WHERE kind <> ALL($1::text[]) AND time < $2 LIMIT $3)
"""


async def vitals_series(pool: asyncpg.Pool, query: VitalsQuery) -> list[VitalsBucket]:
    rows = await pool.fetch(_VITALS, query.patient_id, query.kind, query.start, query.end, query.bucket, _EPOCH)
    return [VitalsBucket(**dict(row)) for row in rows]


async def export_page(pool: asyncpg.Pool, query: ExportQuery) -> list[ExportRow]:
    clauses = ["patient_id = $1"]
    args: list[Any] = [query.patient_id]
    for column, op, value in (("time", ">=", query.start), ("time", "<", query.end), ("received_at", ">=", query.since)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} {op} ${len(args)}")
    if query.after is not None:
        args.extend(query.after)
        clauses.append(f"(time, reading_key) > (${len(args) - 1}, ${len(args)})")
    args.append(query.count)
    sql = (
        "SELECT reading_key, time, kind, code, value, unit, device_resource_id, resource::text AS resource, status "  # noqa: S608 - built from constants, values are bound
        f"FROM observations WHERE {' AND '.join(clauses)} ORDER BY time, reading_key LIMIT ${len(args)}"
    )
    return [ExportRow(**dict(row)) for row in await pool.fetch(sql, *args)]


async def hourly_rollups(pool: asyncpg.Pool, patient_id: str, kind: str, start: datetime, end: datetime) -> list[VitalsBucket]:
    return [VitalsBucket(**dict(row)) for row in await pool.fetch(_ROLLUPS, patient_id, kind, start, end)]


async def run_maintenance(pool: asyncpg.Pool, work: MaintenancePass) -> MaintenanceReport:
    """Rollups first, then retention: no raw row is dropped before its bucket was rolled up."""
    async with pool.acquire() as connection:
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _MAINTENANCE_LOCK):
            return MaintenanceReport(ran=False)
        try:
            refreshed = await _refresh_rollups(connection, work.retention, work.now, work.lookback)
            dropped, deleted = await _apply_retention(connection, work.retention, work.delete_batch_rows)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _MAINTENANCE_LOCK)
    return MaintenanceReport(ran=True, buckets_refreshed=refreshed, rows_deleted=deleted, chunks_dropped=dropped)


async def _refresh_rollups(connection: Connection, plan: RetentionPlan, now: datetime, lookback: timedelta) -> int:
    """Walk the received-at range since the watermark in slices, one transaction each.

    Each slice is bounded work (a first pass over years of history is hundreds of short
    statements, not one that outlives every timeout), and the watermark moves with each slice,
    so an interrupted pass resumes where it stopped.
    """
    watermark: datetime | None = await connection.fetchval("SELECT value FROM maintenance_state WHERE name = $1", _WATERMARK)
    if watermark is None:
        oldest: datetime | None = await connection.fetchval("SELECT min(received_at) FROM observations")
        since = now if oldest is None else oldest - timedelta(microseconds=1)
    else:
        since = watermark - lookback
    kinds = sorted(plan.kind_before)
    cutoffs = [plan.kind_before[kind] for kind in kinds]
    refreshed = 0
    while True:
        upper = min(since + ROLLUP_SLICE, now)
        async with connection.transaction():
            emptied = await connection.execute(_DELETE_EMPTIED, since, kinds, cutoffs, plan.default_before, upper)
            status = await connection.execute(_REFRESH_ROLLUPS, since, kinds, cutoffs, plan.default_before, upper)
            await connection.execute(_SET_WATERMARK, _WATERMARK, upper)
        refreshed += int(status.rsplit(" ", 1)[1]) + int(emptied.rsplit(" ", 1)[1])
        if upper >= now:
            return refreshed
        since = upper


async def _apply_retention(connection: Connection, plan: RetentionPlan, batch_rows: int) -> tuple[int, int]:
    dropped = 0
    everything_before = plan.all_kinds_before
    if everything_before is not None:
        # Whole chunks older than every kind's cutoff go at once; chunks hold all kinds, so a
        # kind with a shorter retention is trimmed with the DELETEs below (as is the boundary
        # chunk, which drop_chunks keeps because part of it is recent enough).
        dropped = len(
            await connection.fetch("SELECT drop_chunks('observations', older_than => $1::timestamptz)", everything_before)
        )
    overridden = sorted(plan.kind_before)
    deleted = 0
    for kinds, before in plan.deletes:
        sql, named = (_DELETE_OTHER_KINDS, overridden) if kinds is None else (_DELETE_KIND, sorted(kinds))
        while True:
            status = await connection.execute(sql, named, before, batch_rows)
            count = int(status.rsplit(" ", 1)[1])
            deleted += count
            if count < batch_rows:
                break
        # What corrected readings said before goes with them (corrections are few: one statement).
        test = "<> ALL" if kinds is None else "= ANY"
        await connection.execute(
            f"DELETE FROM observation_corrections WHERE kind {test}($1::text[]) AND time < $2",  # noqa: S608 - constant text
            named,
            before,
        )
    return dropped, deleted
