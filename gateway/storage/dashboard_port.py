"""What the dashboard needs from a store beyond ``port.ObservationStore``: passwords and activity.

Both adapters implement it (SQL in ``timescale_dashboard`` and ``sqlite_dashboard``) and pass
the same contract tests (``tests/test_dashboard_store.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from device_adapters.readings import require_aware

BATTERY_KIND = "battery_level"


@dataclass(frozen=True, slots=True)
class DeviceActivity:
    """One device's latest reading for a patient, and its latest battery level (percent) if it reports one."""

    device_resource_id: uuid.UUID
    last_reading: datetime
    battery: float | None
    battery_time: datetime | None


@dataclass(frozen=True, slots=True)
class PatientActivity:
    patient_id: str
    devices: tuple[DeviceActivity, ...]
    days_with_data: int
    """Distinct UTC days since the window's start with at least one physiological reading (battery does not count)."""


@dataclass(frozen=True, slots=True)
class ActivityQuery:
    patient_id: str
    since: datetime
    """Devices and days are looked at from here on (the remote-monitoring window: 30 days)."""

    def __post_init__(self) -> None:
        require_aware("since", self.since)


class DashboardStore(Protocol):
    async def set_account_password(self, account_id: str, password_hash: str) -> None:
        """Set (or replace) the account's password hash; an unknown account is a ``NotFoundError``."""
        ...

    async def account_password(self, account_id: str) -> str | None: ...

    async def patient_activity(self, query: ActivityQuery) -> PatientActivity: ...
