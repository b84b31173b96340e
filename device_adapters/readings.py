"""The vocabulary every stage shares: raw frames in, readings out.

Values are frozen, slotted and checked on construction; times are always timezone-aware.
Numbers stay :class:`~decimal.Decimal` so the precision a device reported is never lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
"""A device's own id: one MQTT topic level, no wildcards, no separators."""


def require_aware(name: str, value: datetime) -> None:
    """Refuse naive datetimes: a reading without an offset cannot be placed in time."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name} must be timezone-aware, got {value.isoformat()}"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One message exactly as a transport delivered it."""

    source: str
    """Transport that delivered it: ``mqtt``, ``http``, ``ble``."""
    channel: str
    """Where it arrived: the MQTT topic, the HTTP path, the BLE characteristic."""
    payload: bytes
    received_at: datetime

    def __post_init__(self) -> None:
        require_aware("received_at", self.received_at)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A measured value with the unit the device reported it in."""

    value: Decimal
    unit: str

    def __post_init__(self) -> None:
        if not self.value.is_finite():
            msg = f"quantity value must be finite, got {self.value}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Reading:
    """One physiological reading, as reported by one device, before normalization.

    ``kind`` is the catalogue name (``heart_rate``, ``blood_pressure``...). A simple reading has
    a ``quantity``; a compound one (blood pressure) has named ``components`` instead.
    """

    device_id: str
    """The device as authenticated by the transport (topic, connection), never a payload claim."""
    kind: str
    time: datetime
    """The device's own timestamp: part of the reading key, kept with its original offset."""
    quantity: Quantity | None = None
    components: tuple[tuple[str, Quantity], ...] = field(default=())
    index: int = 0
    """Position of the reading inside its frame (a frame may carry many)."""

    def __post_init__(self) -> None:
        require_aware("time", self.time)
        if (self.quantity is None) == (not self.components):
            msg = "a reading has either a quantity or components, not both or neither"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A frame and the way to acknowledge it to its source once it is safely stored."""

    frame: RawFrame
    ack: Callable[[], None]
