"""Audit events shaped like IHE Basic Audit Log Patterns (BALP), chained by hashes.

Every read, search, create, export, push, pairing and denial is one event. Each stored event
carries ``hash = SHA-256(previous hash || canonical JSON of the event)``, so altering, removing
or reordering a row breaks the chain from that row on; :func:`verify_chain` finds the first
broken row. Events name resources and people by id only: no names, values or secrets.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from device_adapters.readings import require_aware

GENESIS_HASH = bytes(32)
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
PULSEBRIDGE_AUDIT = "https://pulsebridge.dev/fhir/CodeSystem/audit-action"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"


class AuditAction(StrEnum):
    """What was done; each maps to a FHIR action code and a BALP subtype."""

    READ = "read"
    SEARCH = "search-type"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    EXPORT = "export"
    PUSH = "push"
    PAIR = "pair"
    UNPAIR = "unpair"
    LOGIN = "login"


# FHIR AuditEvent.action: C create, R read, U update, D delete, E execute (BALP records a query as E).
_ACTION_CODES: Mapping[AuditAction, str] = {
    AuditAction.READ: "R",
    AuditAction.SEARCH: "E",
    AuditAction.CREATE: "C",
    AuditAction.UPDATE: "U",
    AuditAction.DELETE: "D",
    AuditAction.EXPORT: "E",
    AuditAction.PUSH: "E",
    AuditAction.PAIR: "C",
    AuditAction.UNPAIR: "D",
    AuditAction.LOGIN: "E",
}
_RESTFUL = frozenset({AuditAction.READ, AuditAction.SEARCH, AuditAction.CREATE, AuditAction.UPDATE, AuditAction.DELETE})


class AuditOutcome(StrEnum):
    """FHIR AuditEvent.outcome."""

    SUCCESS = "0"
    DENIED = "4"
    """Minor failure: the request was refused (authorization, validation, throttling)."""
    ERROR = "8"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action, as stored (the AuditEvent resource is derived from it)."""

    recorded_at: datetime
    action: AuditAction
    outcome: AuditOutcome
    agent: str
    """Who: ``Patient/…``, ``Practitioner/…``, ``Device/…`` or ``Client/…`` (never a token)."""
    patient_id: str | None
    entity: str | None
    """What: ``Observation/<id>``, ``Observation?patient=…`` or ``PairingCode``."""
    detail: Mapping[str, str] = field(default_factory=dict)
    """Short machine-readable context: the reason of a denial, a count. No PHI."""
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        require_aware("recorded_at", self.recorded_at)

    def canonical(self) -> bytes:
        """The bytes the hash chain covers: every field, in a fixed order and form."""
        return orjson.dumps(
            {
                "id": str(self.id),
                "recorded_at": self.recorded_at.astimezone(UTC).isoformat(),
                "action": self.action.value,
                "outcome": self.outcome.value,
                "agent": self.agent,
                "patient_id": self.patient_id,
                "entity": self.entity,
                "detail": dict(self.detail),
            },
            option=orjson.OPT_SORT_KEYS,
        )


def chain_hash(previous: bytes, record: AuditRecord) -> bytes:
    return hashlib.sha256(previous + record.canonical()).digest()


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    record: AuditRecord
    previous_hash: bytes
    hash: bytes


def verify_chain(rows: Iterable[ChainedRecord], previous: bytes = GENESIS_HASH) -> AuditRecord | None:
    """The first row whose content or link does not match the chain, or None if all do.

    ``previous`` is the hash the first row must link to: a page after the first links to the
    last hash of the page before.
    """
    for row in rows:
        if row.previous_hash != previous or chain_hash(previous, row.record) != row.hash:
            return row.record
        previous = row.hash
    return None


def audit_event(record: AuditRecord, gateway_device_id: uuid.UUID | None) -> dict[str, Any]:
    """The FHIR R4 AuditEvent of a record, in the BALP pattern of its action."""
    subtype = (
        {"system": RESTFUL_INTERACTION, "code": record.action.value}
        if record.action in _RESTFUL
        else {"system": PULSEBRIDGE_AUDIT, "code": record.action.value}
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(record.id),
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [subtype],
        "action": _ACTION_CODES[record.action],
        "recorded": record.recorded_at.astimezone(UTC).isoformat(),
        "outcome": record.outcome.value,
        "agent": [{"who": {"reference": record.agent}, "requestor": True}],
        "source": {
            "observer": {"reference": f"Device/{gateway_device_id}"} if gateway_device_id else {"display": "PulseBridge"},
            "type": [{"system": SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if record.detail:
        event["outcomeDesc"] = "; ".join(f"{key}={value}" for key, value in sorted(record.detail.items()))
    entities: list[dict[str, Any]] = []
    if record.patient_id is not None:
        entities.append({
            "what": {"reference": f"Patient/{record.patient_id}"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        })  # fmt: skip
    if record.entity is not None:
        if "?" in record.entity:
            entities.append({
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": _base64(record.entity),
            })  # fmt: skip
        else:
            entities.append(
                {"what": {"reference": record.entity}, "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}}
            )
    if entities:
        event["entity"] = entities
    return event


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")
