"""TimescaleDB SQL of the push outbox (see :mod:`gateway.storage.outbox`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import asyncpg

from gateway.storage.outbox import DeadLetter, OutboxBacklog, OutboxCount, OutboxEntry, OutboxItem, OutboxOutcome

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


async def finish(pool: asyncpg.Pool, outcomes: Sequence[tuple[int, OutboxOutcome]], now: datetime) -> None:
    """Record what each push decided, in one statement for the whole Bundle."""
    if not outcomes:
        return
    await pool.execute(
        "UPDATE outbox o SET status = f.status, last_error = f.error, next_attempt_at = COALESCE(f.retry_at, o.next_attempt_at), "
        "last_status = f.http_status, last_outcome = f.outcome, updated_at = $7 "
        "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::text[]) "
        "AS f(id, status, error, retry_at, http_status, outcome) WHERE o.id = f.id",
        [item_id for item_id, _ in outcomes],
        [o.status for _, o in outcomes],
        [o.error for _, o in outcomes],
        [o.retry_at for _, o in outcomes],
        [o.http_status for _, o in outcomes],
        [o.operation_outcome for _, o in outcomes],
        now,
    )


async def status(pool: asyncpg.Pool) -> list[OutboxCount]:
    rows = await pool.fetch(
        "SELECT destination, status, count(*) AS count, "
        "min(next_attempt_at) FILTER (WHERE status = 'pending') AS oldest_due, "
        "min(created_at) FILTER (WHERE status = 'pending') AS oldest_created "
        "FROM outbox GROUP BY destination, status ORDER BY destination, status"
    )
    return [
        OutboxCount(row["destination"], row["status"], row["count"], row["oldest_due"], row["oldest_created"]) for row in rows
    ]


async def backlog(pool: asyncpg.Pool) -> list[OutboxBacklog]:
    # Pending rows only, through the partial index: done rows pile up and must not slow the metrics.
    rows = await pool.fetch(
        "SELECT destination, count(*) AS pending, min(created_at) AS oldest FROM outbox WHERE status = 'pending' "
        "GROUP BY destination ORDER BY destination"
    )
    return [OutboxBacklog(row["destination"], row["pending"], row["oldest"]) for row in rows]


async def dead_letters(pool: asyncpg.Pool, destination: str | None, after_id: int, limit: int) -> list[DeadLetter]:
    rows = await pool.fetch(
        "SELECT id, destination, reading_key, time, attempts, last_error, last_status, last_outcome, updated_at FROM outbox "
        "WHERE status = 'dead' AND ($1::text IS NULL OR destination = $1) AND id > $2 ORDER BY id LIMIT $3",
        destination, after_id, limit,
    )  # fmt: skip
    return [
        DeadLetter(
            row["id"],
            row["destination"],
            row["reading_key"],
            row["time"],
            row["attempts"],
            row["last_error"],
            row["last_status"],
            row["last_outcome"],
            row["updated_at"],
        )
        for row in rows
    ]


async def replay(pool: asyncpg.Pool, ids: Sequence[int] | None, destination: str | None, now: datetime) -> int:
    """Dead letters back to pending, due now; ``ids`` None means every dead letter (of ``destination``)."""
    result = await pool.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = $3, updated_at = $3 "
        "WHERE status = 'dead' AND ($1::bigint[] IS NULL OR id = ANY($1)) AND ($2::text IS NULL OR destination = $2)",
        None if ids is None else list(ids), destination, now,
    )  # fmt: skip
    return int(result.rsplit(" ", 1)[1])
