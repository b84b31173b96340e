"""What both adapters share between SQL rows and port records: assignment plans, registrations, audit rows.

Pure functions over plain mappings (each adapter first turns its own types, such as SQLite's
integer instants, into Python values), so the two dialects cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from device_adapters.errors import RegistryError
from gateway.auth.audit import AuditAction, AuditOutcome, AuditRecord, ChainedRecord, chain_hash
from gateway.storage.port import (
    ACCOUNT_ROLES,
    DEVICE_INFORMATION_FIELDS,
    AssignmentRecord,
    DeviceEntry,
    DeviceRecord,
    DeviceRegistration,
    UserSlotRecord,
)


@dataclass(frozen=True, slots=True)
class OpenAssignment:
    """The assignment a device has now (its ``valid_to`` is open), as a store row."""

    row_id: int
    patient_id: str
    valid_from: datetime | None


@dataclass(frozen=True, slots=True)
class AssignmentPlan:
    """What an assign command must write: nothing, or close ``close_row_id`` and open one at ``start``."""

    record: AssignmentRecord
    unchanged: bool
    close_row_id: int | None


def plan_assignment(
    device_id: str,
    patient_id: str,
    valid_from: datetime | None,
    *,
    current: OpenAssignment | None,
    has_history: bool,
) -> AssignmentPlan:
    """Decide what an assign command writes.

    A device's first assignment covers all its readings unless ``valid_from`` says otherwise; a
    reassignment starts at ``valid_from`` or now, and must start after the current one began.
    """
    if current is not None and current.patient_id == patient_id and valid_from is None:
        unchanged = AssignmentRecord(device_id, patient_id, current.valid_from, None)
        return AssignmentPlan(unchanged, unchanged=True, close_row_id=None)
    start = valid_from if valid_from is not None else (datetime.now(UTC) if has_history else None)
    if current is not None and (start is None or (current.valid_from is not None and start <= current.valid_from)):
        msg = f"device {device_id!r} is assigned since {current.valid_from}: the new assignment must start later"
        raise RegistryError(msg)
    closing = None if current is None else current.row_id
    return AssignmentPlan(AssignmentRecord(device_id, patient_id, start, None), unchanged=False, close_row_id=closing)


def group_registrations(
    rows: Sequence[Mapping[str, Any]], slot_rows: Sequence[Mapping[str, Any]] = ()
) -> dict[str, DeviceRegistration]:
    """Fold device LEFT JOIN assignment rows, and (device_id, user_slot, patient_id, valid_from, valid_to) rows, per device."""
    devices: dict[str, DeviceRecord] = {}
    assignments: dict[str, list[AssignmentRecord]] = {}
    for row in rows:
        device_id = row["device_id"]
        resource_id = row["resource_id"]
        if not isinstance(resource_id, uuid.UUID):
            resource_id = uuid.UUID(resource_id)
        devices.setdefault(device_id, DeviceRecord(resource_id, device_id, row["kind"], row["display_name"]))
        bucket = assignments.setdefault(device_id, [])
        if row["patient_id"] is not None:
            bucket.append(AssignmentRecord(device_id, row["patient_id"], row["valid_from"], row["valid_to"]))
    slots: dict[str, list[UserSlotRecord]] = {}
    for row in slot_rows:
        slots.setdefault(row["device_id"], []).append(
            UserSlotRecord(row["user_slot"], row["patient_id"], row["valid_from"], row["valid_to"])
        )
    return {
        device_id: DeviceRegistration(device, tuple(assignments[device_id]), tuple(slots.get(device_id, ())))
        for device_id, device in devices.items()
    }


def device_entry(row: Mapping[str, Any]) -> DeviceEntry:
    """A ``devices d LEFT JOIN`` open-assignment row (either dialect) as a DeviceEntry."""
    resource_id = row["resource_id"]
    if not isinstance(resource_id, uuid.UUID):
        resource_id = uuid.UUID(resource_id)
    information = {name: row[name] for name in DEVICE_INFORMATION_FIELDS if row[name] is not None}
    return DeviceEntry(
        DeviceRecord(resource_id, row["device_id"], row["kind"], row["display_name"]), information, row["patient_id"]
    )


def audit_rows(previous: bytes, records: Sequence[AuditRecord]) -> list[dict[str, Any]]:
    """The audit_events rows of ``records`` appended after a row hashed ``previous``, in order.

    The 0003 column ``entity`` is NOT NULL, so a record without one is stored as ''.
    """
    rows = []
    for record in records:
        digest = chain_hash(previous, record)
        rows.append({
            "event_id": record.id, "recorded_at": record.recorded_at.astimezone(UTC), "actor": record.agent,
            "action": record.action.value, "entity": record.entity or "", "outcome": record.outcome.value,
            "detail": orjson.dumps(dict(record.detail)).decode(), "patient_id": record.patient_id,
            "prev_hash": previous, "hash": digest,
        })  # fmt: skip
        previous = digest
    return rows


AUDIT_COLUMNS = "id, event_id, recorded_at, actor, action, entity, outcome, detail, patient_id, prev_hash, hash"


def audit_record(row: Mapping[str, Any]) -> AuditRecord:
    """A stored audit row as the record that was hashed (``detail`` as JSON text, ``recorded_at`` aware)."""
    event_id = row["event_id"]
    recorded_at: datetime = row["recorded_at"]
    return AuditRecord(
        recorded_at=recorded_at,
        action=AuditAction(row["action"]),
        outcome=AuditOutcome(row["outcome"]),
        agent=row["actor"],
        patient_id=row["patient_id"],
        entity=row["entity"] or None,
        detail=orjson.loads(row["detail"]),
        id=event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id),
    )


def chained_record(row: Mapping[str, Any]) -> tuple[int, ChainedRecord]:
    return row["id"], ChainedRecord(audit_record(row), bytes(row["prev_hash"]), bytes(row["hash"]))


def check_account(account_id: str, role: str, patient_id: str | None) -> None:
    """What the accounts table's CHECKs refuse, said in words before the database says it in codes."""
    if role not in ACCOUNT_ROLES:
        msg = f"account {account_id!r}: role {role!r} is not one of {', '.join(sorted(ACCOUNT_ROLES))}"
        raise RegistryError(msg)
    if (role == "patient") != (patient_id is not None):
        msg = f"account {account_id!r}: a patient account, and only a patient account, names its patient"
        raise RegistryError(msg)
