"""The alerts' storage vocabulary: alert rows, per-patient rules and what the silence sweep reads.

One unresolved alert per (patient, rule, kind): raising it again while it is open (or
acknowledged, or snoozed) changes nothing unless the severity changed, and a rise in severity
puts an acknowledged alert back to open. Resolving keeps the row (``cleared_at``): an alert's
history is part of the record. Both stores implement :class:`AlertStore` (``store.alerts``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from device_adapters.readings import require_aware

Severity = Literal["low", "medium", "high"]
AlertStatus = Literal["open", "acknowledged", "snoozed", "resolved"]
JsonValue = str | int | float | bool | None
SEVERITY_RANK: Mapping[str, int] = {"low": 0, "medium": 1, "high": 2}
UNRESOLVED: frozenset[AlertStatus] = frozenset({"open", "acknowledged", "snoozed"})


@dataclass(frozen=True, slots=True)
class AlertKey:
    """What de-duplicates alerts: ``kind`` is a reading kind, ``kind.component``, ``news2``, ``device:<id>`` or ``patient``."""

    patient_id: str
    rule: str
    kind: str


@dataclass(frozen=True, slots=True)
class AlertCandidate:
    """A condition the rules found active."""

    key: AlertKey
    severity: Severity
    summary: str
    at: datetime
    detail: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware("at", self.at)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: uuid.UUID
    key: AlertKey
    severity: Severity
    status: AlertStatus
    summary: str
    raised_at: datetime
    updated_at: datetime
    cleared_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    snoozed_until: datetime | None
    detail: Mapping[str, JsonValue]

    @property
    def patient_id(self) -> str:
        return self.key.patient_id


@dataclass(frozen=True, slots=True)
class AlertQuery:
    patient_ids: frozenset[str] | None = None
    """None: every patient; an empty set matches nothing."""
    statuses: frozenset[AlertStatus] | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class DeviceActivity:
    """A device assigned to a patient now, and when it was last heard from (by its readings' own times)."""

    device_id: str
    patient_id: str
    watched_from: datetime
    """Since when silence counts: the assignment's start (or its creation, when open-ended)."""
    last_time: datetime | None
    """Its latest reading within the sweep's lookback; None: nothing in it."""
    battery: Decimal | None
    """Its latest battery level (%) within the lookback."""


@dataclass(frozen=True, slots=True)
class RuleRecord:
    """A patient's own rules, as the JSON the API accepted."""

    patient_id: str
    rules: str
    updated_by: str
    updated_at: datetime


class AlertStore(Protocol):
    async def raise_alert(self, candidate: AlertCandidate) -> tuple[AlertRecord, bool]:
        """The unresolved alert for the candidate's key, opened or updated; True when that changed anything."""
        ...

    async def resolve_alert(self, key: AlertKey, at: datetime) -> AlertRecord | None:
        """Resolve the key's unresolved alert (None: there was none)."""
        ...

    async def list_alerts(self, query: AlertQuery) -> list[AlertRecord]:
        """Newest raised first."""
        ...

    async def get_alert(self, alert_id: uuid.UUID) -> AlertRecord | None: ...

    async def acknowledge_alert(self, alert_id: uuid.UUID, by: str, at: datetime) -> AlertRecord | None:
        """None when there is no such unresolved alert."""
        ...

    async def snooze_alert(self, alert_id: uuid.UUID, until: datetime, by: str, at: datetime) -> AlertRecord | None: ...

    async def wake_snoozed(self, at: datetime) -> list[AlertRecord]:
        """Snoozed alerts whose snooze ran out are open again."""
        ...

    async def alert_rules(self, patient_id: str) -> RuleRecord | None: ...

    async def set_alert_rules(self, patient_id: str, rules: str | None, by: str, at: datetime) -> None:
        """Store the patient's own rules (None: back to the defaults)."""
        ...

    async def device_activity(self, now: datetime, since: datetime) -> list[DeviceActivity]: ...
