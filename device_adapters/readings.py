"""The vocabulary every stage shares: raw frames in, readings out.

Values are frozen, slotted and checked on construction; times are always timezone-aware.
Numbers stay :class:`~decimal.Decimal` so the precision a device reported is never lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from device_adapters.errors import InputRejectedError

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


class AbsentReason(StrEnum):
    """Why a reading carries no value: the IEEE 11073 special values, named as FHIR names them."""

    NOT_A_NUMBER = "not-a-number"
    """NaN: the device has no valid result."""
    ERROR = "error"
    """NRes (not at this resolution) and the reserved values: the device could not measure."""
    POSITIVE_INFINITY = "positive-infinity"
    """Above the device's range (a glucose meter's "HI")."""
    NEGATIVE_INFINITY = "negative-infinity"
    """Below the device's range (a glucose meter's "LO")."""
    UNKNOWN = "unknown"


class ReadingFlag(StrEnum):
    """What a device says about its own result (range flags, as a clinician reads them)."""

    HIGH = "high"
    LOW = "low"
    CRITICAL_HIGH = "critical_high"
    CRITICAL_LOW = "critical_low"
    ABNORMAL = "abnormal"


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
    absent: AbsentReason | None = None
    """Set instead of a value when the device reported a special value (NaN, NRes, ±INF)."""
    site: str | None = None
    """Where on the body (temperature: ``oral``, ``axillary``…)."""
    duration: timedelta | None = None
    """For readings over an interval (steps, energy): the interval starting at ``time``."""
    flags: frozenset[ReadingFlag] = frozenset()
    device_time: str | None = None
    """The device's own timestamp exactly as it reported it, when its clock has no zone (Bluetooth).

    It, not the anchored ``time``, goes into the reading key: re-anchoring the same stored record
    on a later connection must not make it a new reading.
    """
    user: int | None = None
    """The device's user slot (BP cuffs and scales with several users); attribution maps it."""
    status_codes: tuple[tuple[str, str], ...] = ()
    """Device status bits set for this reading, as (HL7 ASN1ToHL7 code, display) pairs."""

    def __post_init__(self) -> None:
        require_aware("time", self.time)
        shapes = (self.quantity is not None) + bool(self.components) + (self.absent is not None)
        if shapes != 1:
            msg = "a reading has exactly one of a quantity, components or an absent reason"
            raise ValueError(msg)
        if self.duration is not None and self.duration < timedelta(0):
            msg = f"duration must not be negative, got {self.duration}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A frame and the way to acknowledge it to its source once it is safely stored."""

    frame: RawFrame
    ack: Callable[[], None]


@dataclass(frozen=True, slots=True)
class FrameDecode:
    """What one frame yielded: good readings, and the items that must go to quarantine (by index)."""

    readings: tuple[Reading, ...]
    rejections: tuple[tuple[int, InputRejectedError], ...] = ()
    claimed_patients: tuple[tuple[int, str], ...] = ()
    """Patients the payload names, by reading index: attribution must agree (``identity_mismatch``)."""
    atomic: bool = False
    """All or nothing: when any item is rejected, none of the frame's readings is stored (a FHIR transaction)."""
