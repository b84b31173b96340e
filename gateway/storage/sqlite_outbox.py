"""SQLite SQL of the push outbox (see :mod:`gateway.storage.outbox`): one writer, so no row locks are needed."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from gateway.storage.outbox import OutboxCount, OutboxEntry, OutboxItem, OutboxOutcome
from gateway.storage.sqlite_time import instant, micros, required_instant


def enqueue(connection: sqlite3.Connection, entries: Sequence[OutboxEntry], inserted: Collection[str], now: datetime) -> None:
    stamp = micros(now)
    connection.executemany(
        "INSERT INTO outbox (reading_key, time, destination, next_attempt_at, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(e.reading_key, micros(e.time), e.destination, stamp, stamp, stamp) for e in entries if e.reading_key in inserted],
    )


def claim(connection: sqlite3.Connection, destination: str, limit: int, now: datetime, lease: timedelta) -> list[OutboxItem]:
    rows = connection.execute(
        "UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1, updated_at = ? WHERE id IN ("
        "SELECT id FROM outbox WHERE destination = ? AND status = 'pending' AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at LIMIT ?) RETURNING id, destination, reading_key, time, attempts",
        (micros(now + lease), micros(now), destination, micros(now), limit),
    ).fetchall()
    items = []
    for row in sorted(rows, key=lambda row: row["id"]):
        resource = connection.execute(
            "SELECT resource FROM observations WHERE reading_key = ? AND time = ?", (row["reading_key"], row["time"])
        ).fetchone()
        if resource is not None:
            items.append(OutboxItem(row["id"], row["destination"], uuid.UUID(row["reading_key"]),
                                    required_instant(row["time"]), row["attempts"], resource["resource"]))  # fmt: skip
    return items


def finish(connection: sqlite3.Connection, item_id: int, outcome: OutboxOutcome, now: datetime) -> None:
    connection.execute(
        "UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ? "
        "WHERE id = ?",
        (outcome.status, outcome.error, None if outcome.retry_at is None else micros(outcome.retry_at), micros(now), item_id),
    )


def status(connection: sqlite3.Connection) -> list[OutboxCount]:
    rows = connection.execute(
        "SELECT destination, status, count(*) AS count, min(CASE WHEN status = 'pending' THEN next_attempt_at END) AS oldest_due "
        "FROM outbox GROUP BY destination, status ORDER BY destination, status"
    ).fetchall()
    return [OutboxCount(row["destination"], row["status"], row["count"], instant(row["oldest_due"])) for row in rows]
