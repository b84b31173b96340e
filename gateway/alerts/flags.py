"""How an alert is shown: the API's JSON (also the webhook's), and a FHIR R4 Flag.

A Flag is active while the alert is unresolved (open, acknowledged or snoozed) and inactive
once it resolved; ``period`` runs from when it was raised to when it cleared. The alert's own
status and severity ride in extensions, its rule in ``code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from gateway.storage.alerts import AlertRecord

RULE_SYSTEM = "https://pulsebridge.dev/fhir/CodeSystem/alert-rule"
STATUS_EXTENSION = "https://pulsebridge.dev/fhir/StructureDefinition/alert-status"
SEVERITY_EXTENSION = "https://pulsebridge.dev/fhir/StructureDefinition/alert-severity"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"


RULE_DISPLAY: Mapping[str, tuple[str, str]] = {
    "threshold": ("Vital sign beyond its threshold", "clinical"),
    "rate_of_change": ("Vital sign changing fast", "clinical"),
    "news2": ("NEWS2 early warning score", "clinical"),
    "no_data": ("No data received", "admin"),
    "low_battery": ("Device battery low", "admin"),
}
"""Per rule kind: the Flag's code display and its flag-category."""
CATEGORY_DISPLAY = {"clinical": "Clinical", "admin": "Administrative"}


def _time(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat()


def alert_json(record: AlertRecord) -> dict[str, object]:
    return {
        "id": str(record.id),
        "patient_id": record.patient_id,
        "rule": record.key.rule,
        "kind": record.key.kind,
        "severity": record.severity,
        "status": record.status,
        "summary": record.summary,
        "raised_at": _time(record.raised_at),
        "updated_at": _time(record.updated_at),
        "cleared_at": _time(record.cleared_at),
        "acknowledged_by": record.acknowledged_by,
        "acknowledged_at": _time(record.acknowledged_at),
        "snoozed_until": _time(record.snoozed_until),
        "detail": dict(record.detail),
    }


def flag_resource(record: AlertRecord) -> dict[str, object]:
    display, category = RULE_DISPLAY.get(record.key.rule, (record.key.rule, "clinical"))
    period = {"start": _time(record.raised_at)}
    if record.cleared_at is not None:
        period["end"] = _time(record.cleared_at)
    return {
        "resourceType": "Flag",
        "id": str(record.id),
        "meta": {"lastUpdated": _time(record.updated_at)},
        "extension": [
            {"url": STATUS_EXTENSION, "valueCode": record.status},
            {"url": SEVERITY_EXTENSION, "valueCode": record.severity},
        ],
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{record.id}"}],
        "status": "inactive" if record.status == "resolved" else "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY, "code": category, "display": CATEGORY_DISPLAY[category]}]}],
        "code": {"coding": [{"system": RULE_SYSTEM, "code": record.key.rule, "display": display}], "text": record.summary},
        "subject": {"reference": f"Patient/{record.patient_id}"},
        "period": period,
    }
