"""TimescaleDB SQL for accounts, care teams, delegations, identifiers, user slots, pairing, credentials and audit.

Kept apart from ``timescale.py``; the adapter's methods call these inside its error translation.
Constraint violations become registry errors here, where the statement that broke them is known.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from device_adapters.errors import NotFoundError, RegistryError
from gateway.auth.audit import GENESIS_HASH, AuditRecord, ChainedRecord
from gateway.auth.pairing import PairingGrant
from gateway.auth.policy import Relationships
from gateway.storage.port import (
    DEVICE_CREDENTIAL_KINDS,
    AccountRecord,
    DeviceCredentialRecord,
)
from gateway.storage.rows import (
    AUDIT_COLUMNS,
    OpenAssignment,
    audit_record,
    audit_rows,
    chained_record,
    check_account,
    plan_assignment,
)

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
_AUDIT_LOCK = 0x70756C7367  # one audit appender at a time, so the chain never forks
_INSERT_AUDIT = """
INSERT INTO audit_events (event_id, recorded_at, actor, action, entity, outcome, detail, patient_id, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
"""
_AUDIT_CHAIN = f"SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2"  # noqa: S608 - constant columns
_REDEEM = """
UPDATE pairing_codes SET redeemed_at = $3, device_id = $2
WHERE digest = $1 AND redeemed_at IS NULL AND expires_at > $3
RETURNING patient_id, created_by, created_at, expires_at, device_kind
"""
_RELATIONSHIPS = """
SELECT 'delegated' AS via, patient_id FROM caregiver_delegations WHERE account_id = $1 AND revoked_at IS NULL
UNION ALL
SELECT 'care_team', p.patient_id FROM care_team_members m JOIN care_team_patients p USING (team_id) WHERE m.account_id = $1
"""


async def _execute_registry(pool: asyncpg.Pool, missing: str, sql: str, *args: object) -> None:
    """One insert whose foreign keys name what must exist first (``missing`` says what, for the error)."""
    try:
        await pool.execute(sql, *args)
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFoundError(missing) from exc


async def add_account(
    pool: asyncpg.Pool, account_id: str, role: str, display_name: str | None, patient_id: str | None
) -> AccountRecord:
    check_account(account_id, role, patient_id)
    try:
        await _execute_registry(
            pool, f"no patient {patient_id!r}: add it first (pulsebridge patients add)",
            "INSERT INTO accounts (id, role, display_name, patient_id) VALUES ($1, $2, $3, $4)",
            account_id, role, display_name, patient_id,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        msg = f"an account with id {account_id!r} already exists"
        raise RegistryError(msg) from exc
    return AccountRecord(account_id, role, display_name, patient_id, disabled=False)


async def get_account(pool: asyncpg.Pool, account_id: str) -> AccountRecord | None:
    row = await pool.fetchrow("SELECT id, role, display_name, patient_id, disabled_at FROM accounts WHERE id = $1", account_id)
    if row is None:
        return None
    return AccountRecord(row["id"], row["role"], row["display_name"], row["patient_id"], row["disabled_at"] is not None)


async def add_care_team(pool: asyncpg.Pool, team_id: str, name: str) -> None:
    try:
        await pool.execute("INSERT INTO care_teams (id, name) VALUES ($1, $2)", team_id, name)
    except asyncpg.UniqueViolationError as exc:
        msg = f"a care team with id {team_id!r} already exists"
        raise RegistryError(msg) from exc


async def add_care_team_member(pool: asyncpg.Pool, team_id: str, account_id: str) -> None:
    await _execute_registry(
        pool, f"no care team {team_id!r} or no account {account_id!r}",
        "INSERT INTO care_team_members (team_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", team_id, account_id,
    )  # fmt: skip


async def add_care_team_patient(pool: asyncpg.Pool, team_id: str, patient_id: str) -> None:
    await _execute_registry(
        pool, f"no care team {team_id!r} or no patient {patient_id!r}",
        "INSERT INTO care_team_patients (team_id, patient_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", team_id, patient_id,
    )  # fmt: skip


async def remove_care_team_patient(pool: asyncpg.Pool, team_id: str, patient_id: str) -> None:
    await pool.execute("DELETE FROM care_team_patients WHERE team_id = $1 AND patient_id = $2", team_id, patient_id)


async def revoke_delegation(pool: asyncpg.Pool, patient_id: str, account_id: str) -> None:
    await pool.execute(
        "UPDATE caregiver_delegations SET revoked_at = now() WHERE patient_id = $1 AND account_id = $2 AND revoked_at IS NULL",
        patient_id, account_id,
    )  # fmt: skip


async def delegate(pool: asyncpg.Pool, patient_id: str, account_id: str) -> None:
    await _execute_registry(
        pool, f"no patient {patient_id!r} or no account {account_id!r}",
        "INSERT INTO caregiver_delegations (patient_id, account_id) VALUES ($1, $2) "
        "ON CONFLICT (patient_id, account_id) WHERE revoked_at IS NULL DO NOTHING",
        patient_id, account_id,
    )  # fmt: skip


async def relationships(pool: asyncpg.Pool, account_id: str) -> Relationships:
    rows = await pool.fetch(_RELATIONSHIPS, account_id)
    found: dict[str, set[str]] = {"delegated": set(), "care_team": set()}
    for row in rows:
        found[row["via"]].add(row["patient_id"])
    return Relationships(frozenset(found["delegated"]), frozenset(found["care_team"]))


async def add_patient_identifier(pool: asyncpg.Pool, patient_id: str, system: str, value: str) -> None:
    async with pool.acquire() as connection, connection.transaction():
        try:
            await connection.execute(
                "INSERT INTO patient_identifiers (patient_id, system, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                patient_id, system, value,
            )  # fmt: skip
        except asyncpg.ForeignKeyViolationError as exc:
            msg = f"no patient {patient_id!r}: add it first (pulsebridge patients add)"
            raise NotFoundError(msg) from exc
        holder = await connection.fetchval("SELECT patient_id FROM patient_identifiers WHERE system = $1 AND value = $2",
                                           system, value)  # fmt: skip
    if holder != patient_id:
        msg = f"identifier {system}|{value} already belongs to another patient"
        raise RegistryError(msg)


async def lock_device_for(connection: Connection, device_id: str, patient_id: str) -> uuid.UUID:
    """The device's resource id, locked until the transaction ends (assignments of one device go one at a time)."""
    resource_id: uuid.UUID | None = await connection.fetchval(
        "SELECT resource_id FROM devices WHERE device_id = $1 FOR UPDATE", device_id
    )
    if resource_id is None:
        msg = f"no device {device_id!r}: add it first (pulsebridge devices add)"
        raise NotFoundError(msg)
    if await connection.fetchval("SELECT 1 FROM patients WHERE id = $1", patient_id) is None:
        msg = f"no patient {patient_id!r}: add it first (pulsebridge patients add)"
        raise NotFoundError(msg)
    return resource_id


async def assign_user_slot(
    pool: asyncpg.Pool, device_id: str, user_slot: int, patient_id: str, valid_from: datetime | None
) -> None:
    async with pool.acquire() as connection, connection.transaction():
        resource_id = await lock_device_for(connection, device_id, patient_id)
        history = await connection.fetch(
            "SELECT id, patient_id, valid_from, valid_to FROM device_user_slots WHERE device_resource_id = $1 AND user_slot = $2",
            resource_id, user_slot,
        )  # fmt: skip
        current = next(
            (OpenAssignment(r["id"], r["patient_id"], r["valid_from"]) for r in history if r["valid_to"] is None), None
        )
        plan = plan_assignment(
            f"{device_id} user {user_slot}", patient_id, valid_from, current=current, has_history=bool(history)
        )
        if plan.unchanged:
            return
        start = plan.record.valid_from
        if plan.close_row_id is not None:
            await connection.execute("UPDATE device_user_slots SET valid_to = $1 WHERE id = $2", start, plan.close_row_id)
        await connection.execute(
            "INSERT INTO device_user_slots (device_resource_id, user_slot, patient_id, valid_from) VALUES ($1, $2, $3, $4)",
            resource_id, user_slot, patient_id, start,
        )  # fmt: skip


async def add_pairing_code(pool: asyncpg.Pool, digest: bytes, grant: PairingGrant) -> None:
    try:
        await _execute_registry(
            pool, f"no patient {grant.patient_id!r}",
            "INSERT INTO pairing_codes (digest, patient_id, created_by, created_at, expires_at, device_kind) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            digest, grant.patient_id, grant.created_by, grant.created_at, grant.expires_at, grant.device_kind,
        )  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        msg = "this pairing code is already issued"
        raise RegistryError(msg) from exc


async def redeem_pairing_code(pool: asyncpg.Pool, digest: bytes, device_id: str, now: datetime) -> PairingGrant | None:
    row = await pool.fetchrow(_REDEEM, digest, device_id, now)
    if row is None:
        return None
    return PairingGrant(row["patient_id"], row["created_by"], row["created_at"], row["expires_at"], row["device_kind"])


async def add_device_credential(pool: asyncpg.Pool, device_id: str, kind: str, secret_hash: str) -> int:
    if kind not in DEVICE_CREDENTIAL_KINDS:
        msg = f"credential kind {kind!r} is not one of {', '.join(sorted(DEVICE_CREDENTIAL_KINDS))}"
        raise RegistryError(msg)
    credential_id: int | None = await pool.fetchval(
        "INSERT INTO device_credentials (device_resource_id, kind, secret_hash) "
        "SELECT resource_id, $2, $3 FROM devices WHERE device_id = $1 RETURNING id",
        device_id, kind, secret_hash,
    )  # fmt: skip
    if credential_id is None:
        msg = f"no device {device_id!r}: add it first (pulsebridge devices add)"
        raise NotFoundError(msg)
    return credential_id


async def device_credentials(pool: asyncpg.Pool, device_id: str) -> list[DeviceCredentialRecord]:
    rows = await pool.fetch(
        "SELECT c.id, c.kind, c.secret_hash, c.created_at, c.revoked_at FROM device_credentials c "
        "JOIN devices d ON d.resource_id = c.device_resource_id WHERE d.device_id = $1 ORDER BY c.id",
        device_id,
    )
    return [DeviceCredentialRecord(**dict(row)) for row in rows]


async def revoke_device_credentials(pool: asyncpg.Pool, device_id: str, now: datetime) -> int:
    rows = await pool.fetch(
        "UPDATE device_credentials SET revoked_at = $2 WHERE revoked_at IS NULL "
        "AND device_resource_id = (SELECT resource_id FROM devices WHERE device_id = $1) RETURNING id",
        device_id, now,
    )  # fmt: skip
    return len(rows)


async def append_audit(pool: asyncpg.Pool, records: Sequence[AuditRecord]) -> None:
    if not records:
        return
    async with pool.acquire() as connection, connection.transaction():
        # Read the last hash and insert under one lock: two appenders reading the same last
        # row would both chain to it and fork the chain.
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _AUDIT_LOCK)
        previous: bytes | None = await connection.fetchval("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
        rows = audit_rows(GENESIS_HASH if previous is None else previous, records)
        await connection.executemany(
            _INSERT_AUDIT,
            [(r["event_id"], r["recorded_at"], r["actor"], r["action"], r["entity"], r["outcome"], r["detail"],
              r["patient_id"], r["prev_hash"], r["hash"]) for r in rows],
        )  # fmt: skip


async def audit_chain(pool: asyncpg.Pool, after_id: int, limit: int) -> list[tuple[int, ChainedRecord]]:
    rows = await pool.fetch(_AUDIT_CHAIN, after_id, limit)
    return [chained_record(dict(row)) for row in rows]


async def search_audit(pool: asyncpg.Pool, patient_id: str | None, limit: int) -> list[AuditRecord]:
    rows = await pool.fetch(
        f"SELECT {AUDIT_COLUMNS} FROM audit_events WHERE ($1::text IS NULL OR patient_id = $1) ORDER BY id DESC LIMIT $2",  # noqa: S608 - constant columns
        patient_id, limit,
    )  # fmt: skip
    return [audit_record(dict(row)) for row in rows]
