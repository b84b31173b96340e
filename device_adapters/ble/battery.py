"""Battery Level (0x2A19): one uint8, 0-100 %.

101-255 are reserved; like the public suites (Nordic, blevalueparser; spec 2.9) we reject them
rather than report a battery above 100 %. The value has no timestamp: the reading takes the
reception time. It is a reading about the device (MDC_ATTR_VAL_BATT_CHARGE), not the patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.octets import OctetReader
from device_adapters.readings import Quantity, Reading

BATTERY_LEVEL = "Battery Level"
FULL = 100


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    percent: int


def parse_battery_level(data: bytes) -> BatteryLevel:
    reader = OctetReader(BATTERY_LEVEL, data)
    if not data:
        raise reader.error("empty value")
    level = reader.u8(BATTERY_LEVEL)
    reader.finish()
    if level > FULL:
        raise reader.error(f"level {level} is above 100 % (101-255 are reserved)")
    return BatteryLevel(level)


def readings_from_battery_level(level: BatteryLevel, context: BleContext) -> list[Reading]:
    time, device_time = context.time_of(None)
    return [
        Reading(context.device_id, "battery_level", time, quantity=Quantity(Decimal(level.percent), "%"), device_time=device_time)
    ]


CHARACTERISTICS = (Characteristic(0x2A19, BATTERY_LEVEL, parse_battery_level, readings_from_battery_level),)
