"""Embedded-store SQL for vitals series, exports, hourly rollups and raw retention.

The same semantics as the TimescaleDB adapter with plain SQLite: instants are integer
microseconds, so a bucket is ``time / width`` (times are after 1970, so the division floors)
and the last value is the newest row's.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.storage.port import ExportQuery, ExportRow, MaintenancePass, VitalsBucket, VitalsQuery
from gateway.storage.sqlite_time import MICROSECOND, micros, required_instant

_HOUR = timedelta(hours=1) // MICROSECOND
_WATERMARK = "rollups_received_at"

_VITALS = """
WITH b AS (
    SELECT time / :width AS n, unit, CAST(value AS REAL) AS v, time FROM observations
    WHERE patient_id = :patient AND kind = :kind AND time >= :start AND time < :end AND value IS NOT NULL
          AND status <> 'entered-in-error'
)
SELECT n * :width AS start, unit, count(*) AS count, min(v) AS min, max(v) AS max, avg(v) AS mean,
       (SELECT l.v FROM b AS l WHERE l.n = b.n AND l.unit = b.unit ORDER BY l.time DESC LIMIT 1) AS last,
       max(time) AS last_time
FROM b GROUP BY n, unit ORDER BY n, unit
"""

# Recompute one touched bucket whole from its raw rows (late arrivals included): its old rollup
# rows go first, so a unit left without a reading that counts (entered in error) has none.
_CLEAR_BUCKET = "DELETE FROM observation_rollups_hourly WHERE patient_id = :patient AND kind = :kind AND bucket = :bucket"
_UPSERT_BUCKET = """
INSERT INTO observation_rollups_hourly (patient_id, kind, unit, bucket, count, min, max, sum, last_value, last_time)
SELECT patient_id, kind, unit, :bucket, count(*), min(CAST(value AS REAL)), max(CAST(value AS REAL)), sum(CAST(value AS REAL)),
       (SELECT CAST(l.value AS REAL) FROM observations AS l
        WHERE l.patient_id = o.patient_id AND l.kind = o.kind AND l.unit = o.unit AND l.time >= :bucket AND l.time < :end
              AND l.value IS NOT NULL AND l.status <> 'entered-in-error' ORDER BY l.time DESC LIMIT 1),
       max(time)
FROM observations AS o
WHERE patient_id = :patient AND kind = :kind AND time >= :bucket AND time < :end AND value IS NOT NULL
      AND status <> 'entered-in-error'
GROUP BY patient_id, kind, unit
ON CONFLICT (patient_id, kind, bucket, unit) DO UPDATE SET
    count = excluded.count, min = excluded.min, max = excluded.max, sum = excluded.sum,
    last_value = excluded.last_value, last_time = excluded.last_time
"""


def _bucket(row: sqlite3.Row) -> VitalsBucket:
    return VitalsBucket(
        required_instant(row["start"]), row["unit"], row["count"], row["min"], row["max"], row["mean"], row["last"],
        required_instant(row["last_time"]),
    )  # fmt: skip


def vitals_series(connection: sqlite3.Connection, query: VitalsQuery) -> list[VitalsBucket]:
    parameters = {
        "width": query.bucket // MICROSECOND, "patient": query.patient_id, "kind": query.kind,
        "start": micros(query.start), "end": micros(query.end),
    }  # fmt: skip
    return [_bucket(row) for row in connection.execute(_VITALS, parameters)]


def export_page(connection: sqlite3.Connection, query: ExportQuery) -> list[ExportRow]:
    clauses = ["patient_id = ?"]
    args: list[Any] = [query.patient_id]
    for column, op, value in (("time", ">=", query.start), ("time", "<", query.end), ("received_at", ">=", query.since)):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            args.append(micros(value))
    if query.after is not None:
        clauses.append("(time, reading_key) > (?, ?)")
        args.extend([micros(query.after[0]), str(query.after[1])])
    sql = (
        "SELECT reading_key, time, kind, code, value, unit, device_resource_id, resource, status FROM observations "  # noqa: S608 - placeholders only
        f"WHERE {' AND '.join(clauses)} ORDER BY time, reading_key LIMIT ?"
    )
    rows = connection.execute(sql, [*args, query.count]).fetchall()
    return [
        ExportRow(
            uuid.UUID(row["reading_key"]),
            required_instant(row["time"]),
            row["kind"],
            row["code"],
            None if row["value"] is None else Decimal(row["value"]),
            row["unit"],
            uuid.UUID(row["device_resource_id"]),
            row["resource"],
            row["status"],
        )
        for row in rows
    ]


def hourly_rollups(
    connection: sqlite3.Connection, patient_id: str, kind: str, start: datetime, end: datetime
) -> list[VitalsBucket]:
    rows = connection.execute(
        "SELECT bucket AS start, unit, count, min, max, sum / count AS mean, last_value AS last, last_time "
        "FROM observation_rollups_hourly WHERE patient_id = ? AND kind = ? AND bucket >= ? AND bucket < ? ORDER BY bucket, unit",
        (patient_id, kind, micros(start), micros(end)),
    )
    return [_bucket(row) for row in rows]


def refresh_rollups(connection: sqlite3.Connection, work: MaintenancePass) -> int:
    """Recompute the hourly buckets with rows received since the watermark (less the lookback)."""
    row = connection.execute("SELECT value FROM maintenance_state WHERE name = ?", (_WATERMARK,)).fetchone()
    since = micros(datetime.min.replace(tzinfo=UTC)) if row is None else row[0] - work.lookback // MICROSECOND
    touched = connection.execute(
        "SELECT DISTINCT patient_id, kind, time - time % ? AS bucket FROM observations "
        "WHERE received_at > ? AND value IS NOT NULL",
        (_HOUR, since),
    ).fetchall()
    refresh = []
    for patient_id, kind, bucket in touched:
        # An expired bucket that has its rollup keeps it: its raw rows are gone, and a late
        # straggler alone would overwrite the complete rollup with a partial one.
        cutoff = work.retention.before(kind)
        if cutoff is None or bucket >= micros(cutoff) or not _has_rollup(connection, patient_id, kind, bucket):
            refresh.append({"patient": patient_id, "kind": kind, "bucket": bucket, "end": bucket + _HOUR})
    connection.executemany(_CLEAR_BUCKET, [{key: item[key] for key in ("patient", "kind", "bucket")} for item in refresh])
    connection.executemany(_UPSERT_BUCKET, refresh)
    connection.execute(
        "INSERT INTO maintenance_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (_WATERMARK, micros(work.now)),
    )
    return len(refresh)


def _has_rollup(connection: sqlite3.Connection, patient_id: str, kind: str, bucket: int) -> bool:
    found = connection.execute(
        "SELECT 1 FROM observation_rollups_hourly WHERE patient_id = ? AND kind = ? AND bucket = ?", (patient_id, kind, bucket)
    ).fetchone()
    return found is not None


def delete_expired(
    connection: sqlite3.Connection, *, kinds: frozenset[str] | None, overridden: frozenset[str], before: datetime, limit: int
) -> int:
    """Delete up to ``limit`` raw rows of ``kinds`` (None: every kind not in ``overridden``) older than ``before``."""
    named = sorted(overridden if kinds is None else kinds)
    test = "NOT IN" if kinds is None else "IN"
    marks = ", ".join("?" for _ in named)
    expired = f"SELECT rowid FROM observations WHERE kind {test} ({marks}) AND time < ? LIMIT ?"  # noqa: S608 - placeholders only
    cursor = connection.execute(
        f"DELETE FROM observations WHERE rowid IN ({expired})",  # noqa: S608 - placeholders only
        (*named, micros(before), limit),
    )
    # What corrected readings said before goes with them.
    connection.execute(
        f"DELETE FROM observation_corrections WHERE kind {test} ({marks}) AND time < ?",  # noqa: S608 - placeholders only
        (*named, micros(before)),
    )
    return cursor.rowcount
