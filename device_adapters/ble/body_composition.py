"""Body Composition Measurement (0x2A9C) and Body Composition Feature (0x2A9B).

Layout (spec digest 2.5): flags u16 | Body Fat Percentage u16 (0.1 %) | [Time Stamp 7] (bit1) |
[User ID u8] (bit2) | [Basal Metabolism u16 kJ] (bit3) | [Muscle Percentage u16 0.1 %] (bit4) |
[Muscle Mass] (bit5) | [Fat Free Mass] (bit6) | [Soft Lean Mass] (bit7) | [Body Water Mass] (bit8) |
[Impedance u16 0.1 Ohm] (bit9) | [Weight] (bit10) | [Height] (bit11). Masses are 0.005 kg or
0.01 lb and height 0.001 m or 0.1 in, by bit0, as in Weight Measurement. Bit12 marks one packet
of a measurement split over several indications; bits 13-15 are RFU and ignored.

Impedance is 0.1 Ohm: the Supplement's "M = 1, d = -2" contradicts its own text and the XML
(digest 5.6). Body fat 0xFFFF is "Measurement Unsuccessful"; unlike the Weight Scale rule, that
only Time Stamp and User ID may accompany it is not verified for this service (digest 5.8), so
the other flagged fields are still decoded (the length must match the flags) but never emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.octets import BleDateTime, OctetReader, bits_set, require_length
from device_adapters.ble.weight import (
    HEIGHT_RESOLUTIONS,
    LENGTH_STEP,
    MASS_RESOLUTIONS,
    MASS_STEP,
    MEASUREMENT_UNSUCCESSFUL,
    UNKNOWN_USER,
    LengthUnit,
    MassUnit,
    Resolution,
    length_unit,
    mass_unit,
    parse_feature,
    scaled,
    unattributed,
    value_reading,
)
from device_adapters.readings import AbsentReason, Reading

BODY_COMPOSITION_MEASUREMENT = "Body Composition Measurement"
BODY_COMPOSITION_FEATURE = "Body Composition Feature"
PERCENT_STEP = Decimal("0.1")
IMPEDANCE_STEP = Decimal("0.1")

_FEATURE_BITS = dict(enumerate((
    "time-stamp", "multiple-users", "basal-metabolism", "muscle-percentage", "muscle-mass", "fat-free-mass", "soft-lean-mass",
    "body-water-mass", "impedance", "weight", "height",
)))  # fmt: skip


@dataclass(frozen=True, slots=True)
class BodyCompositionMeasurement:
    body_fat: Decimal | AbsentReason
    """Percent; AbsentReason.ERROR for "Measurement Unsuccessful" (0xFFFF)."""
    unit: MassUnit
    """Unit of every mass field (bit0); heights are in :attr:`height_unit`."""
    timestamp: BleDateTime | None = None
    user_id: int | None = None
    basal_metabolism: Decimal | None = None
    """kJ."""
    muscle_percentage: Decimal | None = None
    muscle_mass: Decimal | None = None
    fat_free_mass: Decimal | None = None
    soft_lean_mass: Decimal | None = None
    body_water_mass: Decimal | None = None
    impedance: Decimal | None = None
    """Ohm."""
    weight: Decimal | None = None
    height: Decimal | None = None
    multiple_packet: bool = False
    """Bit12: this value is one packet of a measurement split over several indications."""

    @property
    def height_unit(self) -> LengthUnit:
        return length_unit(self.unit)


@dataclass(frozen=True, slots=True)
class BodyCompositionFeature:
    raw: int
    supported: frozenset[str]
    mass_resolution_raw: int
    mass_resolution: Resolution | None
    """None when not specified (0) or RFU."""
    height_resolution_raw: int
    height_resolution: Resolution | None


def parse_body_composition_measurement(data: bytes) -> BodyCompositionMeasurement:
    reader = OctetReader(BODY_COMPOSITION_MEASUREMENT, data)
    if not data:
        raise reader.error("empty value")
    flags = reader.u16("Flags")
    bit = [bool(flags >> n & 1) for n in range(16)]
    # Flags and body fat, time stamp, user id, then bits 3-11 each announce one uint16.
    sizes = [(True, 4), (bit[1], 7), (bit[2], 1), *((bit[n], 2) for n in range(3, 12))]
    require_length(BODY_COMPOSITION_MEASUREMENT, data, flags, sizes, flag_width=4)
    unit = mass_unit(flags)
    mass, length = MASS_STEP[unit], LENGTH_STEP[length_unit(unit)]
    raw_fat = reader.u16("Body Fat Percentage")
    timestamp = reader.date_time() if bit[1] else None
    user_id = reader.u8("User ID") if bit[2] else None

    def field(n: int, what: str, step: Decimal) -> Decimal | None:
        return scaled(reader.u16(what), step) if bit[n] else None

    measurement = BodyCompositionMeasurement(
        AbsentReason.ERROR if raw_fat == MEASUREMENT_UNSUCCESSFUL else scaled(raw_fat, PERCENT_STEP), unit, timestamp, user_id,
        basal_metabolism=field(3, "Basal Metabolism", Decimal(1)),
        muscle_percentage=field(4, "Muscle Percentage", PERCENT_STEP),
        muscle_mass=field(5, "Muscle Mass", mass),
        fat_free_mass=field(6, "Fat Free Mass", mass),
        soft_lean_mass=field(7, "Soft Lean Mass", mass),
        body_water_mass=field(8, "Body Water Mass", mass),
        impedance=field(9, "Impedance", IMPEDANCE_STEP),
        weight=field(10, "Weight", mass),
        height=field(11, "Height", length),
        multiple_packet=bit[12],
    )  # fmt: skip
    reader.finish()
    return measurement


def parse_body_composition_feature(data: bytes) -> BodyCompositionFeature:
    raw = parse_feature(BODY_COMPOSITION_FEATURE, data)
    mass_resolution, height_resolution = raw >> 11 & 0xF, raw >> 15 & 0x7
    return BodyCompositionFeature(
        raw, bits_set(raw, _FEATURE_BITS), mass_resolution, MASS_RESOLUTIONS.get(mass_resolution),
        height_resolution, HEIGHT_RESOLUTIONS.get(height_resolution),
    )  # fmt: skip


def readings_from_body_composition(measurement: BodyCompositionMeasurement, context: BleContext) -> list[Reading]:
    """One reading per field present, in field order, starting with body fat.

    One packet of a multiple-packet measurement yields nothing: the parts must be merged into one
    measurement first (the same time stamp and user arrive with each part), which needs state
    across indications that this pure converter does not keep; emitting each part alone would store
    a half measurement. An unsuccessful measurement yields body fat ``error`` only: whatever else
    the device flagged beside it is not trusted.
    """
    if measurement.multiple_packet:
        return []
    if measurement.user_id == UNKNOWN_USER:
        raise unattributed(BODY_COMPOSITION_MEASUREMENT)
    m, mass = measurement, measurement.unit
    fields: list[tuple[str, Decimal | AbsentReason | None, str]] = [("body_fat", m.body_fat, "%")]
    if not isinstance(m.body_fat, AbsentReason):
        fields += [
            ("basal_metabolism", m.basal_metabolism, "kJ"), ("muscle_percentage", m.muscle_percentage, "%"),
            ("muscle_mass", m.muscle_mass, mass), ("fat_free_mass", m.fat_free_mass, mass),
            ("soft_lean_mass", m.soft_lean_mass, mass), ("body_water_mass", m.body_water_mass, mass),
            ("body_impedance", m.impedance, "Ohm"), ("body_weight", m.weight, mass), ("body_height", m.height, m.height_unit),
        ]  # fmt: skip
    present = [(kind, value, unit) for kind, value, unit in fields if value is not None]
    return [
        value_reading(context, kind, value, unit, time_stamp=m.timestamp, index=index, user=m.user_id)
        for index, (kind, value, unit) in enumerate(present)
    ]


CHARACTERISTICS = (
    Characteristic(0x2A9C, BODY_COMPOSITION_MEASUREMENT, parse_body_composition_measurement, readings_from_body_composition),
    Characteristic(0x2A9B, BODY_COMPOSITION_FEATURE, parse_body_composition_feature),  # device description, not a measurement
)
