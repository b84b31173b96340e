"""TimescaleDB SQL of the push outbox (see :mod:`gateway.storage.outbox`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import asyncpg

from gateway.storage.consent import NOT_GRANTED_ERROR, REVOKED_ERROR, ConsentMode, effective_sql
from gateway.storage.outbox import GONE_ERROR, DeadLetter, OutboxBacklog, OutboxCount, OutboxEntry, OutboxItem, OutboxOutcome

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_ALLOWED = effective_sql("c.status", "$5")

# Due rows are locked (SKIP LOCKED: another worker's are passed over) and judged: a row whose
# reading is gone (retention) or whose patient's consent now forbids the destination ends dead
# (its last_error says why) and is not handed out; the rest are leased. Both UPDATEs run to
# completion whether or not the statement reads their output.
_CLAIM = f"""
WITH due AS (
    SELECT id, reading_key, time FROM outbox WHERE destination = $1 AND status = 'pending' AND next_attempt_at <= $2
    ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED
), judged AS (
    SELECT due.id, ob.reading_key IS NOT NULL AS stored, c.status AS decided, {_ALLOWED} AS allowed
    FROM due
    LEFT JOIN observations ob ON ob.reading_key = due.reading_key AND ob.time = due.time
    LEFT JOIN consents c ON c.patient_id = ob.patient_id AND c.destination = $1
), refused AS (
    UPDATE outbox o SET status = 'dead', updated_at = $2,
        last_error = CASE WHEN NOT j.stored THEN $6 WHEN j.decided IS NULL THEN $7 ELSE $8 END
    FROM judged j WHERE o.id = j.id AND NOT (j.stored AND j.allowed)
)
UPDATE outbox o SET next_attempt_at = $3, attempts = o.attempts + 1, updated_at = $2
FROM judged j, observations ob
WHERE o.id = j.id AND j.stored AND j.allowed AND ob.reading_key = o.reading_key AND ob.time = o.time
RETURNING o.id, o.destination, o.reading_key, o.time, o.attempts, ob.resource::text AS resource, o.action
"""  # noqa: S608 - constant text

_ENQUEUE = f"""
INSERT INTO outbox (reading_key, time, destination, next_attempt_at, created_at, updated_at)
SELECT e.reading_key, e.time, e.destination, $6, $6, $6
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])
    AS e (reading_key, time, destination, patient_id, mode)
LEFT JOIN consents c ON c.patient_id = e.patient_id AND c.destination = e.destination
WHERE {effective_sql("c.status", "e.mode")}
ON CONFLICT DO NOTHING
"""  # noqa: S608 - constant text


async def enqueue(connection: Connection, entries: Sequence[OutboxEntry], inserted: Collection[str], now: datetime) -> None:
    """Outbox rows for the readings this transaction stored for the first time, where consent allows."""
    rows = [e for e in entries if e.reading_key in inserted]
    if rows:
        await connection.execute(
            _ENQUEUE,
            [uuid.UUID(e.reading_key) for e in rows],
            [e.time for e in rows],
            [e.destination for e in rows],
            [e.patient_id for e in rows],
            [e.consent for e in rows],
            now,
        )


async def claim(
    pool: asyncpg.Pool, destination: str, limit: int, now: datetime, lease: timedelta, *, consent: ConsentMode
) -> list[OutboxItem]:
    errors = (GONE_ERROR, NOT_GRANTED_ERROR, REVOKED_ERROR)
    rows = await pool.fetch(_CLAIM, destination, now, now + lease, limit, consent, *errors)
    items = [
        OutboxItem(
            row["id"], row["destination"], row["reading_key"], row["time"], row["attempts"], row["resource"], row["action"]
        )
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
