"""Heart Rate Measurement and Body Sensor Location: spec vectors, readings, FHIR, fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.ble.heart_rate import (
    CHARACTERISTICS,
    BodySensorLocation,
    HeartRateMeasurement,
    SensorContact,
    SensorLocation,
    parse_body_sensor_location,
    parse_heart_rate_measurement,
    readings_from_heart_rate,
    rr_seconds,
)
from device_adapters.ble.octets import GattParseError
from tests.ble_support import CONTEXT, RECEIVED, fuzz, observations, octets


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("16 3C 00 04 20 03",  # V-HRM-D1: contact detected, RR [1024, 800]
         HeartRateMeasurement(60, SensorContact.DETECTED, None, (1024, 800), (Decimal(1), Decimal("0.78125")))),
        ("08 48 FF FF",  # V-HRM-D2: Energy Expended saturated at 0xFFFF
         HeartRateMeasurement(72, SensorContact.NOT_SUPPORTED, 65535)),
        ("00 48", HeartRateMeasurement(72, SensorContact.NOT_SUPPORTED)),
        ("02 48", HeartRateMeasurement(72, SensorContact.NOT_SUPPORTED)),  # contact status 1 also means "not supported"
        ("04 00", HeartRateMeasurement(0, SensorContact.NOT_DETECTED)),
        ("01 2C 01", HeartRateMeasurement(300, SensorContact.NOT_SUPPORTED)),  # uint16 value
        ("1F 48 00 10 00 CC 01 00 04",  # every flag: uint16, contact detected, energy, two RR
         HeartRateMeasurement(72, SensorContact.DETECTED, 16, (460, 1024), (Decimal("0.44921875"), Decimal(1)))),
        ("E6 48", HeartRateMeasurement(72, SensorContact.DETECTED)),  # RFU bits 5-7 are ignored
        ("10 48 FF FF 00 00",  # extreme RR values, oldest first
         HeartRateMeasurement(72, SensorContact.NOT_SUPPORTED, None, (65535, 0), (Decimal("63.9990234375"), Decimal(0)))),
        ("10 48" + " 00 04" * 12,  # 26 octets: no 20-octet (ATT_MTU 23) cap, that is a link property, not the format's
         HeartRateMeasurement(72, SensorContact.NOT_SUPPORTED, None, (1024,) * 12, (Decimal(1),) * 12)),
    ],
)  # fmt: skip
def test_heart_rate_vectors(vector: str, expected: HeartRateMeasurement) -> None:
    parsed = parse_heart_rate_measurement(octets(vector))
    assert parsed == expected
    assert repr(parsed) == repr(expected)  # Decimal precision too


def test_rr_seconds_are_exact() -> None:
    assert str(rr_seconds(460)) == "0.44921875"  # not the truncated 449 ms
    assert str(rr_seconds(1024)) == "1"
    assert str(rr_seconds(1)) == "0.0009765625"


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("10 48 00 04 01", "Heart Rate Measurement: RR-Interval list has an odd length (3 octets)"),  # V-HRM-D3
        ("10 48", "Heart Rate Measurement: flags 0x10 need 4 octets, have 2"),  # V-HRM-D4
        ("11 48 00 04", "Heart Rate Measurement: flags 0x11 need 5 octets, have 4"),  # digest 4.1: uint16 HR + 1 RR octet
        ("11 48 00 04 00 01", "Heart Rate Measurement: RR-Interval list has an odd length (3 octets)"),
        ("", "Heart Rate Measurement: empty value"),
        ("00", "Heart Rate Measurement: flags 0x00 need 2 octets, have 1"),
        ("01 48", "Heart Rate Measurement: flags 0x01 need 3 octets, have 2"),
        ("08 48 FF", "Heart Rate Measurement: flags 0x08 need 4 octets, have 3"),
        ("00 48 00", "Heart Rate Measurement: 1 trailing octet(s) after the last field the flags announce"),
        ("08 48 FF FF 00 04", "Heart Rate Measurement: 2 trailing octet(s) after the last field the flags announce"),
    ],
)
def test_heart_rate_rejections_name_the_problem(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_heart_rate_measurement(octets(vector))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("vector", "expected"),
    [
        ("00", BodySensorLocation(0, SensorLocation.OTHER)),
        ("01", BodySensorLocation(1, SensorLocation.CHEST)),
        ("02", BodySensorLocation(2, SensorLocation.WRIST)),
        ("05", BodySensorLocation(5, SensorLocation.EAR_LOBE)),
        ("06", BodySensorLocation(6, SensorLocation.FOOT)),
        ("07", BodySensorLocation(7, None)),  # RFU: kept raw, mapped to nothing
        ("FF", BodySensorLocation(255, None)),
    ],
)
def test_body_sensor_location(vector: str, expected: BodySensorLocation) -> None:
    assert parse_body_sensor_location(octets(vector)) == expected


@pytest.mark.parametrize(
    ("vector", "message"),
    [("", "Body Sensor Location: empty value"), ("01 00", "Body Sensor Location: value must be exactly 1 octet, have 2")],
)
def test_body_sensor_location_rejections(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_body_sensor_location(octets(vector))
    assert str(caught.value).startswith(message)


def test_heart_rate_to_fhir_at_reception_time_without_rr_or_energy() -> None:
    readings = readings_from_heart_rate(parse_heart_rate_measurement(octets("1F 48 00 10 00 CC 01 00 04")), CONTEXT)
    assert len(readings) == 1  # RR intervals and Energy Expended are decoded, not emitted
    (reading,) = readings
    assert (reading.kind, reading.index, reading.time, reading.device_time, reading.user) == (
        "heart_rate",
        0,
        RECEIVED,
        None,
        None,
    )
    (observation,) = observations(readings)
    assert [c["code"] for c in observation["code"]["coding"]] == ["8867-4", "147842"]
    assert observation["valueQuantity"] == {
        "value": 72,
        "unit": "beats/minute",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert observation["effectiveDateTime"] == RECEIVED.isoformat()


def test_heart_rate_without_skin_contact_is_not_a_reading() -> None:
    assert readings_from_heart_rate(parse_heart_rate_measurement(octets("04 00")), CONTEXT) == []
    (observation,) = observations(readings_from_heart_rate(parse_heart_rate_measurement(octets("16 3C 00 04 20 03")), CONTEXT))
    assert observation["valueQuantity"]["value"] == 60


def test_characteristic_rows() -> None:
    assert [(row.uuid16, row.name, row.to_readings is not None) for row in CHARACTERISTICS] == [
        (0x2A37, "Heart Rate Measurement", True),
        (0x2A38, "Body Sensor Location", False),
    ]
    assert CHARACTERISTICS[0].uuid == "00002a37-0000-1000-8000-00805f9b34fb"


test_heart_rate_fuzz = fuzz(parse_heart_rate_measurement)
test_body_sensor_location_fuzz = fuzz(parse_body_sensor_location)


@settings(max_examples=2000, deadline=None)
@given(st.binary(min_size=1, max_size=30))
def test_heart_rate_readings_fuzz(data: bytes) -> None:
    try:
        parsed = parse_heart_rate_measurement(data)
    except GattParseError:
        return
    assert len(parsed.rr_intervals) == len(parsed.rr_intervals_raw)
    readings = readings_from_heart_rate(parsed, CONTEXT)
    assert len(readings) == (parsed.sensor_contact is not SensorContact.NOT_DETECTED)
