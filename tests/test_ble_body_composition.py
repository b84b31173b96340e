"""Body Composition Measurement and Body Composition Feature: spec vectors, readings, FHIR, fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.ble.body_composition import (
    CHARACTERISTICS,
    BodyCompositionFeature,
    BodyCompositionMeasurement,
    parse_body_composition_feature,
    parse_body_composition_measurement,
    readings_from_body_composition,
)
from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.ble.weight import Resolution
from device_adapters.errors import IdentityError, ReasonCode
from device_adapters.readings import AbsentReason
from tests.ble_support import CONTEXT, RECEIVED, fuzz, observations, octets

STAMP = BleDateTime(2024, 3, 15, 8, 30, 0)
# Every field (flags 0x0FFE), SI: 21.5 %, 7000 kJ, 40.0 %, masses 30/55/50/40 kg, 500.0 Ohm, 70 kg, 1.750 m.
ALL_SI = "FE 0F D7 00 E8 07 03 0F 08 1E 00 01 58 1B 90 01 70 17 F8 2A 10 27 40 1F 88 13 B0 36 D6 06"
# Every field, imperial, with the RFU bits 13 and 15 set (as [BVP] does): flags 0xAFFF.
ALL_IMPERIAL = "FF AF D7 00 E8 07 03 0F 08 1E 00 02 58 1B 90 01 AC 33 BA 5E 1E 56 E5 44 88 13 48 3C B2 02"


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 06 D7 00 88 13 B0 36",  # V-BCM-D1
         BodyCompositionMeasurement(Decimal("21.5"), "kg", impedance=Decimal("500.0"), weight=Decimal("70.000"))),
        ("04 00 FF FF 01", BodyCompositionMeasurement(AbsentReason.ERROR, "kg", user_id=1)),  # V-BCM-D3
        ("00 00 D7 00", BodyCompositionMeasurement(Decimal("21.5"), "kg")),
        ("01 00 FF FF", BodyCompositionMeasurement(AbsentReason.ERROR, "[lb_av]")),
        ("00 00 FE FF", BodyCompositionMeasurement(Decimal("6553.4"), "kg")),  # only 0xFFFF is special
        ("00 02 D7 00 89 AB", BodyCompositionMeasurement(Decimal("21.5"), "kg", impedance=Decimal("4391.3"))),  # [BVP]: 0.1 Ohm
        (ALL_SI, BodyCompositionMeasurement(
            Decimal("21.5"), "kg", STAMP, 1, Decimal(7000), Decimal("40.0"), Decimal("30.000"), Decimal("55.000"),
            Decimal("50.000"), Decimal("40.000"), Decimal("500.0"), Decimal("70.000"), Decimal("1.750"))),
        (ALL_IMPERIAL, BodyCompositionMeasurement(
            Decimal("21.5"), "[lb_av]", STAMP, 2, Decimal(7000), Decimal("40.0"), Decimal("132.28"), Decimal("242.50"),
            Decimal("220.46"), Decimal("176.37"), Decimal("500.0"), Decimal("154.32"), Decimal("69.0"))),
        ("00 14 D7 00 B0 36",  # bit12: one packet of a multiple-packet measurement
         BodyCompositionMeasurement(Decimal("21.5"), "kg", weight=Decimal("70.000"), multiple_packet=True)),
        ("04 04 FF FF 01 B0 36",  # unsuccessful with a weight beside it: decoded (the flags announce it)
         BodyCompositionMeasurement(AbsentReason.ERROR, "kg", user_id=1, weight=Decimal("70.000"))),
        ("00 E0 D7 00", BodyCompositionMeasurement(Decimal("21.5"), "kg")),  # RFU bits 13-15 are ignored
    ],
)  # fmt: skip
def test_body_composition_vectors(vector: str, expected: BodyCompositionMeasurement) -> None:
    parsed = parse_body_composition_measurement(octets(vector))
    assert parsed == expected
    assert repr(parsed) == repr(expected)  # Decimal precision too


def test_height_unit_follows_the_unit_flag() -> None:
    assert parse_body_composition_measurement(octets(ALL_SI)).height_unit == "m"
    assert parse_body_composition_measurement(octets(ALL_IMPERIAL)).height_unit == "[in_i]"


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("00 06 D7 00 88 13", "Body Composition Measurement: flags 0x0600 need 8 octets, have 6"),  # V-BCM-D2
        ("", "Body Composition Measurement: empty value"),
        ("00", "Body Composition Measurement: Flags needs 2 octets at offset 0, have 1"),
        ("00 00 D7", "Body Composition Measurement: flags 0x0000 need 4 octets, have 3"),
        (ALL_SI[:-3], "Body Composition Measurement: flags 0x0FFE need 30 octets, have 29"),
        ("00 00 D7 00 00", "Body Composition Measurement: 1 trailing octet(s) after the last field the flags announce"),
        ("02 00 D7 00 E8 07 0D 0F 08 1E 00", "Body Composition Measurement: Time Stamp has out-of-range month"),
    ],
)
def test_body_composition_rejections_name_the_problem(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_body_composition_measurement(octets(vector))
    assert str(caught.value).startswith(message)


ALL_FEATURES = frozenset({"time-stamp", "multiple-users", "basal-metabolism", "muscle-percentage", "muscle-mass", "fat-free-mass",
                          "soft-lean-mass", "body-water-mass", "impedance", "weight", "height"})  # fmt: skip


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 00 00 00", BodyCompositionFeature(0, frozenset(), 0, None, 0, None)),
        ("FF BF 01 00",  # bits 0-10, mass 0.005 kg / 0.01 lb (7), height 0.001 m / 0.1 in (3)
         BodyCompositionFeature(0x1BFFF, ALL_FEATURES, 7, Resolution(Decimal("0.005"), Decimal("0.01")),
                                3, Resolution(Decimal("0.001"), Decimal("0.1")))),
        ("01 09 01 00",  # time stamp + impedance, mass 0.5 kg / 1 lb (1), height 0.005 m / 0.5 in (2)
         BodyCompositionFeature(0x10901, frozenset({"time-stamp", "impedance"}), 1, Resolution(Decimal("0.5"), Decimal(1)),
                                2, Resolution(Decimal("0.005"), Decimal("0.5")))),
        ("00 40 02 FF",  # RFU mass resolution 8, height resolution 4, RFU bits 18-31
         BodyCompositionFeature(0xFF024000, frozenset(), 8, None, 4, None)),
    ],
)  # fmt: skip
def test_body_composition_feature(vector: str, expected: BodyCompositionFeature) -> None:
    assert parse_body_composition_feature(octets(vector)) == expected


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("", "Body Composition Feature: empty value"),
        ("FF BF 01", "Body Composition Feature: value must be exactly 4 octets, have 3"),
        ("FF BF 01 00 00", "Body Composition Feature: value must be exactly 4 octets, have 5"),
    ],
)
def test_body_composition_feature_rejections(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_body_composition_feature(octets(vector))
    assert str(caught.value).startswith(message)


def test_every_field_to_fhir() -> None:
    readings = readings_from_body_composition(parse_body_composition_measurement(octets(ALL_SI)), CONTEXT)
    assert [(r.kind, r.index, r.user, r.device_time) for r in readings] == [
        (kind, index, 1, "2024-03-15T08:30:00")
        for index, kind in enumerate(["body_fat", "basal_metabolism", "muscle_percentage", "muscle_mass", "fat_free_mass",
                                      "soft_lean_mass", "body_water_mass", "body_impedance", "body_weight", "body_height"])
    ]  # fmt: skip
    resources = observations(readings)
    values = [(r["valueQuantity"]["value"], r["valueQuantity"]["code"]) for r in resources]
    assert values == [(21.5, "%"), (7000, "kJ"), (40.0, "%"), (30, "kg"), (55, "kg"), (50, "kg"), (40, "kg"), (500, "Ohm"),
                      (70, "kg"), (175, "cm")]  # fmt: skip
    codes = [r["code"]["coding"][0]["code"] for r in resources]
    assert codes == ["41982-0", "basal_metabolism", "muscle_percentage", "muscle_mass", "188756", "188760", "188764",
                     "body_impedance", "29463-7", "8302-2"]  # fmt: skip
    assert {r["effectiveDateTime"] for r in resources} == {"2024-03-15T08:30:00+00:00"}


def test_fat_impedance_and_weight_to_fhir() -> None:  # V-BCM-D1
    readings = readings_from_body_composition(parse_body_composition_measurement(octets("00 06 D7 00 88 13 B0 36")), CONTEXT)
    fat, impedance, weight = observations(readings)
    assert [c["code"] for c in fat["code"]["coding"]] == ["41982-0", "188748"]
    assert fat["valueQuantity"]["value"] == 21.5
    assert (impedance["valueQuantity"]["value"], impedance["valueQuantity"]["code"]) == (500, "Ohm")
    assert (weight["valueQuantity"]["value"], weight["valueQuantity"]["code"]) == (70, "kg")
    assert readings[0].time == RECEIVED  # no time stamp: reception time


def test_imperial_masses_are_converted_keeping_the_originals() -> None:
    resources = observations(readings_from_body_composition(parse_body_composition_measurement(octets(ALL_IMPERIAL)), CONTEXT))
    muscle_mass, weight, height = resources[3], resources[8], resources[9]
    assert (muscle_mass["valueQuantity"]["value"], muscle_mass["valueQuantity"]["code"]) == (60.001, "kg")
    assert muscle_mass["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": 132.28, "unit": "[lb_av]"}
    assert weight["valueQuantity"]["value"] == 69.998
    assert (height["valueQuantity"]["value"], height["valueQuantity"]["code"]) == (175, "cm")


@pytest.mark.parametrize("vector", ["04 00 FF FF 01", "04 04 FF FF 01 B0 36"])
def test_unsuccessful_measurement_is_an_absent_body_fat_only(vector: str) -> None:  # V-BCM-D3
    readings = readings_from_body_composition(parse_body_composition_measurement(octets(vector)), CONTEXT)
    assert [(r.kind, r.absent, r.user) for r in readings] == [("body_fat", AbsentReason.ERROR, 1)]
    (observation,) = observations(readings)
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "error"


def test_a_multiple_packet_part_yields_nothing() -> None:
    parsed = parse_body_composition_measurement(octets("04 14 D7 00 FF B0 36"))
    assert parsed.multiple_packet
    assert readings_from_body_composition(parsed, CONTEXT) == []


def test_unknown_user_is_never_attributed() -> None:
    with pytest.raises(IdentityError) as caught:
        readings_from_body_composition(parse_body_composition_measurement(octets("04 00 D7 00 FF")), CONTEXT)
    assert caught.value.reason is ReasonCode.UNPAIRED_DEVICE
    assert caught.value.detail == "Body Composition Measurement from user 255 (unknown user) is not attributed"


def test_characteristic_rows() -> None:
    assert [(row.uuid16, row.name, row.to_readings is not None) for row in CHARACTERISTICS] == [
        (0x2A9C, "Body Composition Measurement", True),
        (0x2A9B, "Body Composition Feature", False),
    ]


test_body_composition_measurement_fuzz = fuzz(parse_body_composition_measurement)
test_body_composition_feature_fuzz = fuzz(parse_body_composition_feature)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.lists(st.integers(0, 0xFFFF), min_size=10, max_size=10))
def test_body_composition_readings_fuzz(flags: int, user: int, fields: list[int]) -> None:
    flags &= 0xFFFD  # no time stamp: any other combination is a valid value
    data = flags.to_bytes(2, "little") + fields[0].to_bytes(2, "little") + (bytes([user]) if flags & 0x04 else b"")
    data += b"".join(value.to_bytes(2, "little") for bit, value in zip(range(3, 12), fields[1:], strict=True) if flags >> bit & 1)
    parsed = parse_body_composition_measurement(data)
    try:
        readings = readings_from_body_composition(parsed, CONTEXT)
    except IdentityError:
        assert parsed.user_id == 0xFF
        return
    assert [r.index for r in readings] == list(range(len(readings)))
    if parsed.multiple_packet:
        assert readings == []
    elif isinstance(parsed.body_fat, AbsentReason):
        assert len(readings) == 1
    else:
        assert len(readings) == 1 + (flags & 0x0FF8).bit_count()
