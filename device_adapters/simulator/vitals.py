"""Plausible vitals for simulated patients (pure: no I/O, seeded randomness).

Each patient has a baseline; each device kind reports some of that patient's vitals at its own
cadence, drifting a little around the baseline like real measurements do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from device_adapters.readings import Quantity, Reading


@dataclass(frozen=True, slots=True)
class Vital:
    """A simulated measurement; a compound one (blood pressure) has ``components`` instead."""

    kind: str
    unit: str
    baseline: float = 0.0
    spread: float = 0.0
    places: int = 0
    components: tuple[Vital, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """What a kind of device measures and how often (every ``every`` ticks)."""

    name: str
    display: str
    vitals: tuple[Vital, ...]
    every: int


PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile(
        "watch",
        "Smart watch",
        (
            Vital("heart_rate", "/min", 72, 6, 0),
            Vital("spo2", "%", 97, 1, 0),
            Vital("respiratory_rate", "/min", 15, 1.5, 0),
        ),
        every=1,
    ),
    DeviceProfile(
        "cuff",
        "Blood pressure monitor",
        (
            Vital(
                "blood_pressure",
                "mm[Hg]",
                components=(Vital("systolic", "mm[Hg]", 122, 7, 0), Vital("diastolic", "mm[Hg]", 79, 5, 0)),
            ),
            Vital("pulse_rate", "/min", 70, 5, 0),
        ),
        every=10,
    ),
    DeviceProfile("thermometer", "Thermometer", (Vital("body_temperature", "Cel", 36.8, 0.2, 1),), every=15),
    DeviceProfile("scale", "Weight scale", (Vital("body_weight", "kg", 78, 0.3, 1),), every=30),
)


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    device_id: str
    profile: DeviceProfile


class VitalsSimulator:
    """One patient's devices; :meth:`tick` returns what each device reports now."""

    def __init__(self, patient_seed: int, devices: tuple[SimulatedDevice, ...]) -> None:
        self._random = random.Random(patient_seed)  # noqa: S311 - simulated vitals, not security
        self._shift = self._random.uniform(-1, 1)
        self._devices = devices
        self._ticks = 0

    def _value(self, vital: Vital) -> Decimal:
        value = vital.baseline + vital.spread * (self._shift + self._random.gauss(0, 0.5))
        return Decimal(round(value)) if vital.places == 0 else Decimal(str(round(value, vital.places)))

    def tick(self, now: datetime) -> list[tuple[str, list[Reading]]]:
        """Readings per device for this tick; every device reports on the first tick."""
        due = [device for device in self._devices if self._ticks % device.profile.every == 0]
        self._ticks += 1
        return [
            (device.device_id, [self._reading(device.device_id, vital, now) for vital in device.profile.vitals]) for device in due
        ]

    def _reading(self, device_id: str, vital: Vital, now: datetime) -> Reading:
        if vital.components:
            components = tuple((part.kind, Quantity(self._value(part), part.unit)) for part in vital.components)
            return Reading(device_id, vital.kind, now, components=components)
        return Reading(device_id, vital.kind, now, quantity=Quantity(self._value(vital), vital.unit))
