"""Device clock characteristics, and the Current Time value that sets a device clock.

Date Time (0x2A08), Day Date Time (0x2A0A), Exact Time 256 (0x2A0C), Current Time (0x2A2B) and
Local Time Information (0x2A0F). Layouts (spec digest 1.3), each a prefix of the next:

* Date Time: year u16 | month | day | hours | minutes | seconds (7 octets; year/month/day 0 = unknown).
* Day Date Time: Date Time | Day of Week u8 (0 unknown, 1 Monday ... 7 Sunday, 8-255 RFU kept raw).
* Exact Time 256: Day Date Time | Fractions256 u8 (1/256 s).
* Current Time: Exact Time 256 | Adjust Reason u8 (bit0 manual update, bit1 external reference,
  bit2 time-zone change, bit3 DST change; 4-7 RFU, ignored).
* Local Time Information: Time Zone sint8 (15-minute units, -48..+56, -128 unknown) | DST Offset u8
  (0 standard, 2 +0.5 h, 4 +1 h, 8 +2 h, 255 unknown). Any other value is rejected (as Nordic does).

These values are not measurements: they tell the session how to read the device's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import IntEnum

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.octets import BleDateTime, OctetReader, bits_set, known

DATE_TIME = "Date Time"
DAY_DATE_TIME = "Day Date Time"
EXACT_TIME_256 = "Exact Time 256"
CURRENT_TIME = "Current Time"
LOCAL_TIME_INFORMATION = "Local Time Information"

ADJUST_REASON_BITS = {
    0: "manual-time-update",
    1: "external-reference-time-update",
    2: "change-of-time-zone",
    3: "change-of-dst",
}
MANUAL_TIME_UPDATE = 0x01
TIME_ZONE_UNKNOWN = -128
TIME_ZONE_RANGE = range(-48, 57)
DST_UNKNOWN = 255
_FRACTIONS = 256
_MICROSECONDS = 1_000_000
_FIRST_YEAR, _LAST_YEAR = 1582, 9999
_OCTET = 0xFF


class DayOfWeek(IntEnum):
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


class DstOffset(IntEnum):
    """The DST offset; the value is the offset in 15-minute units."""

    STANDARD_TIME = 0
    HALF_AN_HOUR_DAYLIGHT_TIME = 2
    DAYLIGHT_TIME = 4
    DOUBLE_DAYLIGHT_TIME = 8


@dataclass(frozen=True, slots=True)
class DayDateTime:
    date_time: BleDateTime
    day_of_week_raw: int
    day_of_week: DayOfWeek | None
    """None when unknown (0) or RFU (8-255)."""


@dataclass(frozen=True, slots=True)
class ExactTime256:
    date_time: BleDateTime
    day_of_week_raw: int
    day_of_week: DayOfWeek | None
    fractions256: int
    """1/256 s."""

    def naive(self) -> datetime | None:
        """The device's local time with the fraction (to the nearest microsecond); None when the date is unknown."""
        return _with_fraction(self.date_time, self.fractions256)


@dataclass(frozen=True, slots=True)
class CurrentTime:
    date_time: BleDateTime
    day_of_week_raw: int
    day_of_week: DayOfWeek | None
    fractions256: int
    adjust_reason_raw: int
    adjust_reasons: frozenset[str]

    def naive(self) -> datetime | None:
        """The device's local time with the fraction (to the nearest microsecond); None when the date is unknown."""
        return _with_fraction(self.date_time, self.fractions256)


@dataclass(frozen=True, slots=True)
class LocalTimeInformation:
    time_zone: int | None
    """Offset of standard time from UTC in 15-minute units (-48..+56); None when unknown (-128)."""
    dst_offset: DstOffset | None
    """None when unknown (255)."""

    def utc_offset(self) -> timedelta | None:
        """Standard offset plus DST; None when either part is unknown."""
        if self.time_zone is None or self.dst_offset is None:
            return None
        return timedelta(minutes=15 * (self.time_zone + self.dst_offset.value))


def device_timezone(info: LocalTimeInformation) -> timezone | None:
    """The fixed-offset zone a device's clock runs in, or None when it does not know it."""
    offset = info.utc_offset()
    return None if offset is None else timezone(offset)


def _with_fraction(stamp: BleDateTime, fractions256: int) -> datetime | None:
    local = stamp.naive()
    if local is None:
        return None
    return local + timedelta(microseconds=round(fractions256 * _MICROSECONDS / _FRACTIONS))


def _reader(name: str, data: bytes, size: int) -> OctetReader:
    reader = OctetReader(name, data)
    if not data:
        raise reader.error("empty value")
    if len(data) < size:
        raise reader.error(f"value needs {size} octets, have {len(data)}")
    return reader


def parse_date_time(data: bytes) -> BleDateTime:
    reader = _reader(DATE_TIME, data, 7)
    stamp = reader.date_time(DATE_TIME)
    reader.finish()
    return stamp


def parse_day_date_time(data: bytes) -> DayDateTime:
    reader = _reader(DAY_DATE_TIME, data, 8)
    stamp, day = reader.date_time(DATE_TIME), reader.u8("Day of Week")
    reader.finish()
    return DayDateTime(stamp, day, known(DayOfWeek, day))


def parse_exact_time_256(data: bytes) -> ExactTime256:
    reader = _reader(EXACT_TIME_256, data, 9)
    stamp, day, fractions = reader.date_time(DATE_TIME), reader.u8("Day of Week"), reader.u8("Fractions256")
    reader.finish()
    return ExactTime256(stamp, day, known(DayOfWeek, day), fractions)


def parse_current_time(data: bytes) -> CurrentTime:
    reader = _reader(CURRENT_TIME, data, 10)
    stamp, day, fractions = reader.date_time(DATE_TIME), reader.u8("Day of Week"), reader.u8("Fractions256")
    reason = reader.u8("Adjust Reason")
    reader.finish()
    return CurrentTime(stamp, day, known(DayOfWeek, day), fractions, reason, bits_set(reason, ADJUST_REASON_BITS))


def parse_local_time_information(data: bytes) -> LocalTimeInformation:
    reader = _reader(LOCAL_TIME_INFORMATION, data, 2)
    zone = int.from_bytes(reader.raw(1, "Time Zone"), "little", signed=True)
    dst = reader.u8("DST Offset")
    reader.finish()
    if zone != TIME_ZONE_UNKNOWN and zone not in TIME_ZONE_RANGE:
        raise reader.error(f"Time Zone {zone} is outside -48..+56 (15-minute units) and is not -128 (unknown)")
    dst_offset = known(DstOffset, dst)
    if dst != DST_UNKNOWN and dst_offset is None:
        raise reader.error(f"DST Offset {dst} is not 0, 2, 4, 8 or 255 (unknown)")
    return LocalTimeInformation(None if zone == TIME_ZONE_UNKNOWN else zone, dst_offset)


def encode_current_time(when: datetime, *, adjust_reason: int = MANUAL_TIME_UPDATE) -> bytes:
    """The 10-octet Current Time value that sets a device clock to ``when``'s wall-clock time.

    The device clock has no zone: pass ``when`` already in the device's zone (an aware value is
    written as its own wall-clock time, its offset dropped). The fraction is truncated to 1/256 s;
    the day of week follows from the date. The Adjust Reason defaults to "manual time update":
    from the device's side, a client write is a manual setting.
    """
    if not _FIRST_YEAR <= when.year <= _LAST_YEAR:
        raise ValueError(f"Current Time can carry years {_FIRST_YEAR}-{_LAST_YEAR}, not {when.year}")
    if not 0 <= adjust_reason <= _OCTET:
        raise ValueError(f"Adjust Reason must fit one octet, got {adjust_reason}")
    fractions = when.microsecond * _FRACTIONS // _MICROSECONDS
    return when.year.to_bytes(2, "little") + bytes(
        [when.month, when.day, when.hour, when.minute, when.second, when.isoweekday(), fractions, adjust_reason]
    )


CHARACTERISTICS = (
    Characteristic(0x2A08, DATE_TIME, parse_date_time),
    Characteristic(0x2A0A, DAY_DATE_TIME, parse_day_date_time),
    Characteristic(0x2A0C, EXACT_TIME_256, parse_exact_time_256),
    Characteristic(0x2A0F, LOCAL_TIME_INFORMATION, parse_local_time_information),
    Characteristic(0x2A2B, CURRENT_TIME, parse_current_time),
)
