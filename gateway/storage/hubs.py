"""Edge hubs in the store: pairings (the hub's configuration) and the status the hub reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from device_adapters.readings import require_aware


@dataclass(frozen=True, slots=True)
class HubDevice:
    """A device paired with a hub, and what the hub last said about it."""

    hub_id: str
    device_id: str
    address: str
    paired_at: datetime
    connected: bool | None = None
    battery_percent: int | None = None
    rssi: int | None = None
    last_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HubRecord:
    hub_id: str
    online: bool
    presence_at: datetime | None
    last_heartbeat_at: datetime | None
    version: str | None
    queue_depth: int | None
    clock_skew_seconds: float | None
    alarms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeviceReport:
    device_id: str
    connected: bool
    battery_percent: int | None
    rssi: int | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class HubHeartbeat:
    """One heartbeat as the gateway received it (its own clock: a hub's may be off)."""

    hub_id: str
    received_at: datetime
    version: str
    queue_depth: int
    clock_skew_seconds: float | None
    alarms: tuple[str, ...]
    devices: tuple[DeviceReport, ...]

    def __post_init__(self) -> None:
        require_aware("received_at", self.received_at)
