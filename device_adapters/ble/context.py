"""What a GATT value needs besides its bytes to become readings: which device, and its clock.

Bluetooth times are the device's local wall clock with no zone, possibly never set. A
:class:`DeviceClock` records the device clock read at a known gateway time (Current Time, as the
PHD IG's coincident time stamp does) and the device's zone (Local Time Information), and maps a
device timestamp to real time. The device's own text stays in the reading key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from device_adapters.ble.octets import BleDateTime
from device_adapters.readings import require_aware


@dataclass(frozen=True, slots=True)
class DeviceClock:
    """The device clock compared with the gateway's at connection time."""

    device_now: datetime | None = None
    """The device's (naive, local) clock read over Current Time; None when never compared."""
    gateway_now: datetime | None = None
    """The gateway's aware time at that read."""
    zone: tzinfo = UTC
    """The device's zone (Local Time Information), or the zone the device is configured for."""

    def __post_init__(self) -> None:
        if (self.device_now is None) != (self.gateway_now is None):
            msg = "device_now and gateway_now go together"
            raise ValueError(msg)
        if self.gateway_now is not None:
            require_aware("gateway_now", self.gateway_now)

    def anchor(self, local: datetime) -> datetime:
        """Real time of a device timestamp: the gateway time at comparison plus the device's elapsed time."""
        if self.device_now is None or self.gateway_now is None:
            return local.replace(tzinfo=self.zone)
        return (self.gateway_now + (local - self.device_now)).astimezone(self.zone)


@dataclass(frozen=True, slots=True)
class BleContext:
    device_id: str
    received_at: datetime
    clock: DeviceClock = DeviceClock()
    cgm_session_start: BleDateTime | None = None
    """CGM Session Start Time (0x2AAA), when read: CGM records are minutes after it."""

    def __post_init__(self) -> None:
        require_aware("received_at", self.received_at)

    def time_of(self, stamp: BleDateTime | None) -> tuple[datetime, str | None]:
        """(effective time, device time text for the key); reception time when the device gave no usable date."""
        local = stamp.naive() if stamp is not None else None
        if stamp is None or local is None:
            return self.received_at, None
        return self.anchor(local), stamp.text()

    def anchor(self, local: datetime) -> datetime:
        return self.clock.anchor(local)


class ClockBook:
    """The latest clock comparison per device, shared by the session manager and the frame decoder."""

    def __init__(self, default_zone: tzinfo = UTC) -> None:
        self._clocks: dict[str, DeviceClock] = {}
        self._default = DeviceClock(zone=default_zone)

    def set(self, device_id: str, clock: DeviceClock) -> None:
        self._clocks[device_id] = clock

    def get(self, device_id: str) -> DeviceClock:
        return self._clocks.get(device_id, self._default)
