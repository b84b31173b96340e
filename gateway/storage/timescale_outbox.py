"""TimescaleDB SQL of the push outbox (see :mod:`gateway.storage.outbox`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import asyncpg

from gateway.storage.outbox import OutboxCount, OutboxEntry, OutboxItem, OutboxOutcome

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_CLAIM = """
UPDATE outbox o SET next_attempt_at = $3, attempts = o.attempts + 1, updated_at = $2
FROM (
    SELECT id FROM outbox WHERE destination = $1 AND status = 'pending' AND next_attempt_at <= $2
    ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED
) due, observations ob
WHERE o.id = due.id AND ob.reading_key = o.reading_key AND ob.time = o.time
RETURNING o.id, o.destination, o.reading_key, o.time, o.attempts, ob.resource::text AS resource
"""


async def enqueue(connection: Connection, entries: Sequence[OutboxEntry], inserted: Collection[str], now: datetime) -> None:
    """Outbox rows for the readings this transaction stored for the first time."""
    rows = [(uuid.UUID(e.reading_key), e.time, e.destination, now) for e in entries if e.reading_key in inserted]
    if rows:
        await connection.executemany(
            "INSERT INTO outbox (reading_key, time, destination, next_attempt_at, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $4, $4) ON CONFLICT DO NOTHING",
            rows,
        )


async def claim(pool: asyncpg.Pool, destination: str, limit: int, now: datetime, lease: timedelta) -> list[OutboxItem]:
    rows = await pool.fetch(_CLAIM, destination, now, now + lease, limit)
    items = [
        OutboxItem(row["id"], row["destination"], row["reading_key"], row["time"], row["attempts"], row["resource"])
        for row in rows
    ]
    return sorted(items, key=lambda item: item.id)


async def finish(pool: asyncpg.Pool, item_id: int, outcome: OutboxOutcome, now: datetime) -> None:
    await pool.execute(
        "UPDATE outbox SET status = $2, last_error = $3, next_attempt_at = COALESCE($4, next_attempt_at), updated_at = $5 "
        "WHERE id = $1",
        item_id, outcome.status, outcome.error, outcome.retry_at, now,
    )  # fmt: skip


async def status(pool: asyncpg.Pool) -> list[OutboxCount]:
    rows = await pool.fetch(
        "SELECT destination, status, count(*) AS count, "
        "min(next_attempt_at) FILTER (WHERE status = 'pending') AS oldest_due "
        "FROM outbox GROUP BY destination, status ORDER BY destination, status"
    )
    return [OutboxCount(row["destination"], row["status"], row["count"], row["oldest_due"]) for row in rows]
