"""Date Time, Day Date Time, Exact Time 256, Current Time and Local Time Information; setting a clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from device_adapters.ble.clock import (
    CurrentTime,
    DayDateTime,
    DayOfWeek,
    DstOffset,
    ExactTime256,
    LocalTimeInformation,
    device_timezone,
    encode_current_time,
    parse_current_time,
    parse_date_time,
    parse_day_date_time,
    parse_exact_time_256,
    parse_local_time_information,
)
from device_adapters.ble.octets import BleDateTime, GattParseError
from tests.ble_support import fuzz, octets

STAMP = BleDateTime(2024, 3, 15, 8, 30, 0)
CT_D1 = "E8 07 03 0F 08 1E 00 05 80 01"


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("E8 07 03 0F 08 1E 00", STAMP),
        ("00 00 00 00 08 1E 00", BleDateTime(0, 0, 0, 8, 30, 0)),  # date not known: kept, never guessed
        ("0F 27 0C 1F 17 3B 3B", BleDateTime(9999, 12, 31, 23, 59, 59)),
        ("2E 06 0A 0F 00 00 00", BleDateTime(1582, 10, 15, 0, 0, 0)),
    ],
)
def test_date_time_vectors(vector: str, expected: BleDateTime) -> None:
    assert parse_date_time(octets(vector)) == expected


def test_day_date_time_and_exact_time() -> None:
    assert parse_day_date_time(octets("E8 07 03 0F 08 1E 00 05")) == DayDateTime(STAMP, 5, DayOfWeek.FRIDAY)
    assert parse_day_date_time(octets("E8 07 03 0F 08 1E 00 00")) == DayDateTime(STAMP, 0, None)  # unknown
    assert parse_day_date_time(octets("E8 07 03 0F 08 1E 00 09")) == DayDateTime(STAMP, 9, None)  # RFU kept raw
    exact = parse_exact_time_256(octets("E8 07 03 0F 08 1E 00 05 40"))
    assert exact == ExactTime256(STAMP, 5, DayOfWeek.FRIDAY, 64)
    assert exact.naive() == datetime(2024, 3, 15, 8, 30, 0, 250000)  # noqa: DTZ001 - device clocks are naive
    assert parse_exact_time_256(octets("00 00 00 00 08 1E 00 00 40")).naive() is None


def test_current_time_vector() -> None:  # V-CT-D1
    current = parse_current_time(octets(CT_D1))
    assert current == CurrentTime(STAMP, 5, DayOfWeek.FRIDAY, 128, 0x01, frozenset({"manual-time-update"}))
    assert current.naive() == datetime(2024, 3, 15, 8, 30, 0, 500000)  # noqa: DTZ001 - device clocks are naive


def test_current_time_adjust_reasons_ignore_rfu_bits() -> None:
    current = parse_current_time(octets("E8 07 03 0F 08 1E 00 05 00 FF"))
    assert current.adjust_reason_raw == 0xFF
    assert current.adjust_reasons == frozenset(
        {"manual-time-update", "external-reference-time-update", "change-of-time-zone", "change-of-dst"}
    )


@pytest.mark.parametrize(
    ("vector", "expected", "zone"),
    [
        ("00 00", LocalTimeInformation(0, DstOffset.STANDARD_TIME), timezone(timedelta(0))),
        ("01 00", LocalTimeInformation(1, DstOffset.STANDARD_TIME), timezone(timedelta(minutes=15))),  # Nordic: 01 -> +15 min
        ("04 04", LocalTimeInformation(4, DstOffset.DAYLIGHT_TIME), timezone(timedelta(hours=2))),
        ("D0 08", LocalTimeInformation(-48, DstOffset.DOUBLE_DAYLIGHT_TIME), timezone(timedelta(hours=-10))),
        ("38 02", LocalTimeInformation(56, DstOffset.HALF_AN_HOUR_DAYLIGHT_TIME), timezone(timedelta(hours=14, minutes=30))),
        ("80 00", LocalTimeInformation(None, DstOffset.STANDARD_TIME), None),  # zone unknown
        ("04 FF", LocalTimeInformation(4, None), None),  # DST unknown: the offset is unknown
    ],
)
def test_local_time_information(vector: str, expected: LocalTimeInformation, zone: timezone | None) -> None:
    info = parse_local_time_information(octets(vector))
    assert info == expected
    assert device_timezone(info) == zone


@pytest.mark.parametrize(
    ("parse", "vector", "message"),
    [
        (parse_date_time, "E8 07 0D 01 00 00 00", "Date Time: Date Time has out-of-range month"),  # V-DT-D1
        (parse_date_time, "", "Date Time: empty value"),
        (parse_date_time, "E8 07 03 0F 08 1E", "Date Time: value needs 7 octets, have 6"),
        (parse_date_time, "E8 07 03 0F 08 1E 00 00", "Date Time: 1 trailing octet(s)"),
        (parse_date_time, "E8 07 03 0F 18 00 00", "Date Time: Date Time has out-of-range hours"),
        (parse_date_time, "E8 07 03 0F 08 3C 3C", "Date Time: Date Time has out-of-range minutes, seconds"),
        (parse_date_time, "E8 07 02 1E 00 00 00", "Date Time: Date Time is not a calendar date"),
        (parse_date_time, "2D 06 01 01 00 00 00", "Date Time: Date Time has out-of-range year"),
        (parse_day_date_time, "E8 07 03 0F 08 1E 00", "Day Date Time: value needs 8 octets, have 7"),
        (parse_exact_time_256, "E8 07 03 0F 08 1E 00 05", "Exact Time 256: value needs 9 octets, have 8"),
        (parse_current_time, "", "Current Time: empty value"),
        (parse_current_time, "E8 07 03 0F 08 1E 00 05 80", "Current Time: value needs 10 octets, have 9"),
        (parse_current_time, CT_D1 + " 00", "Current Time: 1 trailing octet(s)"),
        (parse_current_time, "E8 07 03 20 08 1E 00 05 80 01", "Current Time: Date Time has out-of-range day"),
        (parse_local_time_information, "", "Local Time Information: empty value"),
        (parse_local_time_information, "00", "Local Time Information: value needs 2 octets, have 1"),
        (parse_local_time_information, "3C 00", "Local Time Information: Time Zone 60 is outside -48..+56"),  # Nordic: invalid
        (parse_local_time_information, "CF 00", "Local Time Information: Time Zone -49 is outside -48..+56"),
        (
            parse_local_time_information,
            "00 11",
            "Local Time Information: DST Offset 17 is not 0, 2, 4, 8 or 255",
        ),  # Nordic: invalid
        (parse_local_time_information, "00 01", "Local Time Information: DST Offset 1 is not"),
        (parse_local_time_information, "00 00 00", "Local Time Information: 1 trailing octet(s)"),
    ],
)
def test_rejections_name_the_problem(parse: Callable[[bytes], object], vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse(octets(vector))
    assert str(caught.value).startswith(message)


def test_month_zero_is_unknown_not_an_error() -> None:
    assert parse_date_time(octets("E8 07 00 0F 08 1E 00")) == BleDateTime(2024, 0, 15, 8, 30, 0)


def test_encode_current_time_round_trips_the_spec_vector() -> None:
    when = datetime(2024, 3, 15, 8, 30, 0, 500000)  # noqa: DTZ001 - the device's wall clock
    assert encode_current_time(when) == octets(CT_D1)
    assert parse_current_time(encode_current_time(when)).naive() == when


def test_encode_current_time_uses_the_wall_clock_and_truncates_fractions() -> None:
    aware = datetime(2024, 12, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5)))  # a Sunday
    value = encode_current_time(aware, adjust_reason=0x02)
    assert value == octets("E8 07 0C 1D 17 3B 3B 07 FF 02")
    assert parse_current_time(value) == CurrentTime(
        BleDateTime(2024, 12, 29, 23, 59, 59), 7, DayOfWeek.SUNDAY, 255, 0x02, frozenset({"external-reference-time-update"})
    )
    assert encode_current_time(datetime(2024, 1, 1, tzinfo=UTC))[7:] == octets("01 00 01")  # Monday, no fraction, manual


@pytest.mark.parametrize(
    ("when", "adjust_reason", "message"),
    [
        (datetime(1581, 12, 31, tzinfo=UTC), 1, "Current Time can carry years 1582-9999, not 1581"),
        (datetime(2024, 1, 1, tzinfo=UTC), 0x100, "Adjust Reason must fit one octet, got 256"),
        (datetime(2024, 1, 1, tzinfo=UTC), -1, "Adjust Reason must fit one octet, got -1"),
    ],
)
def test_encode_current_time_refuses_what_it_cannot_carry(when: datetime, adjust_reason: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_current_time(when, adjust_reason=adjust_reason)


test_date_time_fuzz = fuzz(parse_date_time)
test_day_date_time_fuzz = fuzz(parse_day_date_time)
test_exact_time_256_fuzz = fuzz(parse_exact_time_256)
test_current_time_fuzz = fuzz(parse_current_time)
test_local_time_information_fuzz = fuzz(parse_local_time_information)
