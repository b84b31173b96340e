"""Embedded-store SQL for accounts, care teams, delegations, identifiers, user slots, pairing, credentials and audit.

The same semantics as ``timescale_access``. Each function runs on the adapter's one connection
(writes inside its ``BEGIN IMMEDIATE`` transaction: one writer, so the audit chain cannot fork).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from device_adapters.errors import NotFoundError, RegistryError
from gateway.auth.audit import GENESIS_HASH, AuditRecord, ChainedRecord
from gateway.auth.pairing import PairingGrant
from gateway.auth.policy import Relationships
from gateway.storage.port import DEVICE_CREDENTIAL_KINDS, AccountRecord, DeviceCredentialRecord
from gateway.storage.rows import (
    AUDIT_COLUMNS,
    OpenAssignment,
    audit_record,
    audit_rows,
    chained_record,
    check_account,
    plan_assignment,
)
from gateway.storage.sqlite_time import instant, micros, required_instant

_RELATIONSHIPS = """
SELECT 'delegated' AS via, patient_id FROM caregiver_delegations WHERE account_id = :account AND revoked_at IS NULL
UNION ALL
SELECT 'care_team', p.patient_id FROM care_team_members m JOIN care_team_patients p USING (team_id)
WHERE m.account_id = :account
"""
_REDEEM = """
UPDATE pairing_codes SET redeemed_at = :now, device_id = :device
WHERE digest = :digest AND redeemed_at IS NULL AND expires_at > :now
RETURNING patient_id, created_by, created_at, expires_at, device_kind
"""
_INSERT_AUDIT = """
INSERT INTO audit_events (event_id, recorded_at, actor, action, entity, outcome, detail, patient_id, prev_hash, hash)
VALUES (:event_id, :recorded_at, :actor, :action, :entity, :outcome, :detail, :patient_id, :prev_hash, :hash)
"""
_AUDIT_CHAIN = f"SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608 - constant columns
_SEARCH_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM audit_events WHERE (? IS NULL OR patient_id = ?) ORDER BY id DESC LIMIT ?"  # noqa: S608 - constant columns


def _now() -> int:
    return micros(datetime.now(UTC))


def _insert(
    connection: sqlite3.Connection, sql: str, args: Sequence[object], *, missing: str, duplicate: str | None = None
) -> None:
    """One insert whose foreign keys name what must exist first; ``missing`` and ``duplicate`` word the errors."""
    try:
        connection.execute(sql, args)
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise NotFoundError(missing) from exc
        if duplicate is not None and exc.sqlite_errorcode in {
            sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
            sqlite3.SQLITE_CONSTRAINT_UNIQUE,
        }:
            raise RegistryError(duplicate) from exc
        raise


def add_account(
    connection: sqlite3.Connection, account_id: str, role: str, display_name: str | None, patient_id: str | None
) -> AccountRecord:
    check_account(account_id, role, patient_id)
    _insert(
        connection,
        "INSERT INTO accounts (id, role, display_name, patient_id, created_at) VALUES (?, ?, ?, ?, ?)",
        (account_id, role, display_name, patient_id, _now()),
        missing=f"no patient {patient_id!r}: add it first (pulsebridge patients add)",
        duplicate=f"an account with id {account_id!r} already exists",
    )
    return AccountRecord(account_id, role, display_name, patient_id, disabled=False)


def get_account(connection: sqlite3.Connection, account_id: str) -> AccountRecord | None:
    row = connection.execute(
        "SELECT id, role, display_name, patient_id, disabled_at FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    if row is None:
        return None
    return AccountRecord(row["id"], row["role"], row["display_name"], row["patient_id"], row["disabled_at"] is not None)


def add_care_team(connection: sqlite3.Connection, team_id: str, name: str) -> None:
    _insert(connection, "INSERT INTO care_teams (id, name, created_at) VALUES (?, ?, ?)", (team_id, name, _now()),
            missing="", duplicate=f"a care team with id {team_id!r} already exists")  # fmt: skip


def add_care_team_member(connection: sqlite3.Connection, team_id: str, account_id: str) -> None:
    _insert(connection, "INSERT INTO care_team_members (team_id, account_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (team_id, account_id), missing=f"no care team {team_id!r} or no account {account_id!r}")  # fmt: skip


def add_care_team_patient(connection: sqlite3.Connection, team_id: str, patient_id: str) -> None:
    _insert(connection, "INSERT INTO care_team_patients (team_id, patient_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (team_id, patient_id), missing=f"no care team {team_id!r} or no patient {patient_id!r}")  # fmt: skip


def remove_care_team_patient(connection: sqlite3.Connection, team_id: str, patient_id: str) -> None:
    connection.execute("DELETE FROM care_team_patients WHERE team_id = ? AND patient_id = ?", (team_id, patient_id))


def delegate(connection: sqlite3.Connection, patient_id: str, account_id: str) -> None:
    _insert(
        connection,
        "INSERT INTO caregiver_delegations (patient_id, account_id, granted_at) VALUES (?, ?, ?) "
        "ON CONFLICT (patient_id, account_id) WHERE revoked_at IS NULL DO NOTHING",
        (patient_id, account_id, _now()),
        missing=f"no patient {patient_id!r} or no account {account_id!r}",
    )


def revoke_delegation(connection: sqlite3.Connection, patient_id: str, account_id: str) -> None:
    connection.execute(
        "UPDATE caregiver_delegations SET revoked_at = ? WHERE patient_id = ? AND account_id = ? AND revoked_at IS NULL",
        (_now(), patient_id, account_id),
    )


def relationships(connection: sqlite3.Connection, account_id: str) -> Relationships:
    found: dict[str, set[str]] = {"delegated": set(), "care_team": set()}
    for row in connection.execute(_RELATIONSHIPS, {"account": account_id}):
        found[row["via"]].add(row["patient_id"])
    return Relationships(frozenset(found["delegated"]), frozenset(found["care_team"]))


def add_patient_identifier(connection: sqlite3.Connection, patient_id: str, system: str, value: str) -> None:
    _insert(
        connection,
        "INSERT INTO patient_identifiers (patient_id, system, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (patient_id, system, value),
        missing=f"no patient {patient_id!r}: add it first (pulsebridge patients add)",
    )
    if patient_by_identifier(connection, system, value) != patient_id:
        msg = f"identifier {system}|{value} already belongs to another patient"
        raise RegistryError(msg)


def identifiers_of(connection: sqlite3.Connection, patient_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    if not patient_ids:
        return found
    marks = ", ".join("?" * len(patient_ids))
    rows = connection.execute(
        f"SELECT patient_id, system, value FROM patient_identifiers WHERE patient_id IN ({marks}) "  # noqa: S608 - placeholders only
        "ORDER BY patient_id, system, value",
        patient_ids,
    ).fetchall()
    for row in rows:
        found.setdefault(row["patient_id"], []).append((row["system"], row["value"]))
    return found


def patient_by_identifier(connection: sqlite3.Connection, system: str, value: str) -> str | None:
    row = connection.execute(
        "SELECT patient_id FROM patient_identifiers WHERE system = ? AND value = ?", (system, value)
    ).fetchone()
    return None if row is None else str(row["patient_id"])


def device_for(connection: sqlite3.Connection, device_id: str, patient_id: str) -> str:
    """The device's resource id, once both it and the patient are known to exist."""
    device = connection.execute("SELECT resource_id FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    if device is None:
        msg = f"no device {device_id!r}: add it first (pulsebridge devices add)"
        raise NotFoundError(msg)
    if connection.execute("SELECT 1 FROM patients WHERE id = ?", (patient_id,)).fetchone() is None:
        msg = f"no patient {patient_id!r}: add it first (pulsebridge patients add)"
        raise NotFoundError(msg)
    return str(device["resource_id"])


def assign_user_slot(
    connection: sqlite3.Connection, device_id: str, user_slot: int, patient_id: str, valid_from: datetime | None
) -> None:
    resource_id = device_for(connection, device_id, patient_id)
    history = connection.execute(
        "SELECT id, patient_id, valid_from, valid_to FROM device_user_slots WHERE device_resource_id = ? AND user_slot = ?",
        (resource_id, user_slot),
    ).fetchall()
    current = next(
        (OpenAssignment(row["id"], row["patient_id"], instant(row["valid_from"])) for row in history if row["valid_to"] is None),
        None,
    )
    plan = plan_assignment(f"{device_id} user {user_slot}", patient_id, valid_from, current=current, has_history=bool(history))
    if plan.unchanged:
        return
    start = None if plan.record.valid_from is None else micros(plan.record.valid_from)
    if plan.close_row_id is not None:
        connection.execute("UPDATE device_user_slots SET valid_to = ? WHERE id = ?", (start, plan.close_row_id))
    connection.execute(
        "INSERT INTO device_user_slots (device_resource_id, user_slot, patient_id, valid_from, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (resource_id, user_slot, patient_id, start, _now()),
    )


def user_slot_rows(connection: sqlite3.Connection, device_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The slots of these devices, for ``group_registrations``."""
    marks = ", ".join("?" for _ in device_ids)
    rows = connection.execute(
        "SELECT d.device_id, s.user_slot, s.patient_id, s.valid_from, s.valid_to FROM device_user_slots s "  # noqa: S608 - placeholders only
        f"JOIN devices d ON d.resource_id = s.device_resource_id WHERE d.device_id IN ({marks}) ORDER BY s.id",
        list(device_ids),
    ).fetchall()
    return [{**dict(row), "valid_from": instant(row["valid_from"]), "valid_to": instant(row["valid_to"])} for row in rows]


def add_pairing_code(connection: sqlite3.Connection, digest: bytes, grant: PairingGrant) -> None:
    _insert(
        connection,
        "INSERT INTO pairing_codes (digest, patient_id, created_by, created_at, expires_at, device_kind) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (digest, grant.patient_id, grant.created_by, micros(grant.created_at), micros(grant.expires_at), grant.device_kind),
        missing=f"no patient {grant.patient_id!r}",
        duplicate="this pairing code is already issued",
    )


def redeem_pairing_code(connection: sqlite3.Connection, digest: bytes, device_id: str, now: datetime) -> PairingGrant | None:
    row = connection.execute(_REDEEM, {"now": micros(now), "device": device_id, "digest": digest}).fetchone()
    if row is None:
        return None
    return PairingGrant(row["patient_id"], row["created_by"], required_instant(row["created_at"]),
                        required_instant(row["expires_at"]), row["device_kind"])  # fmt: skip


def add_device_credential(connection: sqlite3.Connection, device_id: str, kind: str, secret_hash: str) -> int:
    if kind not in DEVICE_CREDENTIAL_KINDS:
        msg = f"credential kind {kind!r} is not one of {', '.join(sorted(DEVICE_CREDENTIAL_KINDS))}"
        raise RegistryError(msg)
    row = connection.execute(
        "INSERT INTO device_credentials (device_resource_id, kind, secret_hash, created_at) "
        "SELECT resource_id, ?, ?, ? FROM devices WHERE device_id = ? RETURNING id",
        (kind, secret_hash, _now(), device_id),
    ).fetchone()
    if row is None:
        msg = f"no device {device_id!r}: add it first (pulsebridge devices add)"
        raise NotFoundError(msg)
    return int(row["id"])


def device_credentials(connection: sqlite3.Connection, device_id: str) -> list[DeviceCredentialRecord]:
    rows = connection.execute(
        "SELECT c.id, c.kind, c.secret_hash, c.created_at, c.revoked_at FROM device_credentials c "
        "JOIN devices d ON d.resource_id = c.device_resource_id WHERE d.device_id = ? ORDER BY c.id",
        (device_id,),
    ).fetchall()
    return [
        DeviceCredentialRecord(row["id"], row["kind"], row["secret_hash"], required_instant(row["created_at"]),
                               instant(row["revoked_at"]))
        for row in rows
    ]  # fmt: skip


def revoke_device_credentials(connection: sqlite3.Connection, device_id: str, now: datetime) -> int:
    cursor = connection.execute(
        "UPDATE device_credentials SET revoked_at = ? WHERE revoked_at IS NULL "
        "AND device_resource_id = (SELECT resource_id FROM devices WHERE device_id = ?)",
        (micros(now), device_id),
    )
    return cursor.rowcount


def append_audit(connection: sqlite3.Connection, records: Sequence[AuditRecord]) -> None:
    last = connection.execute("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1").fetchone()
    rows = audit_rows(GENESIS_HASH if last is None else bytes(last["hash"]), records)
    connection.executemany(
        _INSERT_AUDIT,
        [{**row, "event_id": str(row["event_id"]), "recorded_at": micros(row["recorded_at"])} for row in rows],
    )


def _audit_row(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "recorded_at": required_instant(row["recorded_at"])}


def audit_chain(connection: sqlite3.Connection, after_id: int, limit: int) -> list[tuple[int, ChainedRecord]]:
    return [chained_record(_audit_row(row)) for row in connection.execute(_AUDIT_CHAIN, (after_id, limit))]


def search_audit(connection: sqlite3.Connection, patient_id: str | None, limit: int) -> list[AuditRecord]:
    rows = connection.execute(_SEARCH_AUDIT, (patient_id, patient_id, limit))
    return [audit_record(_audit_row(row)) for row in rows]
