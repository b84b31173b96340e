"""PLX Spot-Check, Continuous and Features: spec vectors, readings, FHIR, fuzzing."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.ble.pulse_oximeter import (
    PlxContinuous,
    PlxFeatures,
    PlxSpotCheck,
    SpO2PR,
    parse_plx_continuous,
    parse_plx_features,
    parse_plx_spot_check,
    readings_from_plx_continuous,
    readings_from_plx_spot_check,
)
from device_adapters.errors import ReasonCode, ValidationError
from device_adapters.readings import AbsentReason, Quantity
from tests.ble_support import CONTEXT, RECEIVED, fuzz, observations, octets

STAMP = BleDateTime(2024, 3, 15, 8, 30, 0)
ALL_MEASUREMENT_STATUS = frozenset({
    "measurement-ongoing", "early-estimated-data", "validated-data", "fully-qualified-data", "data-from-measurement-storage",
    "data-for-demonstration", "data-for-testing", "calibration-ongoing", "measurement-unavailable",
    "questionable-measurement-detected", "invalid-measurement-detected",
})  # fmt: skip
ALL_DEVICE_STATUS = frozenset({
    "device-extended-update", "device-equipment-malfunction", "signal-processing-irregularity", "signal-inadequate", "signal-poor",
    "signal-low-perfusion", "signal-erratic", "signal-non-pulsatile", "signal-pulse-questionable", "signal-searching",
    "sensor-interference", "sensor-off", "sensor-unsupported", "sensor-displaced", "sensor-malfunction", "sensor-disconnected",
})  # fmt: skip


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 62 00 48 00", PlxSpotCheck(Decimal(98), Decimal(72))),  # V-PLX-D1
        ("10 61 00 FF 07", PlxSpotCheck(Decimal(97), AbsentReason.NOT_A_NUMBER, clock_not_set=True)),  # V-PLX-D2
        ("E0 62 00 48 00", PlxSpotCheck(Decimal(98), Decimal(72))),  # RFU flag bits 5-7 ignored
        ("00 E8 F3 48 00", PlxSpotCheck(Decimal("100.0"), Decimal(72))),  # 1000 x 10^-1 keeps its precision
        ("0F 62 00 48 00 E8 07 03 0F 08 1E 00 20 00 00 80 00 32 F0",  # every field
         PlxSpotCheck(Decimal(98), Decimal(72), STAMP, 0x0020, frozenset({"measurement-ongoing"}), 0x008000,
                      frozenset({"sensor-disconnected"}), Decimal("5.0"))),
        ("11 62 00 48 00 E8 07 03 0F 08 1E 00", PlxSpotCheck(Decimal(98), Decimal(72), STAMP, clock_not_set=True)),
        ("06 62 00 48 00 FF FF FF FF FF",  # every status bit, RFU bits kept raw but unnamed
         PlxSpotCheck(Decimal(98), Decimal(72), None, 0xFFFF, ALL_MEASUREMENT_STATUS, 0xFFFFFF, ALL_DEVICE_STATUS)),
    ],
)  # fmt: skip
def test_spot_check_vectors(vector: str, expected: PlxSpotCheck) -> None:
    assert parse_plx_spot_check(octets(vector)) == expected


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 62 00 48 00", PlxContinuous(SpO2PR(Decimal(98), Decimal(72)))),
        ("1F 62 00 48 00 61 00 49 00 63 00 47 00 80 00 10 00 00 0A 00",  # Normal, Fast, Slow, both statuses, PAI
         PlxContinuous(SpO2PR(Decimal(98), Decimal(72)), SpO2PR(Decimal(97), Decimal(73)), SpO2PR(Decimal(99), Decimal(71)),
                       0x0080, frozenset({"validated-data"}), 0x000010, frozenset({"signal-poor"}), Decimal(10))),
        ("E2 62 00 48 00 63 00 FF 07", PlxContinuous(SpO2PR(Decimal(98), Decimal(72)), slow=SpO2PR(Decimal(99), AbsentReason.NOT_A_NUMBER))),
    ],
)  # fmt: skip
def test_continuous_vectors(vector: str, expected: PlxContinuous) -> None:
    assert parse_plx_continuous(octets(vector)) == expected


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 00", PlxFeatures(0, frozenset())),
        ("0C 00", PlxFeatures(0x0C, frozenset({"spot-check-measurement-storage", "spot-check-timestamp"}))),
        ("FF FF E0 FF FF FF 00",  # every feature (RFU 8-15 unnamed) and both support fields
         PlxFeatures(0xFFFF, frozenset({"measurement-status-support", "device-and-sensor-status-support", "spot-check-measurement-storage",
                                         "spot-check-timestamp", "spo2pr-fast", "spo2pr-slow", "pulse-amplitude-index", "multiple-bonds"}),
                     0xFFE0, ALL_MEASUREMENT_STATUS, 0x00FFFF, ALL_DEVICE_STATUS)),
        ("02 00 01 00 00", PlxFeatures(0x02, frozenset({"device-and-sensor-status-support"}), None, frozenset(), 1, frozenset({"device-extended-update"}))),
    ],
)  # fmt: skip
def test_features_vectors(vector: str, expected: PlxFeatures) -> None:
    assert parse_plx_features(octets(vector)) == expected


@pytest.mark.parametrize(
    ("parse", "vector", "message"),
    [
        (parse_plx_spot_check, "01 62 00 48 00 E8 07 03 0F 08 1E", "PLX Spot-Check Measurement: flags 0x01 need 12 octets, have 11"),  # V-PLX-D3
        (parse_plx_spot_check, "", "PLX Spot-Check Measurement: empty value"),
        (parse_plx_spot_check, "00 62 00 48", "PLX Spot-Check Measurement: flags 0x00 need 5 octets, have 4"),
        (parse_plx_spot_check, "0E 62 00 48 00 00 00 00 00 00", "PLX Spot-Check Measurement: flags 0x0E need 12 octets, have 10"),
        (parse_plx_spot_check, "00 62 00 48 00 00", "PLX Spot-Check Measurement: 1 trailing octet(s) after the last field"),
        (parse_plx_spot_check, "01 62 00 48 00 E8 07 03 0F 18 1E 00", "PLX Spot-Check Measurement: Timestamp has out-of-range hours"),
        (parse_plx_continuous, "", "PLX Continuous Measurement: empty value"),
        (parse_plx_continuous, "01 62 00 48 00 61 00", "PLX Continuous Measurement: flags 0x01 need 9 octets, have 7"),
        (parse_plx_continuous, "1F 62 00 48 00", "PLX Continuous Measurement: flags 0x1F need 20 octets, have 5"),
        (parse_plx_continuous, "00 62 00 48 00 61 00", "PLX Continuous Measurement: 2 trailing octet(s)"),
        (parse_plx_features, "", "PLX Features: empty value"),
        (parse_plx_features, "03", "PLX Features: flags 0x0003 need 7 octets, have 1"),
        (parse_plx_features, "03 00 E0 FF", "PLX Features: flags 0x0003 need 7 octets, have 4"),
        (parse_plx_features, "00 00 00", "PLX Features: 1 trailing octet(s)"),
    ],
)  # fmt: skip
def test_rejections_name_the_problem(parse: Callable[[bytes], object], vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse(octets(vector))
    assert str(caught.value).startswith(message)


def test_spot_check_to_fhir_spo2_and_pulse_rate() -> None:  # V-PLX-D1
    readings = readings_from_plx_spot_check(parse_plx_spot_check(octets("00 62 00 48 00")), CONTEXT)
    assert [(r.kind, r.index, r.time, r.device_time) for r in readings] == [
        ("spo2", 0, RECEIVED, None),
        ("pulse_rate", 1, RECEIVED, None),
    ]
    spo2, pulse = observations(readings)
    assert spo2["code"]["coding"][0]["code"] == "2708-6"
    assert spo2["valueQuantity"] == {"value": 98, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
    assert pulse["code"]["coding"][0]["code"] == "8867-4"
    assert (pulse["valueQuantity"]["value"], pulse["valueQuantity"]["code"]) == (72, "/min")


def test_pulse_rate_nan_becomes_not_a_number() -> None:  # V-PLX-D2
    spo2, pulse = observations(readings_from_plx_spot_check(parse_plx_spot_check(octets("10 61 00 FF 07")), CONTEXT))
    assert spo2["valueQuantity"]["value"] == 97
    assert "valueQuantity" not in pulse
    assert pulse["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"


def test_timestamp_is_used_unless_the_clock_was_never_set() -> None:
    (spo2, _) = readings_from_plx_spot_check(parse_plx_spot_check(octets("01 62 00 48 00 E8 07 03 0F 08 1E 00")), CONTEXT)
    assert (spo2.time.isoformat(), spo2.device_time) == ("2024-03-15T08:30:00+00:00", "2024-03-15T08:30:00")
    unset = parse_plx_spot_check(octets("11 62 00 48 00 E8 07 03 0F 08 1E 00"))
    assert unset.clock_not_set
    assert unset.timestamp == STAMP  # decoded and kept, but not trusted
    assert [(r.time, r.device_time) for r in readings_from_plx_spot_check(unset, CONTEXT)] == [(RECEIVED, None), (RECEIVED, None)]


@pytest.mark.parametrize("status", ["00 04", "00 08", "00 0C"])  # Data for Demonstration, Data for Testing, both
def test_demonstration_and_testing_data_is_refused(status: str) -> None:
    with pytest.raises(ValidationError) as caught:
        readings_from_plx_spot_check(parse_plx_spot_check(octets(f"02 62 00 48 00 {status}")), CONTEXT)
    assert caught.value.reason is ReasonCode.UNSUPPORTED_TYPE
    assert "demonstration/testing data is not patient data" in caught.value.detail
    with pytest.raises(ValidationError):
        readings_from_plx_continuous(parse_plx_continuous(octets(f"04 62 00 48 00 {status}")), CONTEXT)


@pytest.mark.parametrize("status", ["00 20", "00 80", "00 A0"])  # Measurement Unavailable, Invalid Measurement Detected
def test_unavailable_or_invalid_measurement_is_absent_error(status: str) -> None:
    readings = readings_from_plx_spot_check(parse_plx_spot_check(octets(f"02 62 00 48 00 {status}")), CONTEXT)
    assert [(r.kind, r.absent, r.quantity) for r in readings] == [
        ("spo2", AbsentReason.ERROR, None),
        ("pulse_rate", AbsentReason.ERROR, None),
    ]
    for observation in observations(readings):
        assert observation["dataAbsentReason"]["coding"][0]["code"] == "error"


def test_questionable_measurement_keeps_its_values() -> None:
    spo2, pulse = readings_from_plx_spot_check(parse_plx_spot_check(octets("02 62 00 48 00 00 40")), CONTEXT)
    assert (spo2.quantity, pulse.quantity) == (Quantity(Decimal(98), "%"), Quantity(Decimal(72), "/min"))
    assert (spo2.absent, pulse.absent) == (None, None)


def test_device_status_is_bit_reversed_onto_150604_on_the_spo2_reading() -> None:
    spo2, pulse = readings_from_plx_spot_check(parse_plx_spot_check(octets("04 62 00 48 00 01 A0 00")), CONTEXT)
    # BLE bit 0 (extended display update) -> .15, bit 13 (displaced) -> .2, bit 15 (disconnected) -> .0
    assert spo2.status_codes == (
        ("150604.0", "sensor-disconnected"), ("150604.2", "sensor-displaced"), ("150604.15", "device-extended-update"),
    )  # fmt: skip
    assert pulse.status_codes == ()
    spo2_fhir, _ = observations([spo2, pulse])
    codes = [c["code"]["coding"][0]["code"] for c in spo2_fhir["component"]]
    assert codes == ["150604.0", "150604.2", "150604.15"]
    assert spo2_fhir["valueQuantity"]["value"] == 98


def test_every_device_status_bit_has_its_mirrored_code() -> None:
    spo2, _ = readings_from_plx_spot_check(parse_plx_spot_check(octets("04 62 00 48 00 FF FF FF")), CONTEXT)
    assert [code for code, _ in spo2.status_codes] == [f"150604.{bit}" for bit in range(16)]


def test_continuous_uses_the_normal_pair_at_reception_time() -> None:
    measurement = parse_plx_continuous(octets("1F 62 00 48 00 61 00 49 00 63 00 47 00 80 00 10 00 00 0A 00"))
    readings = readings_from_plx_continuous(measurement, CONTEXT)
    assert [(r.kind, r.quantity.value if r.quantity else None, r.index, r.time, r.device_time) for r in readings] == [
        ("spo2", Decimal(98), 0, RECEIVED, None), ("pulse_rate", Decimal(72), 1, RECEIVED, None),
    ]  # fmt: skip
    assert readings[0].status_codes == (("150604.11", "signal-poor"),)
    spo2, pulse = observations(readings)
    assert (spo2["valueQuantity"]["value"], pulse["valueQuantity"]["value"]) == (98, 72)


test_spot_check_fuzz = fuzz(parse_plx_spot_check)
test_continuous_fuzz = fuzz(parse_plx_continuous)
test_features_fuzz = fuzz(parse_plx_features)
