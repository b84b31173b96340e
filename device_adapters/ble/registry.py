"""Every supported characteristic, by 16-bit UUID: the table the decoder and the CLI look up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from device_adapters.ble import (
    battery,
    blood_pressure,
    body_composition,
    cgm,
    clock,
    glucose,
    heart_rate,
    pulse_oximeter,
    racp,
    thermometer,
    weight,
)
from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.octets import GattParseError

_MODULES = (blood_pressure, heart_rate, thermometer, weight, body_composition, pulse_oximeter, glucose, cgm, battery, clock, racp)

CHARACTERISTICS: Mapping[int, Characteristic] = MappingProxyType({
    characteristic.uuid16: characteristic for module in _MODULES for characteristic in module.CHARACTERISTICS
})  # fmt: skip

_SIG_BASE = re.compile(r"0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb")
_SHORT = re.compile(r"(?:0x)?([0-9a-f]{4})")


def uuid16(text: str) -> int:
    """``2A35``, ``0x2a35`` or the 128-bit SIG form -> 0x2A35."""
    lowered = text.strip().lower()
    match = _SHORT.fullmatch(lowered) or _SIG_BASE.fullmatch(lowered)
    if match is None:
        raise GattParseError("characteristic UUID", f"{text!r} is not a 16-bit UUID (2A35) or its 128-bit Bluetooth SIG form")
    return int(match.group(1), 16)


def characteristic_for(text: str) -> Characteristic:
    number = uuid16(text)
    characteristic = CHARACTERISTICS.get(number)
    if characteristic is None:
        raise GattParseError("characteristic UUID", f"0x{number:04X} is not a characteristic PulseBridge decodes")
    return characteristic
