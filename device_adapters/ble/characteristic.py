"""The shape every GATT characteristic module exports: a row of the characteristic table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_adapters.ble.context import BleContext
from device_adapters.readings import Reading


@dataclass(frozen=True, slots=True)
class Characteristic:
    """One Bluetooth SIG characteristic: how to parse it and, for measurements, how it becomes readings."""

    uuid16: int
    name: str
    parse: Callable[[bytes], Any]
    """bytes -> a frozen dataclass; raises :class:`~device_adapters.ble.octets.GattParseError`."""
    to_readings: Callable[[Any, BleContext], list[Reading]] | None = None
    """None for values that are not measurements (features, time, control points, intermediate values)."""

    @property
    def uuid(self) -> str:
        return f"0000{self.uuid16:04x}-0000-1000-8000-00805f9b34fb"
