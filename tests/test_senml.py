"""Golden tests for SenML packs (RFC 8428): whole FrameDecode objects, every rejection reason.

Exceptions compare by identity, so a FrameDecode is compared through :func:`_plain`: its readings
as they are, and each rejection as (position, exception class, reason, detail).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.errors import DecodeError, IdentityError, InputRejectedError, NormalizeError, ReasonCode
from device_adapters.mqtt.senml import NAME_ALIASES, UNITS, decode_senml
from device_adapters.readings import FrameDecode, Quantity, Reading

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
"""The gateway's reception time: "now" for relative SenML times."""
OW = "10e2073a01080063"
"""The 1-wire device of RFC 8428's examples (``urn:dev:ow:10e2073a01080063``)."""
OW_URN = f"urn:dev:ow:{OW}"

Plain = tuple[tuple[Reading, ...], tuple[tuple[int, type, ReasonCode, str], ...]]


def _plain(decoded: FrameDecode) -> Plain:
    return decoded.readings, tuple((index, type(error), error.reason, error.detail) for index, error in decoded.rejections)


def _decode(payload: str | bytes, device_id: str = OW, received_at: datetime = NOW) -> Plain:
    raw = payload.encode() if isinstance(payload, str) else payload
    return _plain(decode_senml(raw, device_id, received_at=received_at))


def _q(value: str, unit: str) -> Quantity:
    return Quantity(Decimal(value), unit)


def _at(seconds: str) -> datetime:
    """Unix seconds as a UTC datetime (what an absolute SenML time is)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(Decimal(seconds) * 1_000_000))


def _not_body(index: int, name: str, symbol: str, description: str) -> tuple[int, NormalizeError]:
    detail = f"record {index} ({name}): unit {symbol!r} ({description}) is not a unit of any body reading"
    return index, NormalizeError(ReasonCode.UNSUPPORTED_TYPE, detail)


# -- RFC 8428's examples ------------------------------------------------------------------------


def test_rfc_5_1_1_single_data_point() -> None:
    # The name is only the sensor's URN: its last segment (the 1-wire id) is no known measurement
    # and Cel alone names none, so the kind is that segment; the mapper quarantines it as
    # unsupported_type. No time: measured "now".
    payload = '[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]'
    assert _decode(payload) == _plain(FrameDecode((Reading(OW, OW, NOW, _q("23.1", "Cel")),)))


def test_rfc_section_2_base_name_form_resolves_like_the_long_form() -> None:
    long_form = (
        '[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","t":1.276020076e+09,"v":23.5},'
        ' {"n":"urn:dev:ow:10e2073a01080063","u":"Cel","t":1.276020091e+09,"v":23.6}]'
    )
    compact = (
        '[{"bn":"urn:dev:ow:10e2073a01080063","u":"Cel","t":1.276020076e+09,"v":23.5},{"u":"Cel","t":1.276020091e+09,"v":23.6}]'
    )
    expected = FrameDecode(
        (
            Reading(OW, OW, _at("1276020076"), _q("23.5", "Cel")),
            Reading(OW, OW, _at("1276020091"), _q("23.6", "Cel"), index=1),
        )
    )
    assert _decode(long_form) == _decode(compact) == _plain(expected)


def test_rfc_5_1_2_voltage_and_current_are_not_body_readings() -> None:
    payload = '[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},{"n":"current","u":"A","v":1.2}]'
    expected = FrameDecode(
        (),
        (_not_body(0, f"{OW_URN}:voltage", "V", "volt"), _not_body(1, f"{OW_URN}:current", "A", "ampere")),
    )
    assert _decode(payload) == _plain(expected)


def test_rfc_5_1_2_relative_times_as_published() -> None:
    # bver 5 is older than 10 and accepted. Every record is volts or amperes: all are rejected.
    # (The RFC's URN has 15 hex digits: the device is published under that id.)
    device = "10e2073a0108006"
    payload = """[
      {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,"n":"voltage","u":"V","v":120.1},
      {"n":"current","t":-5,"v":1.2}, {"n":"current","t":-4,"v":1.3}, {"n":"current","t":-3,"v":1.4},
      {"n":"current","t":-2,"v":1.5}, {"n":"current","t":-1,"v":1.6}, {"n":"current","v":1.7}]"""
    name = f"urn:dev:ow:{device}:"
    rejections = (
        _not_body(0, name + "voltage", "V", "volt"),
        *(_not_body(i, name + "current", "A", "ampere") for i in range(1, 7)),
    )
    assert _decode(payload, device) == _plain(FrameDecode((), rejections))


def test_rfc_5_1_2_relative_times_adapted_to_a_heart_rate() -> None:
    # The same pack with a body temperature and heart rates instead of volts and amperes:
    # t is relative to bt (which is absolute), so the readings are 5..0 s before 18:01:16.001 UTC.
    device = "10e2073a0108006"
    payload = """[
      {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"beat/min","bver":5,"n":"temperature","u":"Cel","v":36.6},
      {"n":"heart_rate","t":-5,"v":72}, {"n":"heart_rate","t":-4,"v":73}, {"n":"heart_rate","t":-3,"v":74},
      {"n":"heart_rate","t":-2,"v":75}, {"n":"heart_rate","t":-1,"v":76}, {"n":"heart_rate","v":77}]"""
    at = datetime(2010, 6, 8, 18, 1, 16, 1000, tzinfo=UTC)
    expected = FrameDecode(
        (
            Reading(device, "body_temperature", at, _q("36.6", "Cel")),
            *(
                Reading(device, "heart_rate", at - timedelta(seconds=5 - i), _q(str(72 + i), "/min"), index=i + 1)
                for i in range(6)
            ),
        )
    )
    assert _decode(payload, device) == _plain(expected)


def test_rfc_5_1_2_sensml_stream() -> None:
    # Relative humidity is not a body value: each record is rejected.
    payload = (
        '[{"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,"bu":"%RH","v":21.2},{"t":10,"v":21.3},{"t":20,"v":21.4}]'
    )
    expected = FrameDecode((), tuple(_not_body(i, OW_URN, "%RH", "relative humidity") for i in range(3)))
    assert _decode(payload) == _plain(expected)


def test_rfc_5_1_2_sensml_stream_adapted_to_oxygen_saturation() -> None:
    # The stream's shape with an SpO2 ratio: SenML "/" is a ratio, 0.97 is 97 %.
    payload = (
        '[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.320067464e+09,"bu":"/","n":"spo2","v":0.97},{"n":"spo2","t":10,"v":0.96}]'
    )
    expected = FrameDecode(
        (
            Reading(OW, "spo2", _at("1320067464"), _q("97", "%")),
            Reading(OW, "spo2", _at("1320067474"), _q("96", "%"), index=1),
        )
    )
    assert _decode(payload) == _plain(expected)


RFC_5_1_3 = """[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,"bu":"%RH","v":20},
  {"u":"lon","v":24.30621}, {"u":"lat","v":60.07965},
  {"t":60,"v":20.3}, {"u":"lon","t":60,"v":24.30622}, {"u":"lat","t":60,"v":60.07965},
  {"t":120,"v":20.7}, {"u":"lon","t":120,"v":24.30623}, {"u":"lat","t":120,"v":60.07966},
  {"u":"%EL","t":150,"v":98},
  {"t":180,"v":21.2}, {"u":"lon","t":180,"v":24.30628}, {"u":"lat","t":180,"v":60.07967}
]"""

RFC_5_1_4 = """[
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,"v":20},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,"v":24.30621},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,"v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,"v":20.3},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,"v":24.30622},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,"v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,"v":20.7},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,"v":24.30623},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,"v":60.07966},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,"v":98},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,"v":21.2},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,"v":24.30628},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,"v":60.07967}
]"""


def test_rfc_5_1_3_multiple_measurements_keep_only_the_battery() -> None:
    # Humidity, longitude and latitude are not body values (rejected, one by one); the %EL record
    # is the battery level (the unit names it), 150 s after 2011-10-31 13:24:24 UTC.
    described = {"%RH": "relative humidity", "lon": "degrees longitude", "lat": "degrees latitude"}
    units = ["%RH", "lon", "lat"] * 3 + ["%EL"] + ["%RH", "lon", "lat"]
    expected = FrameDecode(
        (Reading(OW, "battery_level", datetime(2011, 10, 31, 13, 26, 54, tzinfo=UTC), _q("98", "%"), index=9),),
        tuple(_not_body(i, OW_URN, unit, described[unit]) for i, unit in enumerate(units) if unit != "%EL"),
    )
    assert _decode(RFC_5_1_3) == _plain(expected)


def test_rfc_5_1_4_resolved_form_decodes_exactly_like_5_1_3() -> None:
    assert _decode(RFC_5_1_4) == _decode(RFC_5_1_3)


def test_rfc_5_1_5_multiple_data_types() -> None:
    # "temp" in Cel is a body temperature (the mapper's plausibility check will quarantine
    # 23.1 Cel); string, boolean and data values are not physiological readings.
    payload = """[
      {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
      {"n":"label","vs":"Machine Room"}, {"n":"open","vb":false}, {"n":"nfv-reader","vd":"aGkgCg"}]"""

    def not_physiological(index: int, name: str, what: str, label: str) -> tuple[int, DecodeError]:
        detail = f"record {index} ({OW_URN}:{name}): a {what} value ({label!r}) is not a physiological reading"
        return index, DecodeError(ReasonCode.UNSUPPORTED_TYPE, detail)

    expected = FrameDecode(
        (Reading(OW, "body_temperature", NOW, _q("23.1", "Cel")),),
        (
            not_physiological(1, "label", "string", "vs"),
            not_physiological(2, "open", "boolean", "vb"),
            not_physiological(3, "nfv-reader", "data", "vd"),
        ),
    )
    assert _decode(payload) == _plain(expected)


def test_rfc_5_1_6_collection_of_resources() -> None:
    # The 4th record keeps the 1st record's base time and takes the 3rd record's base name.
    # Names that are IP addresses name no device URN, so they are not checked against the topic.
    payload = """[
      {"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":25.2},
      {"n":"humidity","u":"%RH","v":30},
      {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
      {"n":"humidity","u":"%RH","v":67}]"""
    at = datetime(2011, 10, 31, 16, 27, 9, tzinfo=UTC)
    expected = FrameDecode(
        (
            Reading(OW, "body_temperature", at, _q("25.2", "Cel")),
            Reading(OW, "body_temperature", at, _q("12.3", "Cel"), index=2),
        ),
        (
            _not_body(1, "2001:db8::2/humidity", "%RH", "relative humidity"),
            _not_body(3, "2001:db8::1/humidity", "%RH", "relative humidity"),
        ),
    )
    assert _decode(payload) == _plain(expected)


def test_rfc_5_1_7_setting_an_actuator() -> None:
    # The first record carries only a base name: a header, it yields nothing itself. "heat" and
    # "fan" in "/" (a ratio: 1 is 100 %) are no catalogue kinds: the mapper quarantines them.
    payload = """[
      {"bn":"urn:dev:ow:10e2073a01080063:"},
      {"n":"temp","u":"Cel","v":23.1}, {"n":"heat","u":"/","v":1}, {"n":"fan","u":"/","v":0}]"""
    expected = FrameDecode(
        (
            Reading(OW, "body_temperature", NOW, _q("23.1", "Cel"), index=1),
            Reading(OW, "heat", NOW, _q("100", "%"), index=2),
            Reading(OW, "fan", NOW, _q("0", "%"), index=3),
        )
    )
    assert _decode(payload) == _plain(expected)


def test_rfc_5_1_7_lights_with_a_relative_future_time() -> None:
    # The names are IPv6 addresses: their last segment ("3", "4") is the kind. t 0.1 is 100 ms
    # after the absolute base time.
    payload = """[
      {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5}, {"n":"2001:db8::4","v":0.5},
      {"n":"2001:db8::3","t":0.1,"v":0}, {"n":"2001:db8::4","t":0.1,"v":0}]"""
    at = datetime(2011, 10, 31, 16, 27, 9, tzinfo=UTC)
    later = at + timedelta(milliseconds=100)
    expected = FrameDecode(
        (
            Reading(OW, "3", at, _q("50", "%")),
            Reading(OW, "4", at, _q("50", "%"), index=1),
            Reading(OW, "3", later, _q("0", "%"), index=2),
            Reading(OW, "4", later, _q("0", "%"), index=3),
        )
    )
    assert _decode(payload) == _plain(expected)


# -- time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("", NOW),  # no bt, no t: "now"
        ('"t":0,', NOW),
        ('"t":-5,', NOW - timedelta(seconds=5)),
        ('"t":-0.25,', NOW - timedelta(milliseconds=250)),
        ('"t":1.5,', NOW + timedelta(seconds=1.5)),  # positive relative: the future
        ('"bt":-10,"t":-5,', NOW - timedelta(seconds=15)),  # relative base + relative time
        ('"bt":-10,', NOW - timedelta(seconds=10)),  # no t: the base time
        ('"bt":1795338000,', datetime(2026, 11, 22, 9, tzinfo=UTC)),
        ('"bt":1795338000,"t":-60,', datetime(2026, 11, 22, 8, 59, tzinfo=UTC)),
        ('"t":1795338000.25,', datetime(2026, 11, 22, 9, 0, 0, 250000, tzinfo=UTC)),
        ('"t":268435456,', datetime(1978, 7, 4, 21, 24, 16, tzinfo=UTC)),  # 2**28: the first absolute time
        ('"t":268435455,', NOW + timedelta(seconds=268435455)),  # 2**28 - 1: still relative
        ('"bt":268435446,"t":20,', _at("268435466")),  # the sum decides: bt + t >= 2**28
        ('"bt":268435466,"t":-20,', NOW + timedelta(seconds=268435446)),  # and here it is below
    ],
)
def test_time_resolution(fields: str, expected: datetime) -> None:
    decoded = decode_senml(f'[{{"n":"hr",{fields}"u":"beat/min","v":60}}]'.encode(), "dev-1", received_at=NOW)
    assert decoded == FrameDecode((Reading("dev-1", "heart_rate", expected, _q("60", "/min")),))


def test_relative_times_keep_the_reception_offset_and_absolute_times_are_utc() -> None:
    plus_one = timezone(timedelta(hours=1))
    received = datetime(2026, 11, 22, 11, 0, tzinfo=plus_one)
    payload = b'[{"n":"hr","u":"beat/min","t":-30,"v":60},{"n":"hr","u":"beat/min","t":1795338000,"v":61}]'
    first, second = decode_senml(payload, "dev-1", received_at=received).readings
    assert first.time == datetime(2026, 11, 22, 10, 59, 30, tzinfo=plus_one)
    assert first.time.utcoffset() == timedelta(hours=1)
    assert second.time.tzinfo is UTC


def test_naive_reception_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decode_senml(b'[{"n":"hr","u":"beat/min","v":60}]', "dev-1", received_at=datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time under test


# -- base fields --------------------------------------------------------------------------------


def test_base_fields_apply_until_changed() -> None:
    # bu applies to every record that has no u; bv is added to each v; bn changes at record 3;
    # bt stays in force to the end.
    payload = """[
      {"bn":"watch:","bt":1795338000,"bu":"beat/min","bv":60,"n":"heart_rate","v":12},
      {"n":"heart_rate","t":60,"v":-0.5},
      {"n":"temperature","u":"Cel","bv":0,"v":36.6},
      {"bn":"scale:","bu":"kg","n":"weight","v":70.25}]"""
    at = datetime(2026, 11, 22, 9, tzinfo=UTC)
    expected = FrameDecode(
        (
            Reading("dev-1", "heart_rate", at, _q("72", "/min")),
            Reading("dev-1", "heart_rate", at + timedelta(minutes=1), _q("59.5", "/min"), index=1),
            Reading("dev-1", "body_temperature", at, _q("36.6", "Cel"), index=2),
            Reading("dev-1", "body_weight", at, _q("70.25", "kg"), index=3),
        )
    )
    assert _decode(payload, "dev-1") == _plain(expected)


def test_base_value_alone_is_not_a_value() -> None:
    # RFC 8428 section 4.2: a record needs a value field (or a sum); bv only adds to one.
    decoded = decode_senml(b'[{"n":"hr","u":"beat/min","bv":60}]', "dev-1", received_at=NOW)
    assert _plain(decoded) == (
        (),
        (
            (
                0,
                DecodeError,
                ReasonCode.MALFORMED_FRAME,
                "record 0 (hr) has no value: one of 'v', 'vs', 'vb', 'vd' or 's' is required",
            ),
        ),
    )


def test_a_base_value_stays_in_force_after_a_rejected_record() -> None:
    # bv is a base field: it applies to the later records even though its own record is rejected.
    payload = b'[{"n":"hr","u":"beat/min","bv":1e11,"v":9e11},{"n":"hr","u":"beat/min","v":60}]'
    expected = FrameDecode(
        (Reading("dev-1", "heart_rate", NOW, _q("100000000060", "/min"), index=1),),
        (
            (
                0,
                DecodeError(
                    ReasonCode.MALFORMED_FRAME,
                    "record 0 (hr): 'bv' + 'v' 1.0E+12 is out of range (|value| < 1e12, at most 18 significant digits)",
                ),
            ),
        ),
    )
    assert _decode(payload, "dev-1") == _plain(expected)


def test_sum_beside_a_value_is_ignored_and_a_sum_alone_is_rejected() -> None:
    payload = b'[{"bn":"meter:","bs":100,"n":"steps","u":"count","v":1200,"s":5},{"n":"steps","u":"count","s":5}]'
    decoded = decode_senml(payload, "dev-1", received_at=NOW)
    assert _plain(decoded) == (
        (Reading("dev-1", "steps", NOW, _q("1200", "{steps}")),),
        (
            (
                1,
                DecodeError,
                ReasonCode.UNSUPPORTED_TYPE,
                "record 1 (meter:steps): a sum ('s') without a value is not a physiological reading",
            ),
        ),
    )


@pytest.mark.parametrize("bver", ["10", "5", "1"])
def test_versions_up_to_10_are_read(bver: str) -> None:
    payload = f'[{{"bver":{bver},"n":"hr","u":"beat/min","v":60}},{{"n":"hr","u":"beat/min","t":-1,"v":61}}]'
    assert len(decode_senml(payload.encode(), "dev-1", received_at=NOW).readings) == 2


@pytest.mark.parametrize(
    ("payload", "message_part"),
    [
        ('[{"bver":11,"n":"hr","u":"beat/min","v":60}]', "SenML version 11 is newer than version 10"),
        ('[{"n":"hr","u":"beat/min","v":60},{"bver":11,"n":"hr","u":"beat/min","v":60}]', "newer than version 10"),
        ('[{"n":"hr","u":"beat/min","v":60},{"bver":5,"n":"hr","u":"beat/min","v":60}]', "differs from the pack's earlier"),
        ('[{"bver":5,"n":"hr","u":"beat/min","v":60},{"bver":10,"n":"hr","u":"beat/min","v":60}]', "differs"),
        ('[{"bver":10.5,"n":"hr","u":"beat/min","v":60}]', "'bver' must be a positive integer, got 10.5"),
        ('[{"bver":0,"n":"hr","u":"beat/min","v":60}]', "positive integer"),
        ('[{"bver":-1,"n":"hr","u":"beat/min","v":60}]', "positive integer"),
        ('[{"bver":"10","n":"hr","u":"beat/min","v":60}]', "got string"),
        ('[{"bver":1e999999999,"n":"hr","u":"beat/min","v":60}]', "positive integer"),
    ],
)
def test_unsupported_or_inconsistent_versions_reject_the_pack(payload: str, message_part: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_senml(payload.encode(), "dev-1", received_at=NOW)
    assert caught.value.reason is ReasonCode.MALFORMED_FRAME
    assert message_part in caught.value.detail


# -- units --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unit", "value", "kind", "expected"),
    [
        ("temperature", "Cel", "36.6", "body_temperature", _q("36.6", "Cel")),
        ("body_temp", "K", "310.15", "body_temperature", _q("37.00", "Cel")),
        ("temp", "degF", "98.6", "body_temperature", _q("98.6", "[degF]")),
        ("weight", "kg", "70.5", "body_weight", _q("70.5", "kg")),
        ("weight", "g", "70500", "body_weight", _q("70500", "g")),
        ("body_weight", "lb", "155.4", "body_weight", _q("155.4", "[lb_av]")),
        ("height", "m", "1.75", "body_height", _q("1.75", "m")),
        ("height", "cm", "175", "body_height", _q("175", "cm")),
        ("height", "mm", "1750", "body_height", _q("1750", "mm")),
        ("spo2", "/", "0.97", "spo2", _q("97", "%")),
        ("oxygen_saturation", "%", "0.97", "spo2", _q("97", "%")),  # SenML % is a ratio (RFC 8428 Note 2)
        ("SpO2", "/100", "97", "spo2", _q("97", "%")),  # RFC 8798's percent; segment matched case-insensitively
        ("battery", "%EL", "98", "battery_level", _q("98", "%")),
        ("heart_rate", "beat/min", "72", "heart_rate", _q("72", "/min")),
        ("Heart-Rate", "1/min", "72", "heart_rate", _q("72", "/min")),
        ("pulse", "1/s", "1.2", "pulse_rate", _q("72.0", "/min")),
        ("heartrate", "Hz", "1.25", "heart_rate", _q("75.00", "/min")),
        ("respiration", "rpm", "16", "respiratory_rate", _q("16", "/min")),
        ("glucose", "kg/m3", "0.95", "blood_glucose", _q("95", "mg/dL")),
        ("glucose", "mg/dL", "95", "blood_glucose", _q("95", "mg/dL")),
        ("blood_glucose", "mmol/L", "5.3", "blood_glucose", _q("5.3", "mmol/L")),
        ("bmi", "kg/m2", "22.9", "bmi", _q("22.9", "kg/m2")),
        ("energy", "J", "418400", "energy_expended", _q("418.400", "kJ")),
        ("calories", "kcal", "100", "energy_expended", _q("100", "kcal")),
        ("rr_interval", "ms", "812", "rr_interval", _q("812", "ms")),
        ("hrv", "s", "0.042", "heart_rate_variability", _q("0.042", "s")),
        ("sleep", "h", "7.5", "sleep", _q("27000.0", "s")),  # no alias: the segment is the kind
        ("nap", "min", "20", "nap", _q("1200", "s")),
        ("body_impedance", "Ohm", "500", "body_impedance", _q("500", "Ohm")),
        ("steps", "count", "1200", "steps", _q("1200", "{steps}")),
        ("temperature", "m", "2", "temperature", _q("2", "m")),  # an alias needs its kind's unit
        ("hr", "Cel", "36.6", "hr", _q("36.6", "Cel")),
        ("counter", "count", "3", "counter", _q("3", "{count}")),
        ("anything", "beat/min", "60", "heart_rate", _q("60", "/min")),  # beat/min names the kind
        ("level", "%EL", "40", "battery_level", _q("40", "%")),  # and so does %EL
        ("weight", "%EL", "40", "battery_level", _q("40", "%")),  # body weight is not in %: the unit decides
    ],
)
def test_units_and_kinds(name: str, unit: str, value: str, kind: str, expected: Quantity) -> None:
    payload = f'[{{"bn":"urn:dev:mac:0024befffe804ff1:","n":{json.dumps(name)},"u":{json.dumps(unit)},"v":{value}}}]'
    decoded = decode_senml(payload.encode(), "0024befffe804ff1", received_at=NOW)
    assert decoded == FrameDecode((Reading("0024befffe804ff1", kind, NOW, expected),))


def test_steps_without_a_unit_are_counted() -> None:
    decoded = decode_senml(b'[{"n":"step_count","v":1200}]', "dev-1", received_at=NOW)
    assert decoded == FrameDecode((Reading("dev-1", "steps", NOW, _q("1200", "{steps}")),))


@pytest.mark.parametrize(
    ("unit", "reason", "message_part"),
    [
        ("bpm", ReasonCode.UNIT_UNKNOWN, "unit 'bpm' is not a SenML unit"),
        ("cel", ReasonCode.UNIT_UNKNOWN, "unit 'cel' is not a SenML unit"),  # SenML units are case-sensitive
        ("%RH", ReasonCode.UNSUPPORTED_TYPE, "'%RH' (relative humidity) is not a unit of any body reading"),
        ("beats", ReasonCode.UNSUPPORTED_TYPE, "cumulative number of heart beats"),
        ("ppm", ReasonCode.UNSUPPORTED_TYPE, "parts per million"),
        (None, ReasonCode.UNIT_UNKNOWN, "has no unit: neither 'u' nor 'bu' is given"),
    ],
)
def test_unit_rejections(unit: str | None, reason: ReasonCode, message_part: str) -> None:
    record: dict[str, object] = {"n": "heart_rate", "v": 60} | ({} if unit is None else {"u": unit})
    decoded = decode_senml(json.dumps([record]).encode(), "dev-1", received_at=NOW)
    ((index, error),) = decoded.rejections
    assert (decoded.readings, index, type(error), error.reason) == ((), 0, NormalizeError, reason)
    assert message_part in error.detail


def test_unit_table_is_consistent() -> None:
    assert all(unit.ucum is not None or unit.implies is None for unit in UNITS.values())
    assert {unit.source for unit in UNITS.values()} == {"RFC 8428", "RFC 8798", "PulseBridge extension"}
    for segment, alias in NAME_ALIASES.items():
        assert segment == segment.lower()
        assert "-" not in segment
        assert alias.units


# -- blood pressure -----------------------------------------------------------------------------


def test_blood_pressure_parts_merge_into_one_reading() -> None:
    # Same name prefix and time: one reading, at the first part's position, components in the
    # catalogue's order whatever the record order. The pulse in between is its own reading.
    payload = """[
      {"bn":"urn:dev:ow:10e2073a01080063:bp:","bt":1795338000,"bu":"mmHg","n":"diastolic","v":80},
      {"n":"pulse","u":"beat/min","v":64},
      {"n":"mean","v":93},
      {"n":"systolic","v":120}]"""
    at = datetime(2026, 11, 22, 9, tzinfo=UTC)
    components = (("systolic", _q("120", "mm[Hg]")), ("diastolic", _q("80", "mm[Hg]")), ("mean", _q("93", "mm[Hg]")))
    expected = FrameDecode(
        (
            Reading(OW, "blood_pressure", at, components=components),
            Reading(OW, "pulse_rate", at, _q("64", "/min"), index=1),
        )
    )
    assert _decode(payload) == _plain(expected)


def test_blood_pressure_in_pascal_units() -> None:
    payload = (
        '[{"bn":"cuff/","n":"systolic","u":"Pa","v":16000},{"n":"diastolic","u":"hPa","v":107},{"n":"mean","u":"kPa","v":12.4}]'
    )
    components = (("systolic", _q("16.000", "kPa")), ("diastolic", _q("10.7", "kPa")), ("mean", _q("12.4", "kPa")))
    assert _decode(payload, "dev-1") == _plain(FrameDecode((Reading("dev-1", "blood_pressure", NOW, components=components),)))


def test_blood_pressure_parts_at_other_times_or_names_stay_apart() -> None:
    # Different times, and different name prefixes (two cuffs' channels), are different readings;
    # a lone part is still a blood pressure: the mapper quarantines it for its missing component.
    payload = """[
      {"bn":"arm/left/","bu":"mmHg","n":"systolic","v":120}, {"n":"diastolic","v":80},
      {"n":"systolic","t":-60,"v":118},
      {"bn":"arm/right/","n":"sys","v":124}, {"n":"dia","v":82}]"""
    earlier = NOW - timedelta(minutes=1)
    expected = FrameDecode(
        (
            Reading(
                "dev-1", "blood_pressure", NOW, components=(("systolic", _q("120", "mm[Hg]")), ("diastolic", _q("80", "mm[Hg]")))
            ),
            Reading("dev-1", "blood_pressure", earlier, components=(("systolic", _q("118", "mm[Hg]")),), index=2),
            Reading(
                "dev-1",
                "blood_pressure",
                NOW,
                components=(("systolic", _q("124", "mm[Hg]")), ("diastolic", _q("82", "mm[Hg]"))),
                index=3,
            ),
        )
    )
    assert _decode(payload, "dev-1") == _plain(expected)


def test_a_repeated_blood_pressure_part_is_rejected() -> None:
    payload = '[{"bn":"bp:","bu":"mmHg","n":"systolic","v":120},{"n":"diastolic","v":80},{"n":"systolic","v":121}]'
    expected = FrameDecode(
        (
            Reading(
                "dev-1", "blood_pressure", NOW, components=(("systolic", _q("120", "mm[Hg]")), ("diastolic", _q("80", "mm[Hg]")))
            ),
        ),
        ((2, DecodeError(ReasonCode.MALFORMED_FRAME, "record 2: a second systolic for the blood pressure of record 0")),),
    )
    assert _decode(payload, "dev-1") == _plain(expected)


def test_a_part_name_in_another_unit_is_not_a_blood_pressure() -> None:
    decoded = decode_senml(b'[{"n":"systolic","u":"Cel","v":37}]', "dev-1", received_at=NOW)
    assert decoded == FrameDecode((Reading("dev-1", "systolic", NOW, _q("37", "Cel")),))


# -- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "device_id"),
    [
        ("urn:dev:ow:10e2073a01080063:hr", OW),
        ("urn:dev:ow:10E2073A01080063:hr", OW),  # case is not significant in RFC 9039's subtypes
        ("URN:DEV:ow:10e2073a01080063:hr", "urn:dev:ow:10e2073a01080063"),  # the whole URN as the device id
        ("urn:dev:mac:0024befffe804ff1_2:hr", "0024befffe804ff1"),  # a component part after "_"
        ("urn:dev:os:32473-cuff7/hr", "32473-cuff7"),
        ("urn:dev:xyz:Abc/hr", "Abc"),  # another subtype: compared byte for byte
        ("2001:db8::2/hr", "dev-1"),  # no device URN: nothing to check
        ("watch/hr", "dev-1"),
    ],
)
def test_names_of_the_publishing_device_are_accepted(name: str, device_id: str) -> None:
    decoded = decode_senml(json.dumps([{"n": name, "u": "beat/min", "v": 60}]).encode(), device_id, received_at=NOW)
    assert decoded == FrameDecode((Reading(device_id, "heart_rate", NOW, _q("60", "/min")),))


@pytest.mark.parametrize(
    ("name", "device_id", "named"),
    [
        ("urn:dev:ow:10e2073a01080064:hr", OW, "urn:dev:ow:10e2073a01080064"),
        ("urn:dev:mac:0024befffe804ff1:hr", "0024befffe804ff2", "urn:dev:mac:0024befffe804ff1"),
        ("urn:dev:xyz:Abc/hr", "abc", "urn:dev:xyz:Abc"),
    ],
)
def test_a_name_of_another_device_is_an_identity_mismatch(name: str, device_id: str, named: str) -> None:
    payload = json.dumps([{"n": name, "u": "beat/min", "v": 60}, {"n": "hr", "u": "beat/min", "v": 61}]).encode()
    detail = f"record 0 ({name}): the name is device {named!r}, but the pack was published by {device_id!r}"
    expected = FrameDecode(
        (Reading(device_id, "heart_rate", NOW, _q("61", "/min"), index=1),),
        ((0, IdentityError(ReasonCode.IDENTITY_MISMATCH, detail)),),
    )
    assert _plain(decode_senml(payload, device_id, received_at=NOW)) == _plain(expected)


def test_a_base_name_of_another_device_rejects_every_record_it_names() -> None:
    payload = b'[{"bn":"urn:dev:ow:0000000000000000:","n":"hr","u":"beat/min","v":60},{"n":"spo2","u":"/","v":0.97}]'
    decoded = decode_senml(payload, OW, received_at=NOW)
    assert decoded.readings == ()
    assert [(index, type(error), error.reason) for index, error in decoded.rejections] == [
        (0, IdentityError, ReasonCode.IDENTITY_MISMATCH),
        (1, IdentityError, ReasonCode.IDENTITY_MISMATCH),
    ]


# -- malformed packs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason", "message_part"),
    [
        (b"\xff\xfe[]", ReasonCode.MALFORMED_JSON, "not UTF-8"),
        (b"", ReasonCode.MALFORMED_JSON, "invalid JSON"),
        (b"[{", ReasonCode.MALFORMED_JSON, "invalid JSON"),
        (b'[{"n":"hr","u":"beat/min","v":NaN}]', ReasonCode.MALFORMED_JSON, "NaN"),
        (b'[{"n":"hr","u":"beat/min","v":-Infinity}]', ReasonCode.MALFORMED_JSON, "Infinity"),
        (b'[{"n":"hr","n":"spo2","u":"beat/min","v":60}]', ReasonCode.MALFORMED_JSON, "duplicate key 'n'"),
        (b"[" * 30_000 + b"]" * 30_000, ReasonCode.MALFORMED_JSON, "nested too deeply"),
        (b'{"n":"hr","u":"beat/min","v":60}', ReasonCode.MALFORMED_FRAME, "a SenML pack is a JSON array, got object"),
        (b"42", ReasonCode.MALFORMED_FRAME, "got number"),
        (b'"pack"', ReasonCode.MALFORMED_FRAME, "got string"),
        (b"null", ReasonCode.MALFORMED_FRAME, "got null"),
        (b"[]", ReasonCode.MALFORMED_FRAME, "at least one record"),
        (b'[{"bn":"urn:dev:ow:10e2073a01080063:"}]', ReasonCode.MALFORMED_FRAME, "only base fields"),
        (
            b'[{"bn":5,"n":"hr","u":"beat/min","v":60}]',
            ReasonCode.MALFORMED_FRAME,
            "record 0: 'bn' must be a JSON string, got number",
        ),
        (b'[{"n":"hr","u":"beat/min","v":60},{"bt":"now"}]', ReasonCode.MALFORMED_FRAME, "record 1: 'bt' must be a JSON number"),
        (b'[{"bu":null,"n":"hr","v":60}]', ReasonCode.MALFORMED_FRAME, "'bu' must be a JSON string, got null"),
        (b'[{"bv":"1","n":"hr","u":"beat/min","v":60}]', ReasonCode.MALFORMED_FRAME, "'bv' must be a JSON number, got string"),
        (b'[{"bs":true,"n":"hr","u":"beat/min","v":60}]', ReasonCode.MALFORMED_FRAME, "'bs' must be a JSON number, got boolean"),
        (b'[{"bx_":1,"n":"hr","u":"beat/min","v":60}]', ReasonCode.MALFORMED_FRAME, "must-understand base field(s) 'bx_'"),
        (b" " * 70_000 + b"[]", ReasonCode.OVERSIZE, "70002 bytes, the limit is 65536"),
    ],
)
def test_frame_level_rejections(payload: bytes, reason: ReasonCode, message_part: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_senml(payload, "dev-1", received_at=NOW)
    assert caught.value.reason is reason
    assert message_part in caught.value.detail


def test_too_many_records_is_oversize() -> None:
    record = b'{"n":"hr","u":"beat/min","v":60}'
    with pytest.raises(DecodeError) as caught:
        decode_senml(b"[" + b",".join([record] * 11) + b"]", "dev-1", received_at=NOW, max_records=10)
    assert (caught.value.reason, caught.value.detail) == (ReasonCode.OVERSIZE, "pack has 11 records, the limit is 10")


def test_payload_limit_is_configurable() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_senml(b'[{"n":"hr","u":"beat/min","v":60}]', "dev-1", received_at=NOW, max_payload_bytes=10)
    assert caught.value.reason is ReasonCode.OVERSIZE


GOOD = '{"n":"hr","u":"beat/min","v":60}'


@pytest.mark.parametrize(
    ("record", "error_type", "reason", "message_part"),
    [
        ("17", DecodeError, ReasonCode.MALFORMED_FRAME, "record 1 must be a JSON object, got number"),
        ("[]", DecodeError, ReasonCode.MALFORMED_FRAME, "got array"),
        ("null", DecodeError, ReasonCode.MALFORMED_FRAME, "got null"),
        ("{}", DecodeError, ReasonCode.MALFORMED_FRAME, "has no name"),
        ('{"u":"beat/min","v":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "has no name: neither 'bn' nor 'n'"),
        ('{"n":"hr","u":"beat/min"}', DecodeError, ReasonCode.MALFORMED_FRAME, "has no value"),
        ('{"n":"hr","u":"beat/min","v":60,"x_":1}', DecodeError, ReasonCode.MALFORMED_FRAME, "must-understand field(s) 'x_'"),
        ('{"n":7,"u":"beat/min","v":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "'n' must be a JSON string, got number"),
        ('{"n":"hr","u":["beat/min"],"v":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "'u' must be a JSON string, got array"),
        ('{"n":"hr","u":"beat/min","v":"60"}', DecodeError, ReasonCode.MALFORMED_FRAME, "'v' must be a JSON number, got string"),
        ('{"n":"hr","u":"beat/min","v":true}', DecodeError, ReasonCode.MALFORMED_FRAME, "got boolean"),
        ('{"n":"hr","u":"beat/min","v":60,"t":"now"}', DecodeError, ReasonCode.MALFORMED_FRAME, "'t' must be a JSON number"),
        ('{"n":"hr","u":"beat/min","v":60,"ut":{}}', DecodeError, ReasonCode.MALFORMED_FRAME, "'ut' must be a JSON number"),
        ('{"n":"hr","u":"beat/min","v":60,"s":"1"}', DecodeError, ReasonCode.MALFORMED_FRAME, "'s' must be a JSON number"),
        ('{"n":"hr","vs":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "'vs' must be a JSON string, got number"),
        ('{"n":"hr","vd":false}', DecodeError, ReasonCode.MALFORMED_FRAME, "'vd' must be a JSON string"),
        ('{"n":"hr","vb":"yes"}', DecodeError, ReasonCode.MALFORMED_FRAME, "'vb' must be a JSON boolean, got string"),
        ('{"n":"hr","u":"beat/min","v":60,"vs":"60"}', DecodeError, ReasonCode.MALFORMED_FRAME, "exactly one value field"),
        ('{"n":"heart rate","u":"beat/min","v":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "is not a SenML name"),
        ('{"n":"-hr","u":"beat/min","v":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "is not a SenML name"),
        ('{"n":"hr;x","u":"beat/min","v":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "is not a SenML name"),
        ('{"n":"watch:","u":"beat/min","v":60}', DecodeError, ReasonCode.MALFORMED_FRAME, "ends with a separator"),
        ('{"n":"hr","u":"beat/min","v":1e12}', DecodeError, ReasonCode.MALFORMED_FRAME, "out of range"),
        ('{"n":"hr","u":"beat/min","v":1e999999999}', DecodeError, ReasonCode.MALFORMED_FRAME, "out of range"),
        ('{"n":"hr","u":"beat/min","v":1.2345678901234567890}', DecodeError, ReasonCode.MALFORMED_FRAME, "significant digits"),
        ('{"n":"hr","u":"1/s","v":1e11}', DecodeError, ReasonCode.MALFORMED_FRAME, "value in /min 6.0E+12 is out of range"),
        ('{"n":"hr","u":"beat/min","v":60,"t":1e12}', DecodeError, ReasonCode.MALFORMED_FRAME, "beyond 1e12 seconds"),
        ('{"n":"hr","u":"beat/min","v":60,"t":-1e999999999}', DecodeError, ReasonCode.MALFORMED_FRAME, "beyond 1e12 seconds"),
        ('{"n":"hr","u":"beat/min","v":60,"t":-9e11}', DecodeError, ReasonCode.MALFORMED_FRAME, "outside the calendar"),
        ('{"n":"hr","u":"beat/min","v":60,"t":9e11}', DecodeError, ReasonCode.MALFORMED_FRAME, "outside the calendar"),
        ('{"n":"label","vs":"x"}', DecodeError, ReasonCode.UNSUPPORTED_TYPE, "string value"),
        ('{"n":"meter","s":12}', DecodeError, ReasonCode.UNSUPPORTED_TYPE, "a sum ('s') without a value"),
        ('{"n":"hr","u":"bpm","v":60}', NormalizeError, ReasonCode.UNIT_UNKNOWN, "not a SenML unit"),
        ('{"n":"hr","u":"%RH","v":60}', NormalizeError, ReasonCode.UNSUPPORTED_TYPE, "not a unit of any body reading"),
        ('{"n":"urn:dev:ow:0000000000000001:hr","u":"beat/min","v":60}', IdentityError, ReasonCode.IDENTITY_MISMATCH, "published by"),
    ],
)  # fmt: skip
def test_record_level_rejections_keep_good_neighbours(
    record: str, error_type: type[InputRejectedError], reason: ReasonCode, message_part: str
) -> None:
    decoded = decode_senml(f"[{GOOD}, {record}, {GOOD}]".encode(), "dev-1", received_at=NOW)
    reading = Reading("dev-1", "heart_rate", NOW, _q("60", "/min"))
    assert decoded.readings == (reading, Reading("dev-1", "heart_rate", NOW, _q("60", "/min"), index=2))
    ((index, error),) = decoded.rejections
    assert (index, type(error), error.reason) == (1, error_type, reason)
    assert message_part in error.detail


# -- properties ---------------------------------------------------------------------------------

_LABELS = ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut", "x_", "bx_", "other"]
_TEXT = st.sampled_from(["hr", "systolic", "diastolic", "spo2", "urn:dev:ow:10e2073a01080063:", "dev-1/", *UNITS]) | st.text(
    max_size=12
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.sampled_from(_LABELS), children, max_size=7),
    max_leaves=30,
)


def _check_invariants(payload: bytes) -> None:
    rejected: InputRejectedError | None = None
    try:
        decoded = decode_senml(payload, "dev-1", received_at=NOW)
    except InputRejectedError as exc:
        rejected = exc
    if rejected is not None:
        assert rejected.reason in ReasonCode
        return
    positions = [reading.index for reading in decoded.readings] + [index for index, _ in decoded.rejections]
    assert positions
    assert len(positions) == len(set(positions))
    for reading in decoded.readings:
        assert reading.time.tzinfo is not None
        assert reading.device_id == "dev-1"
    for _, error in decoded.rejections:
        assert isinstance(error, InputRejectedError)
        assert error.reason in ReasonCode


@settings(max_examples=2000, deadline=None)
@given(_JSON)
def test_arbitrary_json_is_decoded_or_rejected_with_a_reason(document: object) -> None:
    _check_invariants(json.dumps(document).encode())


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(_LABELS), _JSON, max_size=7), min_size=1, max_size=6))
def test_arbitrary_packs_are_decoded_or_rejected_with_a_reason(records: list[dict[str, object]]) -> None:
    _check_invariants(json.dumps(records).encode())


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_decoded_or_rejected_with_a_reason(payload: bytes) -> None:
    _check_invariants(payload)
