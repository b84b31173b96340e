"""Temperature Measurement, Intermediate Temperature and Temperature Type: spec vectors, readings, FHIR, fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.ble.octets import BleDateTime, GattParseError
from device_adapters.ble.thermometer import (
    CHARACTERISTICS,
    IntermediateTemperature,
    TemperatureMeasurement,
    TemperatureType,
    TemperatureTypeValue,
    parse_intermediate_temperature,
    parse_temperature_measurement,
    parse_temperature_type,
    readings_from_temperature,
)
from device_adapters.readings import AbsentReason
from fhir_mapper.observation import MappingInput
from tests.ble_support import CONTEXT, MAPPER, RECEIVED, WHO, fuzz, observations, octets

STAMP = BleDateTime(2024, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("01 DA 03 00 FF", TemperatureMeasurement(Decimal("98.6"), "[degF]")),  # V-HTM-D1
        ("00 6D 01 00 FF", TemperatureMeasurement(Decimal("36.5"), "Cel")),  # V-HTM-D2
        ("00 FF FF 7F 00", TemperatureMeasurement(AbsentReason.NOT_A_NUMBER, "Cel")),  # V-HTM-D3
        ("00 00 00 80 00", TemperatureMeasurement(AbsentReason.ERROR, "Cel")),  # V-HTM-D4: NRes
        ("00 FE FF 7F 00", TemperatureMeasurement(AbsentReason.POSITIVE_INFINITY, "Cel")),  # V-HTM-D5
        ("00 02 00 80 00", TemperatureMeasurement(AbsentReason.NEGATIVE_INFINITY, "Cel")),  # V-HTM-D6
        ("04 6D 01 00 FF 02", TemperatureMeasurement(Decimal("36.5"), "Cel", None, 2, TemperatureType.BODY)),  # V-HTM-D7
        ("00 F1 FF FF FF", TemperatureMeasurement(Decimal("-1.5"), "Cel")),  # V-HTM-D9
        ("03 EC 03 00 FF E8 07 01 02 03 04 05", TemperatureMeasurement(Decimal("100.4"), "[degF]", STAMP)),  # V-HTM-D10
        ("00 B0 0E 00 FE", TemperatureMeasurement(Decimal("37.60"), "Cel")),  # Nordic: 3760 x 10^-2 keeps its precision
        ("00 01 00 80 00", TemperatureMeasurement(AbsentReason.ERROR, "Cel")),  # the reserved FLOAT word
        ("07 EC 03 00 FF E8 07 01 02 03 04 05 06",  # every flag
         TemperatureMeasurement(Decimal("100.4"), "[degF]", STAMP, 6, TemperatureType.MOUTH)),
        ("04 6D 01 00 FF 00", TemperatureMeasurement(Decimal("36.5"), "Cel", None, 0)),  # RFU type 0: raw only
        ("04 6D 01 00 FF 0A", TemperatureMeasurement(Decimal("36.5"), "Cel", None, 10)),  # RFU type 10: raw only
        ("F8 6D 01 00 FF", TemperatureMeasurement(Decimal("36.5"), "Cel")),  # RFU flag bits 3-7 are ignored
        ("02 6D 01 00 FF 00 00 00 00 00 00 00", TemperatureMeasurement(Decimal("36.5"), "Cel", BleDateTime(0, 0, 0, 0, 0, 0))),
    ],
)  # fmt: skip
def test_temperature_vectors(vector: str, expected: TemperatureMeasurement) -> None:
    parsed = parse_temperature_measurement(octets(vector))
    assert parsed == expected
    assert repr(parsed) == repr(expected)  # Decimal precision too


def test_intermediate_temperature_shares_the_layout() -> None:
    assert parse_intermediate_temperature(octets("05 DA 03 00 FF 03")) == IntermediateTemperature(
        Decimal("98.6"), "[degF]", None, 3, TemperatureType.EAR
    )
    assert parse_intermediate_temperature(octets("00 FF FF 7F 00")) == IntermediateTemperature(AbsentReason.NOT_A_NUMBER, "Cel")


@pytest.mark.parametrize(
    ("parse", "vector", "message"),
    [
        (parse_temperature_measurement, "00 6D 01 00", "Temperature Measurement: flags 0x00 need 5 octets, have 4"),  # V-HTM-D8
        (parse_temperature_measurement, "", "Temperature Measurement: empty value"),
        (parse_temperature_measurement, "02 6D 01 00 FF E8 07 01 02 03 04",
         "Temperature Measurement: flags 0x02 need 12 octets, have 11"),
        (parse_temperature_measurement, "04 6D 01 00 FF", "Temperature Measurement: flags 0x04 need 6 octets, have 5"),
        (parse_temperature_measurement, "07 6D 01 00 FF E8 07 01 02 03 04 05",
         "Temperature Measurement: flags 0x07 need 13 octets, have 12"),
        (parse_temperature_measurement, "00 6D 01 00 FF 00",
         "Temperature Measurement: 1 trailing octet(s) after the last field the flags announce"),
        (parse_temperature_measurement, "02 6D 01 00 FF E8 07 01 02 18 00 00",
         "Temperature Measurement: Time Stamp has out-of-range hours"),
        (parse_temperature_measurement, "02 6D 01 00 FF E8 07 02 1E 00 00 00", "Temperature Measurement: Time Stamp is not a calendar date"),
        (parse_intermediate_temperature, "00 6D 01 00", "Intermediate Temperature: flags 0x00 need 5 octets, have 4"),
        (parse_intermediate_temperature, "", "Intermediate Temperature: empty value"),
        (parse_intermediate_temperature, "00 6D 01 00 FF 00 00",
         "Intermediate Temperature: 2 trailing octet(s) after the last field the flags announce"),
        (parse_temperature_type, "", "Temperature Type: empty value"),
        (parse_temperature_type, "03 00", "Temperature Type: value must be exactly 1 octet, have 2"),  # as Nordic rejects it
    ],
)  # fmt: skip
def test_temperature_rejections_name_the_problem(parse: object, vector: str, message: str) -> None:
    assert callable(parse)
    with pytest.raises(GattParseError) as caught:
        parse(octets(vector))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("01", TemperatureTypeValue(1, TemperatureType.ARMPIT)),
        ("02", TemperatureTypeValue(2, TemperatureType.BODY)),
        ("09", TemperatureTypeValue(9, TemperatureType.TYMPANUM)),
        ("00", TemperatureTypeValue(0, None)),  # RFU
        ("0A", TemperatureTypeValue(10, None)),  # RFU
        ("FF", TemperatureTypeValue(255, None)),  # RFU
    ],
)
def test_temperature_type_characteristic(vector: str, expected: TemperatureTypeValue) -> None:
    assert parse_temperature_type(octets(vector)) == expected


def test_fahrenheit_is_converted_to_celsius_keeping_the_original() -> None:  # V-HTM-D1
    readings = readings_from_temperature(parse_temperature_measurement(octets("01 DA 03 00 FF")), CONTEXT)
    (observation,) = observations(readings)
    assert [c["code"] for c in observation["code"]["coding"]] == ["8310-5", "150364"]
    quantity = observation["valueQuantity"]
    assert (quantity["value"], quantity["code"]) == (37.0, "Cel")
    assert quantity["extension"][0]["valueQuantity"] == {"value": 98.6, "unit": "[degF]"}
    (mapped,), _ = MAPPER.map_batch([MappingInput(readings[0], WHO, RECEIVED, "ble")])
    assert b'"value":37.0,' in mapped.resource  # three significant digits, as sent
    assert observation["effectiveDateTime"] == RECEIVED.isoformat()  # no time stamp: reception time


def test_celsius_with_a_time_stamp() -> None:
    (reading,) = readings_from_temperature(parse_temperature_measurement(octets("02 6D 01 00 FF E8 07 01 02 03 04 05")), CONTEXT)
    assert (reading.device_time, reading.index, reading.site) == ("2024-01-02T03:04:05", 0, None)
    (observation,) = observations([reading])
    assert observation["effectiveDateTime"] == "2024-01-02T03:04:05+00:00"
    assert observation["valueQuantity"]["value"] == 36.5


def test_an_unknown_date_falls_back_to_reception_time() -> None:
    parsed = parse_temperature_measurement(octets("02 6D 01 00 FF 00 00 00 0C 00 00 00"))
    (reading,) = readings_from_temperature(parsed, CONTEXT)
    assert (reading.time, reading.device_time) == (RECEIVED, None)


def test_general_body_type_has_no_site() -> None:  # V-HTM-D7: type 2 -> MDC 150364, no site
    (reading,) = readings_from_temperature(parse_temperature_measurement(octets("04 6D 01 00 FF 02")), CONTEXT)
    assert reading.site is None
    (observation,) = observations([reading])
    assert [c["code"] for c in observation["code"]["coding"]] == ["8310-5", "150364"]


@pytest.mark.parametrize(
    ("type_octet", "site", "codes"),
    [
        ("01", "axillary", ["8310-5", "8328-7", "188452"]),
        ("03", "ear", ["8310-5", "76011-6", "188428"]),
        ("04", "finger", ["8310-5", "188432"]),
        ("05", "gi_tract", ["8310-5", "188456"]),
        ("06", "oral", ["8310-5", "8331-1", "188424"]),
        ("07", "rectal", ["8310-5", "8332-9", "188420"]),
        ("08", "toe", ["8310-5", "188448"]),
        ("09", "tympanic", ["8310-5", "150392"]),
        ("00", None, ["8310-5", "150364"]),  # RFU: no site, never a guessed one
        ("0A", None, ["8310-5", "150364"]),
    ],
)
def test_temperature_type_becomes_the_site(type_octet: str, site: str | None, codes: list[str]) -> None:
    (reading,) = readings_from_temperature(parse_temperature_measurement(octets(f"04 6D 01 00 FF {type_octet}")), CONTEXT)
    assert reading.site == site
    (observation,) = observations([reading])
    assert [c["code"] for c in observation["code"]["coding"]] == codes


@pytest.mark.parametrize(
    ("vector", "reason"),
    [
        ("00 FF FF 7F 00", "not-a-number"),  # V-HTM-D3
        ("00 00 00 80 00", "error"),  # V-HTM-D4
        ("00 FE FF 7F 00", "positive-infinity"),  # V-HTM-D5
        ("00 02 00 80 00", "negative-infinity"),  # V-HTM-D6
    ],
)
def test_special_values_become_data_absent(vector: str, reason: str) -> None:
    (reading,) = readings_from_temperature(parse_temperature_measurement(octets(vector)), CONTEXT)
    assert (reading.quantity, reading.absent) == (None, AbsentReason(reason))
    (observation,) = observations([reading])
    assert observation["dataAbsentReason"]["coding"][0]["code"] == reason
    assert "valueQuantity" not in observation


def test_characteristic_rows() -> None:
    assert [(row.uuid16, row.name, row.to_readings is not None) for row in CHARACTERISTICS] == [
        (0x2A1C, "Temperature Measurement", True),
        (0x2A1D, "Temperature Type", False),
        (0x2A1E, "Intermediate Temperature", False),
    ]


test_temperature_measurement_fuzz = fuzz(parse_temperature_measurement)
test_intermediate_temperature_fuzz = fuzz(parse_intermediate_temperature)
test_temperature_type_fuzz = fuzz(parse_temperature_type)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 255), st.binary(min_size=4, max_size=4), st.integers(0, 255))
def test_temperature_readings_fuzz(flags: int, value: bytes, type_octet: int) -> None:
    data = bytes([flags & 0xFD]) + value + (bytes([type_octet]) if flags & 0x04 else b"")
    (reading,) = readings_from_temperature(parse_temperature_measurement(data), CONTEXT)
    assert (reading.quantity is None) == (reading.absent is not None)
