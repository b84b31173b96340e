"""Battery Level: vectors, rejections, the device reading through FHIR, fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from device_adapters.ble.battery import BatteryLevel, parse_battery_level, readings_from_battery_level
from device_adapters.ble.octets import GattParseError
from device_adapters.readings import Quantity
from tests.ble_support import CONTEXT, RECEIVED, fuzz, observations, octets


@pytest.mark.parametrize(("vector", "expected"), [("00", BatteryLevel(0)), ("32", BatteryLevel(50)), ("64", BatteryLevel(100))])
def test_battery_level_vectors(vector: str, expected: BatteryLevel) -> None:
    assert parse_battery_level(octets(vector)) == expected


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ("", "Battery Level: empty value"),
        ("65", "Battery Level: level 101 is above 100 % (101-255 are reserved)"),
        ("FF", "Battery Level: level 255 is above 100 %"),
        ("32 00", "Battery Level: 1 trailing octet(s) after the last field"),
    ],
)
def test_rejections_name_the_problem(vector: str, message: str) -> None:
    with pytest.raises(GattParseError) as caught:
        parse_battery_level(octets(vector))
    assert str(caught.value).startswith(message)


def test_battery_level_is_a_device_reading_at_reception_time() -> None:
    (reading,) = readings_from_battery_level(parse_battery_level(octets("32")), CONTEXT)
    assert (reading.kind, reading.quantity, reading.time, reading.device_time, reading.index) == (
        "battery_level", Quantity(Decimal(50), "%"), RECEIVED, None, 0,
    )  # fmt: skip
    (observation,) = observations([reading])
    assert observation["code"]["coding"][0]["code"] == "67996"
    assert (observation["valueQuantity"]["value"], observation["valueQuantity"]["code"]) == (50, "%")
    assert observation["effectiveDateTime"] == RECEIVED.isoformat()


test_battery_level_fuzz = fuzz(parse_battery_level)
