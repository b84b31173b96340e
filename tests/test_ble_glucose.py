"""Glucose Measurement, Measurement Context and Feature: spec vectors, pairing, readings, FHIR, fuzzing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from device_adapters.ble.context import BleContext, DeviceClock
from device_adapters.ble.glucose import (
    CarbohydrateId,
    GlucoseFeature,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseRecord,
    GlucoseTester,
    GlucoseType,
    Health,
    Meal,
    MedicationId,
    SampleLocation,
    join_glucose,
    parse_glucose_feature,
    parse_glucose_measurement,
    parse_glucose_measurement_context,
    readings_from_glucose,
)
from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.errors import ReasonCode, ValidationError
from device_adapters.readings import AbsentReason, Quantity, ReadingFlag
from tests.ble_support import CONTEXT, RECEIVED, fuzz, observations, octets

BASE = BleDateTime(2024, 3, 15, 7, 45, 0)
CAPILLARY, FINGER = GlucoseType.CAPILLARY_WHOLE_BLOOD, SampleLocation.FINGER
GLM_D1 = "02 05 00 E8 07 03 0F 07 2D 00 5F B0 11"
GLM_D2 = "06 06 00 E8 07 03 0F 07 2D 00 35 C0 11"
GLM_D3 = "0B 07 00 E8 07 03 0F 07 2D 00 A6 FF 5F B0 11 20 00"
GLM_D4 = "00 08 00 E8 07 03 0F 07 2D 00"
ALL_STATUS = frozenset({
    "device-battery-low", "sensor-malfunction", "sensor-sample-size-insufficient", "sensor-strip-insertion",
    "sensor-strip-type-incorrect", "sensor-result-too-high", "sensor-result-too-low", "sensor-temp-too-high", "sensor-temp-too-low",
    "sensor-read-interrupt", "device-gen-fault", "time-fault",
})  # fmt: skip


def glucose(type_location: int, concentration: str = "5F B0", flags: int = 0x02) -> bytes:
    """A Glucose Measurement (seq 5, 2024-03-15 07:45:00) with the given Type-Sample Location octet."""
    return octets(f"{flags:02X} 05 00 E8 07 03 0F 07 2D 00 {concentration} {type_location:02X}")


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        (GLM_D1, GlucoseMeasurement(5, BASE, None, Decimal("0.00095"), "kg/L", 1, CAPILLARY, 1, FINGER)),
        (GLM_D2, GlucoseMeasurement(6, BASE, None, Decimal("0.0053"), "mol/L", 1, CAPILLARY, 1, FINGER)),
        (GLM_D3, GlucoseMeasurement(7, BASE, -90, Decimal("0.00095"), "kg/L", 1, CAPILLARY, 1, FINGER, 0x0020,
                                    frozenset({"sensor-result-too-high"}))),
        (GLM_D4, GlucoseMeasurement(8, BASE)),
        ("E2 05 00 E8 07 03 0F 07 2D 00 5F B0 11",  # RFU flag bits 5-7 ignored
         GlucoseMeasurement(5, BASE, None, Decimal("0.00095"), "kg/L", 1, CAPILLARY, 1, FINGER)),
        ("1F 09 00 E8 07 03 0F 07 2D 00 1E 00 35 C0 92 FF 0F",  # every field; location 9 is RFU; all status bits
         GlucoseMeasurement(9, BASE, 30, Decimal("0.0053"), "mol/L", 2, GlucoseType.CAPILLARY_PLASMA, 9, None, 0x0FFF, ALL_STATUS, context_follows=True)),
        ("04 0A 00 E8 07 03 0F 07 2D 00", GlucoseMeasurement(10, BASE)),  # unit flag without a concentration: no unit
        ("03 0B 00 00 00 00 00 07 2D 00 00 80 FE 07 F0",  # date unknown; +INF; type 0 RFU, location 15 not available
         GlucoseMeasurement(11, BleDateTime(0, 0, 0, 7, 45, 0), -32768, AbsentReason.POSITIVE_INFINITY, "kg/L", 0, None, 15,
                            SampleLocation.NOT_AVAILABLE)),
    ],
)  # fmt: skip
def test_glucose_measurement_vectors(vector: str, expected: GlucoseMeasurement) -> None:
    assert parse_glucose_measurement(octets(vector)) == expected


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("03 05 00 01 32 D0 01",  # V-GLC-D1: 50 x 10^-3 kg carbohydrate, preprandial
         GlucoseMeasurementContext(5, carbohydrate_id_raw=1, carbohydrate_id=CarbohydrateId.BREAKFAST, carbohydrate=Decimal("0.050"),
                                   meal_raw=1, meal=Meal.PREPRANDIAL)),
        ("50 05 00 01 06 A0 41 F0",  # V-GLC-D2: 6 x 10^-6 kg rapid-acting insulin; HbA1c 6.5 %
         GlucoseMeasurementContext(5, medication_id_raw=1, medication_id=MedicationId.RAPID_ACTING_INSULIN, medication=Decimal("6E-6"),
                                   medication_unit="kg", hba1c=Decimal("6.5"))),
        ("81 05 00 AA 01 32 D0",  # Extended Flags come BEFORE the carbohydrate fields
         GlucoseMeasurementContext(5, extended_flags=0xAA, carbohydrate_id_raw=1, carbohydrate_id=CarbohydrateId.BREAKFAST,
                                   carbohydrate=Decimal("0.050"))),
        ("FF 0A 00 00 07 32 D0 05 51 FF FF 50 05 0A D0 41 F0",  # every field; medication in litres; exercise overrun
         GlucoseMeasurementContext(10, 0, 7, CarbohydrateId.BRUNCH, Decimal("0.050"), 5, Meal.BEDTIME, 1, GlucoseTester.SELF, 5,
                                   Health.NO_HEALTH_ISSUES, 0xFFFF, 80, 5, MedicationId.PRE_MIXED_INSULIN, Decimal("0.010"), "L", Decimal("6.5"))),
        ("06 0B 00 00 F0",  # RFU meal 0 and tester 0 kept raw, mapped to nothing; health 15 = not available
         GlucoseMeasurementContext(11, meal_raw=0, tester_raw=0, health_raw=15, health=Health.NOT_AVAILABLE)),
        ("08 0C 00 10 0E 4B", GlucoseMeasurementContext(12, exercise_duration=3600, exercise_intensity=75)),
        ("20 0D 00", GlucoseMeasurementContext(13)),  # medication-unit flag alone: no medication, no unit
    ],
)  # fmt: skip
def test_glucose_context_vectors(vector: str, expected: GlucoseMeasurementContext) -> None:
    assert parse_glucose_measurement_context(octets(vector)) == expected


def test_exercise_overrun() -> None:
    assert parse_glucose_measurement_context(octets("08 0C 00 FF FF 50")).exercise_overrun
    assert not parse_glucose_measurement_context(octets("08 0C 00 10 0E 4B")).exercise_overrun


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00 00", GlucoseFeature(0, frozenset())),
        ("FF FF", GlucoseFeature(0xFFFF, frozenset({
            "low-battery-detection", "sensor-malfunction-detection", "sensor-sample-size", "sensor-strip-insertion-error-detection",
            "sensor-strip-type-error-detection", "sensor-result-high-low-detection", "sensor-temperature-high-low-detection",
            "sensor-read-interrupt-detection", "general-device-fault", "time-fault", "multiple-bond",
        }))),
        ("20 04", GlucoseFeature(0x0420, frozenset({"sensor-result-high-low-detection", "multiple-bond"}))),
    ],
)  # fmt: skip
def test_glucose_feature_vectors(vector: str, expected: GlucoseFeature) -> None:
    assert parse_glucose_feature(octets(vector)) == expected


@pytest.mark.parametrize(
    ("parse", "vector", "message"),
    [
        (parse_glucose_measurement, "", "Glucose Measurement: empty value"),
        (parse_glucose_measurement, "00 08 00 E8 07 03 0F 07 2D", "Glucose Measurement: flags 0x00 need 10 octets, have 9"),
        (parse_glucose_measurement, "02 05 00 E8 07 03 0F 07 2D 00 5F B0", "Glucose Measurement: flags 0x02 need 13 octets, have 12"),
        (parse_glucose_measurement, "0B 07 00 E8 07 03 0F 07 2D 00 A6 FF 5F B0 11 20", "Glucose Measurement: flags 0x0B need 17 octets, have 16"),
        (parse_glucose_measurement, GLM_D1 + " 00", "Glucose Measurement: 1 trailing octet(s) after the last field"),
        (parse_glucose_measurement, "00 08 00 E8 07 03 0F 07 3C 00", "Glucose Measurement: Base Time has out-of-range minutes"),
        (parse_glucose_measurement, "00 08 00 E8 07 02 1E 07 2D 00", "Glucose Measurement: Base Time is not a calendar date"),
        (parse_glucose_measurement_context, "", "Glucose Measurement Context: empty value"),
        (parse_glucose_measurement_context, "03 05", "Glucose Measurement Context: flags 0x03 need 7 octets, have 2"),
        (parse_glucose_measurement_context, "81 05 00 01 32 D0", "Glucose Measurement Context: flags 0x81 need 7 octets, have 6"),
        (parse_glucose_measurement_context, "FF 0A 00 00 07 32 D0 05 51 FF FF 50 05 0A D0 41", "Glucose Measurement Context: flags 0xFF need 17 octets, have 16"),
        (parse_glucose_measurement_context, "03 05 00 01 32 D0 01 00", "Glucose Measurement Context: 1 trailing octet(s)"),  # V-GLC-2 style: Nordic ignores it
        (parse_glucose_feature, "", "Glucose Feature: empty value"),
        (parse_glucose_feature, "FF", "Glucose Feature: value needs 2 octets, have 1"),
        (parse_glucose_feature, "FF 07 00", "Glucose Feature: 1 trailing octet(s)"),
    ],
)  # fmt: skip
def test_rejections_name_the_problem(parse: Callable[[bytes], object], vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse(octets(vector))
    assert str(caught.value).startswith(message)


def test_join_pairs_contexts_by_sequence_number() -> None:
    five = parse_glucose_measurement(octets("12 05 00 E8 07 03 0F 07 2D 00 5F B0 11"))
    six = parse_glucose_measurement(octets(GLM_D2))
    assert five.context_follows
    first = parse_glucose_measurement_context(octets("50 05 00 01 06 A0 41 F0"))
    context = parse_glucose_measurement_context(octets("03 05 00 01 32 D0 01"))
    orphan = parse_glucose_measurement_context(octets("02 63 00 02"))
    assert join_glucose([five, six], [first, orphan, context]) == (GlucoseRecord(five, context), GlucoseRecord(six, None))
    assert join_glucose([], [context]) == ()


def test_mg_per_dl_to_fhir() -> None:  # V-GLM-D1
    (reading,) = readings_from_glucose(parse_glucose_measurement(octets(GLM_D1)), CONTEXT)
    assert (reading.kind, reading.quantity, reading.index) == ("blood_glucose", Quantity(Decimal(95), "mg/dL"), 0)
    assert (reading.time.isoformat(), reading.device_time) == ("2024-03-15T07:45:00+00:00", "2024-03-15T07:45:00")
    (observation,) = observations([reading])
    assert [c["code"] for c in observation["code"]["coding"]] == ["41653-7", "160184"]
    assert (observation["valueQuantity"]["value"], observation["valueQuantity"]["code"]) == (95, "mg/dL")
    assert observation["effectiveDateTime"] == "2024-03-15T07:45:00+00:00"


def test_mmol_per_l_to_fhir() -> None:  # V-GLM-D2
    (reading,) = readings_from_glucose(parse_glucose_measurement(octets(GLM_D2)), CONTEXT)
    assert reading.quantity == Quantity(Decimal("5.3"), "mmol/L")
    (observation,) = observations([reading])
    assert observation["code"]["coding"][0]["code"] == "14743-9"
    assert (observation["valueQuantity"]["value"], observation["valueQuantity"]["code"]) == (5.3, "mmol/L")


def test_unit_conversion_keeps_the_precision() -> None:
    (reading,) = readings_from_glucose(parse_glucose_measurement(glucose(0x11, "E8 A3")), CONTEXT)  # 1000 x 10^-6 kg/L
    assert reading.quantity is not None
    assert str(reading.quantity.value) == "100.0"
    (molar,) = readings_from_glucose(parse_glucose_measurement(glucose(0x11, "C8 B0", flags=0x06)), CONTEXT)  # 200 x 10^-5 mol/L
    assert molar.quantity is not None
    assert str(molar.quantity.value) == "2.00"


def test_time_offset_and_high_flag() -> None:  # V-GLM-D3
    (reading,) = readings_from_glucose(parse_glucose_measurement(octets(GLM_D3)), CONTEXT)
    assert (reading.time.isoformat(), reading.device_time) == ("2024-03-15T06:15:00+00:00", "2024-03-15T07:45:00-90min")
    assert reading.flags == frozenset({ReadingFlag.HIGH})  # bit5 = HIGHER than the device can process (Nordic says lower)
    assert reading.status_codes == (("8417752.5", "sensor-result-too-high"),)
    (observation,) = observations([reading])
    assert observation["interpretation"][0]["coding"][0]["code"] == "H"
    assert observation["component"][0]["code"]["coding"][0]["code"] == "8417752.5"
    assert observation["valueQuantity"]["value"] == 95


def test_offset_time_is_anchored_through_the_device_clock_and_the_key_text_stays() -> None:
    slow = DeviceClock(device_now=datetime(2024, 3, 15, 8, 0), gateway_now=datetime(2024, 3, 15, 8, 5, tzinfo=UTC))  # noqa: DTZ001 - device clocks are naive
    (reading,) = readings_from_glucose(parse_glucose_measurement(octets(GLM_D3)), BleContext("ble-device", RECEIVED, slow))
    assert (reading.time.isoformat(), reading.device_time) == ("2024-03-15T06:20:00+00:00", "2024-03-15T07:45:00-90min")
    (positive,) = readings_from_glucose(
        parse_glucose_measurement(octets("03 05 00 E8 07 03 0F 07 2D 00 1E 00 5F B0 11")), CONTEXT
    )
    assert (positive.time.isoformat(), positive.device_time) == ("2024-03-15T08:15:00+00:00", "2024-03-15T07:45:00+30min")


def test_low_flag_and_all_status_codes() -> None:
    (reading,) = readings_from_glucose(parse_glucose_measurement(octets("0A 05 00 E8 07 03 0F 07 2D 00 5F B0 11 FF 0F")), CONTEXT)
    assert reading.flags == frozenset({ReadingFlag.HIGH, ReadingFlag.LOW})
    assert [code for code, _ in reading.status_codes] == [f"8417752.{bit}" for bit in range(11)]  # bit 11 (time fault): no code
    (only_low,) = readings_from_glucose(
        parse_glucose_measurement(octets("0A 05 00 E8 07 03 0F 07 2D 00 5F B0 11 40 00")), CONTEXT
    )
    assert only_low.flags == frozenset({ReadingFlag.LOW})
    assert only_low.status_codes == (("8417752.6", "sensor-result-too-low"),)
    observations([reading, only_low])


@pytest.mark.parametrize(
    ("sample_type", "kind", "loinc"),
    [
        (1, "blood_glucose", "41653-7"),
        (2, "blood_glucose_plasma", "2345-7"),
        (3, "blood_glucose_whole_blood", "2339-0"),
        (4, "blood_glucose_plasma", "2345-7"),
        (5, "blood_glucose_whole_blood", "2339-0"),
        (6, "blood_glucose_plasma", "2345-7"),
        (7, "blood_glucose_whole_blood", "2339-0"),
        (8, "blood_glucose_plasma", "2345-7"),
        (9, "cgm_glucose", "99504-3"),
    ],
)
def test_sample_type_picks_the_kind(sample_type: int, kind: str, loinc: str) -> None:
    (reading,) = readings_from_glucose(parse_glucose_measurement(glucose(0x10 | sample_type)), CONTEXT)
    assert reading.kind == kind
    (observation,) = observations([reading])
    assert observation["code"]["coding"][0]["code"] == loinc


@pytest.mark.parametrize("type_location", [0x1A, 0x41])  # type 10 control solution; sample location 4 control solution
def test_control_solution_is_not_patient_data(type_location: int) -> None:
    with pytest.raises(ValidationError) as caught:
        readings_from_glucose(parse_glucose_measurement(glucose(type_location)), CONTEXT)
    assert caught.value.reason is ReasonCode.UNSUPPORTED_TYPE
    assert "control solution" in caught.value.detail
    assert caught.value.detail.endswith("is not patient data")


@pytest.mark.parametrize("sample_type", [0, 11, 15])
def test_reserved_sample_type_is_refused(sample_type: int) -> None:
    with pytest.raises(ValidationError) as caught:
        readings_from_glucose(parse_glucose_measurement(glucose(0x10 | sample_type)), CONTEXT)
    assert caught.value.reason is ReasonCode.UNSUPPORTED_TYPE
    assert f"sample type {sample_type} is reserved" in caught.value.detail


def test_record_without_concentration_gives_nothing() -> None:  # V-GLM-D4
    assert readings_from_glucose(parse_glucose_measurement(octets(GLM_D4)), CONTEXT) == []


@pytest.mark.parametrize(
    ("concentration", "reason"),
    [("FE 07", "positive-infinity"), ("02 08", "negative-infinity"), ("FF 07", "not-a-number"), ("00 08", "error")],
)
def test_special_concentration_is_absent(concentration: str, reason: str) -> None:
    (reading,) = readings_from_glucose(parse_glucose_measurement(glucose(0x11, concentration)), CONTEXT)
    assert (reading.quantity, reading.absent) == (None, AbsentReason(reason))
    (observation,) = observations([reading])
    assert observation["dataAbsentReason"]["coding"][0]["code"] == reason


def test_unknown_date_falls_back_to_reception_time() -> None:
    measurement = parse_glucose_measurement(octets("03 0B 00 00 00 00 00 07 2D 00 A6 FF 5F B0 11"))
    (reading,) = readings_from_glucose(measurement, CONTEXT)
    assert (reading.time, reading.device_time) == (RECEIVED, None)


def test_offset_past_the_calendar_is_refused_not_crashed() -> None:
    measurement = parse_glucose_measurement(
        octets("03 05 00 0F 27 0C 1F 17 3B 3B FF 7F 5F B0 11")
    )  # 9999-12-31 23:59:59 +32767 min
    with pytest.raises(ValidationError) as caught:
        readings_from_glucose(measurement, CONTEXT)
    assert caught.value.reason is ReasonCode.IMPLAUSIBLE_VALUE


test_glucose_measurement_fuzz = fuzz(parse_glucose_measurement)
test_glucose_context_fuzz = fuzz(parse_glucose_measurement_context)
test_glucose_feature_fuzz = fuzz(parse_glucose_feature)
