"""Heart Rate Measurement (0x2A37) and Body Sensor Location (0x2A38).

Layout (spec digest 2.1): flags u8 | Heart Rate u8 (bit0 = 0) or u16 (bit0 = 1) |
[Energy Expended u16 kJ] (bit3) | [RR-Interval u16 x n, 1/1024 s] (bit4). Bits 1-2 are the
Sensor Contact Status; bits 5-7 are RFU and ignored. The RR list is the value's tail: it takes
every remaining octet (an odd count is an error), so only with bit4 clear are trailing octets
rejected. Body Sensor Location is one enumerated octet, read once per connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal
from enum import StrEnum

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.octets import OctetReader, require_length
from device_adapters.readings import Quantity, Reading

HEART_RATE_MEASUREMENT = "Heart Rate Measurement"
BODY_SENSOR_LOCATION = "Body Sensor Location"

RR_TICKS_PER_SECOND = Decimal(1024)
_EXACT = Context(prec=34)
"""Division by 1024 = 2^10 always terminates (at most 10 decimals): the quotient is exact at this precision."""


class SensorContact(StrEnum):
    """Flags bits 1-2: whether the sensor supports contact detection and, if so, whether it touches skin."""

    NOT_SUPPORTED = "not-supported"
    """0 or 1: the feature is not supported in this connection."""
    NOT_DETECTED = "not-detected"
    """2: supported, but the sensor is not in contact with the body."""
    DETECTED = "detected"
    """3: supported and in contact."""


_CONTACT = {0: SensorContact.NOT_SUPPORTED, 1: SensorContact.NOT_SUPPORTED, 2: SensorContact.NOT_DETECTED,
            3: SensorContact.DETECTED}  # fmt: skip


class SensorLocation(StrEnum):
    OTHER = "other"
    CHEST = "chest"
    WRIST = "wrist"
    FINGER = "finger"
    HAND = "hand"
    EAR_LOBE = "ear-lobe"
    FOOT = "foot"


_LOCATIONS = dict(enumerate(SensorLocation))
"""0 Other ... 6 Foot; 7-255 are RFU (kept raw, mapped to nothing)."""


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    heart_rate: int
    """Beats per minute (the flags only choose the field width)."""
    sensor_contact: SensorContact
    energy_expended: int | None = None
    """kJ accumulated since the last reset through the Heart Rate Control Point; 0xFFFF means saturated."""
    rr_intervals_raw: tuple[int, ...] = ()
    """RR intervals in 1/1024 s, oldest first, exactly as sent."""
    rr_intervals: tuple[Decimal, ...] = ()
    """The same intervals in seconds, exact (raw 800 is 0.78125 s: no rounding to milliseconds)."""


@dataclass(frozen=True, slots=True)
class BodySensorLocation:
    raw: int
    location: SensorLocation | None
    """None for the RFU values 7-255."""


def rr_seconds(raw: int) -> Decimal:
    """An RR interval in 1/1024 s as exact seconds."""
    return _EXACT.divide(Decimal(raw), RR_TICKS_PER_SECOND)


def parse_heart_rate_measurement(data: bytes) -> HeartRateMeasurement:
    reader = OctetReader(HEART_RATE_MEASUREMENT, data)
    if not data:
        raise reader.error("empty value")
    flags = data[0]
    wide, energy, rr = bool(flags & 0x01), bool(flags & 0x08), bool(flags & 0x10)
    # At least one RR interval when bit4 announces the list.
    require_length(HEART_RATE_MEASUREMENT, data, flags, [(True, 1), (True, 2 if wide else 1), (energy, 2), (rr, 2)])
    reader.u8("Flags")
    heart_rate = reader.u16("Heart Rate Measurement Value") if wide else reader.u8("Heart Rate Measurement Value")
    energy_expended = reader.u16("Energy Expended") if energy else None
    raw: tuple[int, ...] = ()
    if rr:
        tail = reader.rest()
        if len(tail) % 2:
            raise reader.error(f"RR-Interval list has an odd length ({len(tail)} octets); each interval is 2 octets")
        raw = tuple(int.from_bytes(tail[i : i + 2], "little") for i in range(0, len(tail), 2))
    else:
        reader.finish()
    return HeartRateMeasurement(
        heart_rate, _CONTACT[flags >> 1 & 0b11], energy_expended, raw, tuple(rr_seconds(value) for value in raw)
    )


def parse_body_sensor_location(data: bytes) -> BodySensorLocation:
    reader = OctetReader(BODY_SENSOR_LOCATION, data)
    if not data:
        raise reader.error("empty value")
    if len(data) != 1:
        raise reader.error(f"value must be exactly 1 octet, have {len(data)}")
    raw = reader.u8("Body Sensor Location")
    return BodySensorLocation(raw, _LOCATIONS.get(raw))


def readings_from_heart_rate(measurement: HeartRateMeasurement, context: BleContext) -> list[Reading]:
    """One heart rate at reception time (the format carries no time stamp).

    When the sensor reports that it supports contact detection and is not touching the body, the
    value is not a measurement of anyone (a strap lying on a table may keep notifying):
    nothing is emitted rather than quarantining one implausible reading per second.

    Not emitted, though decoded: the RR intervals, because a notification carries several with no
    time of their own, so they cannot become keyed readings (they would all share the notification's
    time and collide; HRV belongs to a windowed computation over the stream, not to this converter);
    and Energy Expended, because it is a counter accumulated since an unknown reset (and saturating
    at 0xFFFF), not an amount over a known interval, so it is not an ``energy_expended`` reading.
    """
    if measurement.sensor_contact is SensorContact.NOT_DETECTED:
        return []
    time, device_time = context.time_of(None)
    return [
        Reading(
            context.device_id, "heart_rate", time, quantity=Quantity(Decimal(measurement.heart_rate), "/min"),
            device_time=device_time,
        )
    ]  # fmt: skip


CHARACTERISTICS = (
    Characteristic(0x2A37, HEART_RATE_MEASUREMENT, parse_heart_rate_measurement, readings_from_heart_rate),
    Characteristic(0x2A38, BODY_SENSOR_LOCATION, parse_body_sensor_location),  # device description, not a measurement
)
