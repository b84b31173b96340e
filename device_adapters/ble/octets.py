"""Reading characteristic values octet by octet, with errors that name the problem.

Every parser first works out from its flags how long the value must be
(:func:`require_length`), then reads fields with an :class:`OctetReader`, which never reads past
the buffer. Trailing octets after the last field a value's flags announce are rejected
(:meth:`OctetReader.finish`): the SIG formats define none (except the Heart Rate RR list and
concatenated CGM records, whose parsers consume the tail themselves), and a gateway that
silently ignores them would hide a misparse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import TypeVar

from device_adapters.ble.ieee11073 import MedicalNumber, float32, sfloat
from device_adapters.errors import DecodeError, ReasonCode


class GattParseError(DecodeError):
    """A characteristic value that does not follow its format; the message names both."""

    def __init__(self, characteristic: str, problem: str) -> None:
        super().__init__(ReasonCode.MALFORMED_FRAME, f"{characteristic}: {problem}")
        self.characteristic = characteristic
        self.problem = problem

    def __str__(self) -> str:
        return self.detail


def require_length(
    characteristic: str, data: bytes, flags: int, sizes: Iterable[tuple[bool, int]], *, flag_width: int = 2
) -> int:
    """The length the flags call for (``sizes`` are (present, octets) in order); raise when ``data`` is shorter.

    The message reads ``Blood Pressure Measurement: flags 0x03 need 14 octets, have 7``.
    """
    needed = sum(size for present, size in sizes if present)
    if len(data) < needed:
        raise GattParseError(characteristic, f"flags 0x{flags:0{flag_width}X} need {needed} octets, have {len(data)}")
    return needed


@dataclass(frozen=True, slots=True)
class BleDateTime:
    """Date Time (0x2A08): the device's local clock, no zone. Year, month or day 0 means "not known"."""

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int

    @property
    def date_known(self) -> bool:
        return self.year != 0 and self.month != 0 and self.day != 0

    def naive(self) -> datetime | None:
        """The local wall-clock time, or None when the device does not know the date."""
        if not self.date_known:
            return None
        return datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds)  # noqa: DTZ001 - BLE times carry no zone; anchored later

    def text(self) -> str:
        """As the device reported it (used in reading keys): ``YYYY-MM-DDThh:mm:ss`` without zone."""
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}T{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}"


class OctetReader:
    """A cursor over one characteristic value; every read checks the bounds first."""

    __slots__ = ("_characteristic", "_data", "_offset")

    def __init__(self, characteristic: str, data: bytes) -> None:
        self._characteristic = characteristic
        self._data = bytes(data)
        self._offset = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def error(self, problem: str) -> GattParseError:
        return GattParseError(self._characteristic, problem)

    def _take(self, size: int, what: str) -> bytes:
        if self.remaining < size:
            raise self.error(f"{what} needs {size} octets at offset {self._offset}, have {self.remaining}")
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def u8(self, what: str) -> int:
        return self._take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self._take(2, what), "little")

    def s16(self, what: str) -> int:
        return int.from_bytes(self._take(2, what), "little", signed=True)

    def u24(self, what: str) -> int:
        return int.from_bytes(self._take(3, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self._take(4, what), "little")

    def sfloat(self, what: str) -> MedicalNumber:
        return sfloat(self.u16(what))

    def float32(self, what: str) -> MedicalNumber:
        return float32(self.u32(what))

    def raw(self, size: int, what: str) -> bytes:
        return self._take(size, what)

    def date_time(self, what: str = "Time Stamp") -> BleDateTime:
        """A 7-octet Date Time; out-of-range fields are an error (never a guessed date)."""
        year, month, day = self.u16(what), self.u8(what), self.u8(what)
        hours, minutes, seconds = self.u8(what), self.u8(what), self.u8(what)
        problems = [
            name
            for name, value, low, high in (
                ("year", year, 1582, 9999),
                ("month", month, 1, 12),
                ("day", day, 1, 31),
                ("hours", hours, 0, 23),
                ("minutes", minutes, 0, 59),
                ("seconds", seconds, 0, 59),
            )
            if not (low <= value <= high or (value == 0 and name in {"year", "month", "day"}))
        ]
        if problems:
            shown = f"{year:04d}-{month:02d}-{day:02d} {hours:02d}:{minutes:02d}:{seconds:02d}"
            raise self.error(f"{what} has out-of-range {', '.join(problems)} ({shown})")
        stamp = BleDateTime(year, month, day, hours, minutes, seconds)
        if stamp.date_known:
            try:
                stamp.naive()
            except ValueError as exc:
                raise self.error(f"{what} is not a calendar date: {exc}") from exc
        return stamp

    def rest(self) -> bytes:
        chunk = self._data[self._offset :]
        self._offset = len(self._data)
        return chunk

    def finish(self) -> None:
        """Reject octets left after the last field (see the module's policy)."""
        if self.remaining:
            raise self.error(f"{self.remaining} trailing octet(s) after the last field the flags announce")


def bits_set(value: int, names: dict[int, str]) -> frozenset[str]:
    """Names of the set bits of a status field (unnamed/RFU bits are left out)."""
    return frozenset(name for bit, name in names.items() if value >> bit & 1)


_E = TypeVar("_E", bound=IntEnum)


def known(kind: type[_E], raw: int) -> _E | None:
    """The enum member for ``raw``, or None for unknown and reserved (RFU) values (kept raw beside it)."""
    try:
        return kind(raw)
    except ValueError:
        return None
