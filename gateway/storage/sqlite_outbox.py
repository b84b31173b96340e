"""SQLite SQL of the push outbox (see :mod:`gateway.storage.outbox`): one writer, so no row locks are needed."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from gateway.storage.consent import NOT_GRANTED_ERROR, REVOKED_ERROR, ConsentMode, allows, effective_sql
from gateway.storage.outbox import GONE_ERROR, DeadLetter, OutboxBacklog, OutboxCount, OutboxEntry, OutboxItem, OutboxOutcome
from gateway.storage.sqlite_time import instant, micros, required_instant

_ENQUEUE = (
    "INSERT INTO outbox (reading_key, time, destination, next_attempt_at, created_at, updated_at) "  # noqa: S608 - constant text
    "SELECT ?, ?, ?, ?, ?, ? "
    f"WHERE {effective_sql('(SELECT status FROM consents WHERE patient_id = ? AND destination = ?)', '?')} "
    "ON CONFLICT DO NOTHING"
)


def enqueue(connection: sqlite3.Connection, entries: Sequence[OutboxEntry], inserted: Collection[str], now: datetime) -> None:
    """Outbox rows for the readings this transaction stored for the first time, where consent allows."""
    stamp = micros(now)
    connection.executemany(
        _ENQUEUE,
        [
            (e.reading_key, micros(e.time), e.destination, stamp, stamp, stamp, e.patient_id, e.destination, e.consent)
            for e in entries
            if e.reading_key in inserted
        ],
    )


def claim(
    connection: sqlite3.Connection, destination: str, limit: int, now: datetime, lease: timedelta, *, consent: ConsentMode
) -> list[OutboxItem]:
    """Due rows leased to the caller; those whose reading is gone or whose consent forbids the destination end dead."""
    due = connection.execute(
        "SELECT o.id, o.destination, o.reading_key, o.time, o.attempts, o.action, ob.resource, ob.reading_key IS NOT NULL "
        "AS stored, c.status AS decided FROM outbox o "
        "LEFT JOIN observations ob ON ob.reading_key = o.reading_key AND ob.time = o.time "
        "LEFT JOIN consents c ON c.patient_id = ob.patient_id AND c.destination = o.destination "
        "WHERE o.destination = ? AND o.status = 'pending' AND o.next_attempt_at <= ? ORDER BY o.next_attempt_at LIMIT ?",
        (destination, micros(now), limit),
    ).fetchall()
    refused: list[tuple[str, int]] = []
    items: list[OutboxItem] = []
    for row in due:
        if not row["stored"]:
            refused.append((GONE_ERROR, row["id"]))
        elif not allows(row["decided"], consent):
            refused.append((NOT_GRANTED_ERROR if row["decided"] is None else REVOKED_ERROR, row["id"]))
        else:
            items.append(
                OutboxItem(
                    row["id"],
                    row["destination"],
                    uuid.UUID(row["reading_key"]),
                    required_instant(row["time"]),
                    row["attempts"] + 1,
                    row["resource"],
                    row["action"],
                )
            )
    connection.executemany(
        "UPDATE outbox SET status = 'dead', last_error = ?, updated_at = ? WHERE id = ?",
        [(error, micros(now), row_id) for error, row_id in refused],
    )
    connection.executemany(
        "UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
        [(micros(now + lease), micros(now), item.id) for item in items],
    )
    return sorted(items, key=lambda item: item.id)


def finish(connection: sqlite3.Connection, outcomes: Sequence[tuple[int, OutboxOutcome]], now: datetime) -> None:
    connection.executemany(
        "UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), last_status = ?, "
        "last_outcome = ?, updated_at = ? WHERE id = ?",
        [
            (
                o.status,
                o.error,
                None if o.retry_at is None else micros(o.retry_at),
                o.http_status,
                o.operation_outcome,
                micros(now),
                item_id,
            )
            for item_id, o in outcomes
        ],
    )


def status(connection: sqlite3.Connection) -> list[OutboxCount]:
    rows = connection.execute(
        "SELECT destination, status, count(*) AS count, "
        "min(CASE WHEN status = 'pending' THEN next_attempt_at END) AS oldest_due, "
        "min(CASE WHEN status = 'pending' THEN created_at END) AS oldest_created "
        "FROM outbox GROUP BY destination, status ORDER BY destination, status"
    ).fetchall()
    return [
        OutboxCount(row["destination"], row["status"], row["count"], instant(row["oldest_due"]), instant(row["oldest_created"]))
        for row in rows
    ]


def backlog(connection: sqlite3.Connection) -> list[OutboxBacklog]:
    rows = connection.execute(
        "SELECT destination, count(*) AS pending, min(created_at) AS oldest FROM outbox WHERE status = 'pending' "
        "GROUP BY destination ORDER BY destination"
    ).fetchall()
    return [OutboxBacklog(row["destination"], row["pending"], instant(row["oldest"])) for row in rows]


def dead_letters(connection: sqlite3.Connection, destination: str | None, after_id: int, limit: int) -> list[DeadLetter]:
    rows = connection.execute(
        "SELECT id, destination, reading_key, time, attempts, last_error, last_status, last_outcome, updated_at FROM outbox "
        "WHERE status = 'dead' AND (? IS NULL OR destination = ?) AND id > ? ORDER BY id LIMIT ?",
        (destination, destination, after_id, limit),
    ).fetchall()
    return [
        DeadLetter(
            row["id"],
            row["destination"],
            uuid.UUID(row["reading_key"]),
            required_instant(row["time"]),
            row["attempts"],
            row["last_error"],
            row["last_status"],
            row["last_outcome"],
            required_instant(row["updated_at"]),
        )
        for row in rows
    ]


def replay(connection: sqlite3.Connection, ids: Sequence[int] | None, destination: str | None, now: datetime) -> int:
    stamp = micros(now)
    chosen = "" if ids is None else f" AND id IN ({','.join('?' * len(ids))})"
    cursor = connection.execute(
        f"UPDATE outbox SET status = 'pending', next_attempt_at = ?, updated_at = ? "  # noqa: S608 - placeholders only
        f"WHERE status = 'dead' AND (? IS NULL OR destination = ?){chosen}",
        (stamp, stamp, destination, destination, *(ids or ())),
    )
    return cursor.rowcount
