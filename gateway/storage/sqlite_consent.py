"""SQLite SQL of consents and corrections (see :mod:`gateway.storage.consent` and :mod:`gateway.storage.corrections`)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from device_adapters.errors import NotFoundError
from gateway.storage.consent import ConsentMode, ConsentRecord, ConsentStatus, effective_sql
from gateway.storage.corrections import CorrectionOutcome, Reviser, StoredReading
from gateway.storage.sqlite_time import micros, required_instant

_CONSENT_COLUMNS = "patient_id, destination, status, recorded_by, recorded_at"

_QUEUE_UPDATE = (
    "INSERT INTO outbox (reading_key, time, destination, action, next_attempt_at, created_at, updated_at) "  # noqa: S608 - constant text
    "SELECT ?, ?, ?, 'update', ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM outbox WHERE reading_key = ? AND time = ? AND destination = ? AND action = 'create') "
    f"AND {effective_sql('(SELECT status FROM consents WHERE patient_id = ? AND destination = ?)', '?')}"
)


def _consent(row: sqlite3.Row) -> ConsentRecord:
    return ConsentRecord(row["patient_id"], row["destination"], row["status"], row["recorded_by"],
                         required_instant(row["recorded_at"]))  # fmt: skip


def set_consent(
    connection: sqlite3.Connection, patient_id: str, destination: str, status: ConsentStatus, *, recorded_by: str, now: datetime
) -> ConsentRecord:
    """Record the decision (and its history row) unless it is already the one in force, which stays as it was."""
    if connection.execute("SELECT 1 FROM patients WHERE id = ?", (patient_id,)).fetchone() is None:
        msg = f"no patient {patient_id!r}"
        raise NotFoundError(msg)
    current = connection.execute(
        f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE patient_id = ? AND destination = ?",  # noqa: S608 - constant columns
        (patient_id, destination),
    ).fetchone()
    if current is not None and current["status"] == status:
        return _consent(current)
    values = (patient_id, destination, status, recorded_by, micros(now))
    connection.execute(
        "INSERT INTO consents (patient_id, destination, status, recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (patient_id, destination) DO UPDATE SET status = excluded.status, recorded_by = excluded.recorded_by, "
        "recorded_at = excluded.recorded_at",
        values,
    )
    connection.execute(
        "INSERT INTO consent_events (patient_id, destination, status, recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?)", values
    )
    return ConsentRecord(patient_id, destination, status, recorded_by, now)


def consents(connection: sqlite3.Connection, patient_id: str) -> list[ConsentRecord]:
    rows = connection.execute(
        f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE patient_id = ? ORDER BY destination",  # noqa: S608 - constant columns
        (patient_id,),
    ).fetchall()
    return [_consent(row) for row in rows]


def consent_history(connection: sqlite3.Connection, patient_id: str) -> list[ConsentRecord]:
    rows = connection.execute(
        f"SELECT {_CONSENT_COLUMNS} FROM consent_events WHERE patient_id = ? ORDER BY id",  # noqa: S608 - constant columns
        (patient_id,),
    ).fetchall()
    return [_consent(row) for row in rows]


def correct_observation(
    connection: sqlite3.Connection,
    reading_key: uuid.UUID,
    revise: Reviser,
    destinations: Mapping[str, ConsentMode],
    now: datetime,
) -> CorrectionOutcome | None:
    """One transaction (the adapter's): the single writer holds the row while the reviser works."""
    row = connection.execute(
        "SELECT reading_key, time, patient_id, kind, unit, value, status, resource FROM observations WHERE reading_key = ? "
        "LIMIT 1",
        (str(reading_key),),
    ).fetchone()
    if row is None:
        return None
    stored = StoredReading(
        uuid.UUID(row["reading_key"]), required_instant(row["time"]), row["patient_id"], row["kind"], row["unit"],
        None if row["value"] is None else Decimal(row["value"]), row["status"], row["resource"],
    )  # fmt: skip
    revision = revise(stored)
    stamp = micros(now)
    connection.execute(
        "UPDATE observations SET resource = ?, status = ?, value = ?, received_at = ? WHERE reading_key = ? AND time = ?",
        (revision.resource.decode(), revision.status, None if revision.value is None else str(revision.value), stamp,
         row["reading_key"], row["time"]),
    )  # fmt: skip
    connection.execute(
        "INSERT INTO observation_corrections (reading_key, time, patient_id, kind, action, reason, corrected_by, corrected_at, "
        "previous_resource) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row["reading_key"], row["time"], stored.patient_id, stored.kind, revision.action, revision.reason,
         revision.corrected_by, stamp, stored.resource),
    )  # fmt: skip
    queued = []
    for destination in sorted(destinations):
        cursor = connection.execute(
            _QUEUE_UPDATE,
            (row["reading_key"], row["time"], destination, stamp, stamp, stamp, row["reading_key"], row["time"], destination,
             stored.patient_id, destination, destinations[destination]),
        )  # fmt: skip
        if cursor.rowcount:
            queued.append(destination)
    return CorrectionOutcome(revision, tuple(queued))
