"""Weight Measurement and Weight Scale Feature: spec vectors, readings, FHIR, fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.ble.weight import (
    CHARACTERISTICS,
    HEIGHT_RESOLUTIONS,
    MASS_RESOLUTIONS,
    Resolution,
    WeightMeasurement,
    WeightScaleFeature,
    parse_weight_measurement,
    parse_weight_scale_feature,
    readings_from_weight,
)
from device_adapters.errors import IdentityError, ReasonCode
from device_adapters.readings import AbsentReason, Reading
from fhir_mapper.observation import MappingInput
from tests.ble_support import CONTEXT, MAPPER, RECEIVED, WHO, fuzz, observations, octets

STAMP = BleDateTime(2024, 3, 15, 8, 30, 0)


def resources(readings: list[Reading]) -> list[bytes]:
    """The mapped Observations as the bytes stored (to see the precision a JSON float would hide)."""
    mapped, rejected = MAPPER.map_batch([MappingInput(reading, WHO, RECEIVED, "ble") for reading in readings])
    assert not rejected, rejected
    return [observation.resource for observation in mapped]


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 B0 36", WeightMeasurement(Decimal("70.000"), "kg")),  # V-WM-D1
        ("01 48 3C", WeightMeasurement(Decimal("154.32"), "[lb_av]")),  # V-WM-D2
        ("0E B0 36 E8 07 03 0F 08 1E 00 01 E5 00 D6 06",  # V-WM-D3
         WeightMeasurement(Decimal("70.000"), "kg", STAMP, 1, Decimal("22.9"), Decimal("1.750"))),
        ("09 48 3C E5 00 B2 02", WeightMeasurement(Decimal("154.32"), "[lb_av]", None, None, Decimal("22.9"), Decimal("69.0"))),  # V-WM-D4
        ("00 FF FF", WeightMeasurement(AbsentReason.ERROR, "kg")),  # V-WM-D5: Measurement Unsuccessful, not 327.675 kg
        ("06 FF FF E8 07 03 0F 08 1E 00 02", WeightMeasurement(AbsentReason.ERROR, "kg", STAMP, 2)),  # V-WM-D6
        ("04 B0 36 FF", WeightMeasurement(Decimal("70.000"), "kg", None, 255)),  # V-WM-D8: unknown user, still decoded
        ("01 FF FF", WeightMeasurement(AbsentReason.ERROR, "[lb_av]")),
        ("00 FE FF", WeightMeasurement(Decimal("327.670"), "kg")),  # only 0xFFFF is special
        ("00 00 00", WeightMeasurement(Decimal("0.000"), "kg")),
        ("0F 48 3C E8 07 03 0F 08 1E 00 03 E5 00 B2 02",  # every flag, imperial
         WeightMeasurement(Decimal("154.32"), "[lb_av]", STAMP, 3, Decimal("22.9"), Decimal("69.0"))),
        ("F0 B0 36", WeightMeasurement(Decimal("70.000"), "kg")),  # RFU bits 4-7 (a vendor "below zero") are ignored
        ("02 B0 36 00 00 00 00 08 1E 00", WeightMeasurement(Decimal("70.000"), "kg", BleDateTime(0, 0, 0, 8, 30, 0))),
    ],
)  # fmt: skip
def test_weight_vectors(vector: str, expected: WeightMeasurement) -> None:
    parsed = parse_weight_measurement(octets(vector))
    assert parsed == expected
    assert repr(parsed) == repr(expected)  # Decimal precision too


def test_height_unit_follows_the_unit_flag() -> None:
    assert parse_weight_measurement(octets("08 B0 36 E5 00 D6 06")).height_unit == "m"
    assert parse_weight_measurement(octets("09 48 3C E5 00 B2 02")).height_unit == "[in_i]"


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("08 B0 36 E5 00", "Weight Measurement: flags 0x08 need 7 octets, have 5"),  # V-WM-D7
        ("", "Weight Measurement: empty value"),
        ("00 B0", "Weight Measurement: flags 0x00 need 3 octets, have 2"),
        ("0E B0 36 E8 07 03 0F 08 1E 00 01 E5 00 D6", "Weight Measurement: flags 0x0E need 15 octets, have 14"),
        ("04 B0 36", "Weight Measurement: flags 0x04 need 4 octets, have 3"),
        ("00 B0 36 00", "Weight Measurement: 1 trailing octet(s) after the last field the flags announce"),
        ("02 B0 36 E8 07 03 0F 08 3C 00", "Weight Measurement: Time Stamp has out-of-range minutes"),
        ("08 FF FF E5 00 D6 06", "Weight Measurement: Measurement Unsuccessful (weight 0xFFFF) with BMI and Height (flags 0x08)"),
    ],
)
def test_weight_rejections_name_the_problem(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_weight_measurement(octets(vector))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 00 00 00", WeightScaleFeature(0, frozenset(), 0, None, 0, None)),
        ("BF 01 00 00",  # all three supported, 0.005 kg / 0.01 lb, 0.001 m / 0.1 in
         WeightScaleFeature(0x1BF, frozenset({"time-stamp", "multiple-users", "bmi"}), 7, Resolution(Decimal("0.005"), Decimal("0.01")),
                            3, Resolution(Decimal("0.001"), Decimal("0.1")))),
        ("8A 00 00 00",  # multiple users, 0.5 kg / 1 lb, 0.01 m / 1 in
         WeightScaleFeature(0x8A, frozenset({"multiple-users"}), 1, Resolution(Decimal("0.5"), Decimal(1)),
                            1, Resolution(Decimal("0.01"), Decimal(1)))),
        ("FF FF FF FF",  # RFU resolutions (15, 7) and RFU bits 10-31: kept raw, mapped to nothing
         WeightScaleFeature(0xFFFFFFFF, frozenset({"time-stamp", "multiple-users", "bmi"}), 15, None, 7, None)),
        ("40 02 00 00", WeightScaleFeature(0x240, frozenset(), 8, None, 4, None)),  # first RFU value of each
    ],
)  # fmt: skip
def test_weight_scale_feature(vector: str, expected: WeightScaleFeature) -> None:
    assert parse_weight_scale_feature(octets(vector)) == expected


def test_feature_resolution_tables() -> None:
    assert sorted(MASS_RESOLUTIONS) == list(range(1, 8))
    assert MASS_RESOLUTIONS[4] == Resolution(Decimal("0.05"), Decimal("0.1"))
    assert HEIGHT_RESOLUTIONS[2] == Resolution(Decimal("0.005"), Decimal("0.5"))


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("", "Weight Scale Feature: empty value"),
        ("00 00 00", "Weight Scale Feature: value must be exactly 4 octets, have 3"),
        ("00 00 00 00 00", "Weight Scale Feature: value must be exactly 4 octets, have 5"),
    ],
)
def test_weight_scale_feature_rejections(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_weight_scale_feature(octets(vector))
    assert str(caught.value).startswith(message)


def test_weight_bmi_and_height_to_fhir() -> None:  # V-WM-D3
    readings = readings_from_weight(parse_weight_measurement(octets("0E B0 36 E8 07 03 0F 08 1E 00 01 E5 00 D6 06")), CONTEXT)
    assert [(r.kind, r.index, r.user, r.device_time) for r in readings] == [
        ("body_weight", 0, 1, "2024-03-15T08:30:00"),
        ("bmi", 1, 1, "2024-03-15T08:30:00"),
        ("body_height", 2, 1, "2024-03-15T08:30:00"),
    ]
    weight, bmi, height = observations(readings)
    assert [c["code"] for c in weight["code"]["coding"]] == ["29463-7", "188736"]
    assert (weight["valueQuantity"]["value"], weight["valueQuantity"]["code"]) == (70, "kg")
    assert [c["code"] for c in bmi["code"]["coding"]] == ["39156-5", "188752"]
    assert (bmi["valueQuantity"]["value"], bmi["valueQuantity"]["code"]) == (22.9, "kg/m2")
    assert [c["code"] for c in height["code"]["coding"]] == ["8302-2", "188740"]
    assert (height["valueQuantity"]["value"], height["valueQuantity"]["code"]) == (175, "cm")
    assert height["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": 1.75, "unit": "m"}
    assert weight["effectiveDateTime"] == "2024-03-15T08:30:00+00:00"
    stored_weight, _, stored_height = resources(readings)
    assert b'"value":70.000,' in stored_weight  # the scale's 0.005 kg resolution
    assert b'"value":175.0,' in stored_height  # 1.750 m -> 175.0 cm, not 175 or 175.00
    assert b'"value":1.750,' in stored_height


def test_pounds_and_inches_are_converted_keeping_the_originals() -> None:  # V-WM-D2, V-WM-D4
    (weight,) = observations(readings_from_weight(parse_weight_measurement(octets("01 48 3C")), CONTEXT))
    assert (weight["valueQuantity"]["value"], weight["valueQuantity"]["code"]) == (69.998, "kg")
    assert weight["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": 154.32, "unit": "[lb_av]"}
    readings = readings_from_weight(parse_weight_measurement(octets("09 48 3C E5 00 B2 02")), CONTEXT)
    _, bmi, height = observations(readings)
    assert bmi["valueQuantity"]["value"] == 22.9
    assert (height["valueQuantity"]["value"], height["valueQuantity"]["code"]) == (175, "cm")  # 69.0 in = 175.26 cm, 3 digits
    assert height["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": 69.0, "unit": "[in_i]"}
    assert readings[0].time == RECEIVED  # no time stamp: reception time


@pytest.mark.parametrize(("vector", "user"), [("00 FF FF", None), ("06 FF FF E8 07 03 0F 08 1E 00 02", 2)])
def test_unsuccessful_measurement_is_an_absent_weight(vector: str, user: int | None) -> None:  # V-WM-D5, V-WM-D6
    readings = readings_from_weight(parse_weight_measurement(octets(vector)), CONTEXT)
    assert [(r.kind, r.absent, r.quantity, r.user) for r in readings] == [("body_weight", AbsentReason.ERROR, None, user)]
    (observation,) = observations(readings)
    assert [c["code"] for c in observation["code"]["coding"]] == ["29463-7", "188736"]
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert "valueQuantity" not in observation


def test_unknown_user_is_never_attributed() -> None:  # V-WM-D8
    with pytest.raises(IdentityError) as caught:
        readings_from_weight(parse_weight_measurement(octets("04 B0 36 FF")), CONTEXT)
    assert caught.value.reason is ReasonCode.UNPAIRED_DEVICE
    assert caught.value.detail == "Weight Measurement from user 255 (unknown user) is not attributed"
    with pytest.raises(IdentityError):
        readings_from_weight(parse_weight_measurement(octets("04 FF FF FF")), CONTEXT)


def test_characteristic_rows() -> None:
    assert [(row.uuid16, row.name, row.to_readings is not None) for row in CHARACTERISTICS] == [
        (0x2A9D, "Weight Measurement", True),
        (0x2A9E, "Weight Scale Feature", False),
    ]


test_weight_measurement_fuzz = fuzz(parse_weight_measurement)
test_weight_scale_feature_fuzz = fuzz(parse_weight_scale_feature)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 255), st.binary(min_size=2, max_size=2), st.integers(0, 255), st.binary(min_size=4, max_size=4))
def test_weight_readings_fuzz(flags: int, weight: bytes, user: int, body: bytes) -> None:
    flags &= 0xFD  # no time stamp: any other combination is a valid value
    data = bytes([flags]) + weight + (bytes([user]) if flags & 0x04 else b"") + (body if flags & 0x08 else b"")
    try:
        parsed = parse_weight_measurement(data)
    except GattParseError:
        assert weight == b"\xff\xff"
        assert flags & 0x08
        return
    try:
        readings = readings_from_weight(parsed, CONTEXT)
    except IdentityError:
        assert parsed.user_id == 0xFF
        return
    assert [r.index for r in readings] == list(range(len(readings)))
    assert len(readings) == (3 if parsed.bmi is not None else 1)
