"""Blood Pressure Measurement and Intermediate Cuff Pressure: spec vectors, readings, FHIR, fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from device_adapters.ble.blood_pressure import (
    BloodPressureMeasurement,
    IntermediateCuffPressure,
    parse_blood_pressure_measurement,
    parse_intermediate_cuff_pressure,
    readings_from_blood_pressure,
)
from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.errors import IdentityError
from device_adapters.readings import AbsentReason
from tests.ble_support import CONTEXT, fuzz, observations, octets


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("1E 78 00 50 00 5D 00 E8 07 01 02 03 04 05 48 00 01 00 00",  # V-BPM-D1
         BloodPressureMeasurement(Decimal(120), Decimal(80), Decimal(93), "mmHg", BleDateTime(2024, 1, 2, 3, 4, 5), Decimal(72), 1, 0)),
        ("01 A0 F0 6B F0 7D F0",  # V-BPM-D2
         BloodPressureMeasurement(Decimal("16.0"), Decimal("10.7"), Decimal("12.5"), "kPa")),
        ("00 78 00 50 00 FF 07",  # V-BPM-D3
         BloodPressureMeasurement(Decimal(120), Decimal(80), AbsentReason.NOT_A_NUMBER, "mmHg")),
        ("04 78 00 50 00 5D 00 00 08",  # V-BPM-D4
         BloodPressureMeasurement(Decimal(120), Decimal(80), Decimal(93), "mmHg", pulse_rate=AbsentReason.ERROR)),
        ("10 78 00 50 00 5D 00 08 00",  # V-BPM-D5
         BloodPressureMeasurement(Decimal(120), Decimal(80), Decimal(93), "mmHg", status_raw=8, status=frozenset({"pulse-over-range-limit"}))),
        ("10 78 00 50 00 5D 00 18 00",  # V-BPM-D6: pulse range 3 is RFU: kept raw, mapped to nothing
         BloodPressureMeasurement(Decimal(120), Decimal(80), Decimal(93), "mmHg", status_raw=0x18)),
        ("10 78 00 50 00 5D 00 27 00",
         BloodPressureMeasurement(Decimal(120), Decimal(80), Decimal(93), "mmHg", status_raw=0x27,
                                  status=frozenset({"body-movement", "cuff-too-loose", "irregular-pulse", "improper-body-position"}))),
    ],
)  # fmt: skip
def test_blood_pressure_vectors(vector: str, expected: BloodPressureMeasurement) -> None:
    assert parse_blood_pressure_measurement(octets(vector)) == expected


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("02 78 00 50 00 5D 00 E8 07 01 02 03", "Blood Pressure Measurement: flags 0x02 need 14 octets, have 12"),  # V-BPM-D7
        ("", "Blood Pressure Measurement: empty value"),
        ("00 78 00 50 00 5D", "Blood Pressure Measurement: flags 0x00 need 7 octets, have 6"),
        ("00 78 00 50 00 5D 00 00", "Blood Pressure Measurement: 1 trailing octet(s) after the last field the flags announce"),
        ("02 78 00 50 00 5D 00 E8 07 0D 02 03 04 05", "Blood Pressure Measurement: Time Stamp has out-of-range month"),
    ],
)
def test_blood_pressure_rejections_name_the_problem(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_blood_pressure_measurement(octets(vector))
    assert str(caught.value).startswith(message)


def test_intermediate_cuff_pressure_ignores_the_unused_fields() -> None:  # V-ICP-D1 and the Nordic zero form
    assert parse_intermediate_cuff_pressure(octets("00 64 00 FF 07 FF 07")) == IntermediateCuffPressure(Decimal(100), "mmHg")
    assert parse_intermediate_cuff_pressure(octets("00 64 00 00 00 00 00")) == IntermediateCuffPressure(Decimal(100), "mmHg")


def test_blood_pressure_to_fhir_panel_and_pulse() -> None:
    measurement = parse_blood_pressure_measurement(octets("1E 78 00 50 00 5D 00 E8 07 01 02 03 04 05 48 00 01 00 00"))
    panel, pulse = observations(readings_from_blood_pressure(measurement, CONTEXT))
    assert [c["code"]["coding"][0]["code"] for c in panel["component"]] == ["8480-6", "8462-4", "8478-0"]
    assert [c["valueQuantity"]["value"] for c in panel["component"]] == [120, 80, 93]
    assert panel["effectiveDateTime"] == "2024-01-02T03:04:05+00:00"
    assert pulse["code"]["coding"][0]["code"] == "8867-4"
    assert pulse["valueQuantity"]["value"] == 72


def test_kpa_is_converted_keeping_the_original_and_nan_map_is_left_out() -> None:
    (panel,) = observations(
        readings_from_blood_pressure(parse_blood_pressure_measurement(octets("01 A0 F0 6B F0 7D F0")), CONTEXT)
    )
    systolic = panel["component"][0]["valueQuantity"]
    assert (systolic["value"], systolic["code"]) == (120, "mm[Hg]")
    assert systolic["extension"][0]["valueQuantity"] == {"value": 16.0, "unit": "kPa"}
    (without_map,) = observations(
        readings_from_blood_pressure(parse_blood_pressure_measurement(octets("00 78 00 50 00 FF 07")), CONTEXT)
    )
    assert len(without_map["component"]) == 2


def test_special_pulse_becomes_data_absent_and_status_bits_are_kept() -> None:
    _, pulse = observations(
        readings_from_blood_pressure(parse_blood_pressure_measurement(octets("04 78 00 50 00 5D 00 00 08")), CONTEXT)
    )
    assert pulse["dataAbsentReason"]["coding"][0]["code"] == "error"
    readings = readings_from_blood_pressure(parse_blood_pressure_measurement(octets("10 78 00 50 00 5D 00 0C 00")), CONTEXT)
    assert readings[0].status_codes == (("8410608.2", "irregular-pulse"), ("8410608.3", "pulse-over-range-limit"))


def test_unknown_user_is_never_attributed() -> None:
    with pytest.raises(IdentityError):
        readings_from_blood_pressure(parse_blood_pressure_measurement(octets("08 78 00 50 00 5D 00 FF")), CONTEXT)


test_blood_pressure_fuzz = fuzz(parse_blood_pressure_measurement)
test_intermediate_cuff_pressure_fuzz = fuzz(parse_intermediate_cuff_pressure)
