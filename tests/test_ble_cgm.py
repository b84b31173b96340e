"""CGM Measurement and CGM Feature: spec vectors, E2E-CRC, concatenated records, readings, FHIR, fuzzing."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from device_adapters.ble.cgm import (
    CgmFeature,
    CgmMeasurement,
    crc16_mcrf4xx,
    parse_cgm_feature,
    parse_cgm_measurement,
    readings_from_cgm_measurement,
)
from device_adapters.ble.context import BleContext, DeviceClock
from device_adapters.ble.glucose import GlucoseType, SampleLocation
from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.errors import ReasonCode, ValidationError
from device_adapters.readings import AbsentReason, Quantity, ReadingFlag
from tests.ble_support import CONTEXT, RECEIVED, fuzz, observations, octets

CGM_D1 = "08 00 7B 00 3C 00 7A AC"
CGM_D2 = "07 20 37 00 78 00 01"
CGM_D3 = "06 00 FE 07 79 00"
FULL = "0F E3 D2 E4 3C 00 02 14 FF F1 FF 64 00 35 4D"  # trend, quality, all three annunciation octets, CRC
SESSION = BleDateTime(2024, 3, 15, 8, 0, 0)
IN_SESSION = BleContext("ble-device", RECEIVED, DeviceClock(), cgm_session_start=SESSION)
ALL_WARNINGS = frozenset({
    "sensor-result-below-patient-low", "sensor-result-above-patient-high", "sensor-low-hypo", "sensor-high-hyper",
    "sensor-rate-decrease-exceeded", "sensor-rate-increase-exceeded", "sensor-result-too-low", "sensor-result-too-high",
})  # fmt: skip


def test_crc_check_values() -> None:
    assert crc16_mcrf4xx(b"123456789") == 0x6F91
    assert crc16_mcrf4xx(octets("3E 01 02 03 04 05 06 07 08 09")) == 0x2F01  # the CGMS example (printed byte-swapped there)
    assert crc16_mcrf4xx(b"") == 0xFFFF
    assert crc16_mcrf4xx(octets("08 00 7B 00 3C 00")) == 0xAC7A  # V-CGM-D1


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (CGM_D1, (CgmMeasurement(Decimal(123), 60, e2e_crc=0xAC7A),)),
        # V-CGM-D2: flag bit5 announces the Warning octet; 0x01 = below the Patient Low level (Nordic says "session stopped")
        (CGM_D2, (CgmMeasurement(Decimal(55), 120, warning_octet=1, status=frozenset({"sensor-result-below-patient-low"})),)),
        (CGM_D3, (CgmMeasurement(AbsentReason.POSITIVE_INFINITY, 121),)),
        (FULL, (CgmMeasurement(Decimal("12.34"), 60, 0x02, 0x14, 0xFF,
                               frozenset({"device-battery-low", "sensor-calibration-recommended", "sensor-temp-too-high"}) | ALL_WARNINGS,
                               Decimal("-1.5"), Decimal(100), 0x4D35),)),
        ("09 E0 37 00 78 00 01 02 04",  # octets arrive Status (bit7), Cal/Temp (bit6), Warning (bit5)
         (CgmMeasurement(Decimal(55), 120, 0x01, 0x02, 0x04,
                         frozenset({"sensor-session-stopped", "sensor-calibration-not-allowed", "sensor-low-hypo"})),)),
        ("06 1C 7B 00 3C 00", (CgmMeasurement(Decimal(123), 60),)),  # RFU flag bits 2-4 ignored
        ("0A 03 7B 00 3C 00 0A F0 5F 00", (CgmMeasurement(Decimal(123), 60, trend=Decimal("1.0"), quality=Decimal(95)),)),
        (CGM_D1 + " 08 00 7C 00 3D 00 83 E2 " + CGM_D3,  # three concatenated records, with and without CRC
         (CgmMeasurement(Decimal(123), 60, e2e_crc=0xAC7A), CgmMeasurement(Decimal(124), 61, e2e_crc=0xE283),
          CgmMeasurement(AbsentReason.POSITIVE_INFINITY, 121))),
    ],
)  # fmt: skip
def test_cgm_measurement_vectors(vector: str, expected: tuple[CgmMeasurement, ...]) -> None:
    assert parse_cgm_measurement(octets(vector)) == expected


def test_annunciation_is_the_24_bit_value() -> None:
    (record,) = parse_cgm_measurement(octets(FULL))
    assert record.annunciation == 0xFF1402
    (bare,) = parse_cgm_measurement(octets(CGM_D1))
    assert bare.annunciation == 0


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("01 00 00 F9 FF FF",  # E2E-CRC not supported: the field is 0xFFFF and not checked
         CgmFeature(0x000001, frozenset({"calibration"}), 9, GlucoseType.INTERSTITIAL_FLUID, 15, SampleLocation.NOT_AVAILABLE, 0xFFFF)),
        ("FF FF 01 F9 96 73",  # every feature incl. E2E-CRC: the CRC over the first 4 octets is checked
         CgmFeature(0x01FFFF, frozenset({
             "calibration", "patient-high-low-alerts", "hypo-alerts", "hyper-alerts", "rate-of-increase-decrease-alerts",
             "device-specific-alert", "sensor-malfunction-detection", "sensor-temperature-high-low-detection",
             "sensor-result-high-low-detection", "low-battery-detection", "sensor-type-error-detection", "general-device-fault",
             "e2e-crc", "multiple-bond", "multiple-sessions", "cgm-trend-information", "cgm-quality",
         }), 9, GlucoseType.INTERSTITIAL_FLUID, 15, SampleLocation.NOT_AVAILABLE, 0x7396)),
        ("00 00 FE 00 12 34", CgmFeature(0xFE0000, frozenset(), 0, None, 0, None, 0x3412)),  # RFU bits, RFU type/location kept raw
    ],
)  # fmt: skip
def test_cgm_feature_vectors(vector: str, expected: CgmFeature) -> None:
    feature = parse_cgm_feature(octets(vector))
    assert feature == expected
    assert feature.e2e_crc_supported == bool(expected.features_raw & 0x1000)


@pytest.mark.parametrize(
    ("parse", "vector", "message"),
    [
        (parse_cgm_measurement, "", "CGM Measurement: empty value"),
        (parse_cgm_measurement, "08 00 7B 00 3C 00 7A AD", "CGM Measurement: record 1: E2E-CRC 0xAD7A does not match computed 0xAC7A"),
        (parse_cgm_measurement, "07 00 7B 00 3C 00 00", "CGM Measurement: record 1: Size 7 does not fit flags 0x00 (6 or 8 octets)"),
        (parse_cgm_measurement, "05 00 7B 00 3C 00", "CGM Measurement: record 1: Size 5 does not fit flags 0x00 (6 or 8 octets)"),
        (parse_cgm_measurement, "08 00 7B 00 3C 00 7A", "CGM Measurement: record 1: Size 8 but only 7 octets left"),
        (parse_cgm_measurement, "06 03 7B 00 3C 00", "CGM Measurement: flags 0x03 need 10 octets, have 6"),
        (parse_cgm_measurement, "06", "CGM Measurement: record 1 at offset 0: 1 octet(s) cannot hold Size and Flags"),
        (parse_cgm_measurement, CGM_D3 + " 06", "CGM Measurement: record 2 at offset 6: 1 octet(s) cannot hold Size and Flags"),
        (parse_cgm_measurement, CGM_D3 + " 08 00 7C 00 3D 00 83 E3", "CGM Measurement: record 2: E2E-CRC 0xE383 does not match"),
        (parse_cgm_feature, "", "CGM Feature: empty value"),
        (parse_cgm_feature, "01 00 00 F9 FF", "CGM Feature: flags 0x000001 need 6 octets, have 5"),
        (parse_cgm_feature, "01 00 00 F9 FF FF 00", "CGM Feature: 1 trailing octet(s)"),
        (parse_cgm_feature, "FF FF 01 F9 96 74", "CGM Feature: E2E-CRC 0x7496 does not match computed 0x7396"),
    ],
)  # fmt: skip
def test_rejections_name_the_problem(parse: Callable[[bytes], object], vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse(octets(vector))
    assert str(caught.value).startswith(message)


def test_without_session_start_readings_take_reception_time() -> None:  # V-CGM-D1
    (reading,) = readings_from_cgm_measurement(parse_cgm_measurement(octets(CGM_D1)), CONTEXT)
    assert (reading.kind, reading.quantity, reading.time, reading.device_time) == (
        "cgm_glucose", Quantity(Decimal(123), "mg/dL"), RECEIVED, "cgm-offset:60min",
    )  # fmt: skip
    (observation,) = observations([reading])
    assert [c["code"] for c in observation["code"]["coding"]] == ["99504-3", "160212"]
    assert (observation["valueQuantity"]["value"], observation["valueQuantity"]["code"]) == (123, "mg/dL")


def test_session_start_plus_offset() -> None:
    records = parse_cgm_measurement(octets(CGM_D1 + " 08 00 7C 00 3D 00 83 E2"))
    readings = readings_from_cgm_measurement(records, IN_SESSION)
    assert [(r.index, r.time.isoformat(), r.device_time) for r in readings] == [
        (0, "2024-03-15T09:00:00+00:00", "2024-03-15T08:00:00+60min"),
        (1, "2024-03-15T09:01:00+00:00", "2024-03-15T08:00:00+61min"),
    ]
    first, second = observations(readings)
    assert (first["effectiveDateTime"], second["effectiveDateTime"]) == ("2024-03-15T09:00:00+00:00", "2024-03-15T09:01:00+00:00")
    assert first["id"] != second["id"]


def test_session_start_with_unknown_date_counts_as_unknown() -> None:
    unknown = BleContext("ble-device", RECEIVED, DeviceClock(), cgm_session_start=BleDateTime(0, 0, 0, 8, 0, 0))
    (reading,) = readings_from_cgm_measurement(parse_cgm_measurement(octets(CGM_D1)), unknown)
    assert (reading.time, reading.device_time) == (RECEIVED, "cgm-offset:60min")


def test_special_concentration_is_absent() -> None:  # V-CGM-D3
    (reading,) = readings_from_cgm_measurement(parse_cgm_measurement(octets(CGM_D3)), IN_SESSION)
    assert (reading.quantity, reading.absent) == (None, AbsentReason.POSITIVE_INFINITY)
    (observation,) = observations([reading])
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "positive-infinity"


@pytest.mark.parametrize(
    ("warning", "flag", "code"), [("40", ReadingFlag.LOW, "8418060.18"), ("80", ReadingFlag.HIGH, "8418060.19")]
)
def test_device_range_warnings_become_flags(warning: str, flag: ReadingFlag, code: str) -> None:
    (reading,) = readings_from_cgm_measurement(parse_cgm_measurement(octets(f"07 20 37 00 78 00 {warning}")), IN_SESSION)
    assert reading.flags == frozenset({flag})
    assert [c for c, _ in reading.status_codes] == [code]
    (observation,) = observations([reading])
    assert observation["interpretation"][0]["coding"][0]["code"] == flag.value[0].upper()


def test_patient_level_warnings_are_status_codes_not_flags() -> None:  # V-CGM-D2
    (reading,) = readings_from_cgm_measurement(parse_cgm_measurement(octets(CGM_D2)), IN_SESSION)
    assert reading.flags == frozenset()
    assert reading.status_codes == (("8418060.12", "sensor-result-below-patient-low"),)
    observations([reading])


def test_annunciation_maps_irregularly_onto_8418060() -> None:
    (reading,) = readings_from_cgm_measurement(parse_cgm_measurement(octets("09 E0 37 00 78 00 FF FF FF")), IN_SESSION)
    # BLE 1, 5, 8, 14 have no code; BLE 9-13 -> .7-.11; BLE 16-23 -> .12-.19
    assert [code for code, _ in reading.status_codes] == [f"8418060.{bit}" for bit in (0, 2, 3, 4, *range(7, 20))]
    assert reading.flags == frozenset({ReadingFlag.LOW, ReadingFlag.HIGH})


def test_trend_and_quality_are_not_emitted() -> None:
    readings = readings_from_cgm_measurement(parse_cgm_measurement(octets("0A 03 7B 00 3C 00 0A F0 5F 00")), IN_SESSION)
    assert [(r.kind, r.quantity) for r in readings] == [("cgm_glucose", Quantity(Decimal(123), "mg/dL"))]


def test_offset_past_the_calendar_is_refused_not_crashed() -> None:
    late = BleContext("ble-device", RECEIVED, DeviceClock(), cgm_session_start=BleDateTime(9999, 12, 31, 0, 0, 0))
    with pytest.raises(ValidationError) as caught:
        readings_from_cgm_measurement(parse_cgm_measurement(octets("06 00 7B 00 FF FF")), late)
    assert caught.value.reason is ReasonCode.IMPLAUSIBLE_VALUE


test_cgm_measurement_fuzz = fuzz(parse_cgm_measurement)
test_cgm_feature_fuzz = fuzz(parse_cgm_feature)
