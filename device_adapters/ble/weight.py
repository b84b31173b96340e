"""Weight Measurement (0x2A9D) and Weight Scale Feature (0x2A9E).

Layout (spec digest 2.4): flags u8 | Weight u16 | [Time Stamp 7] (bit1) | [User ID u8] (bit2) |
[BMI u16, Height u16] (bit3, both or neither). Bit0 selects imperial units; bits 4-7 are RFU and
ignored (real scales use bit4 for vendor signals). Resolutions are fixed by the format: weight
0.005 kg or 0.01 lb, BMI 0.1 kg/m2, height 0.001 m or 0.1 in. The Feature's resolution fields
say how coarse the scale is; they never change how the fields are encoded (digest 2.4, 5.7).

Weight 0xFFFF is "Measurement Unsuccessful"; the Weight Scale Service allows only Time Stamp
and User ID beside it, so a value that also carries BMI and Height is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from types import MappingProxyType
from typing import Literal

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.octets import BleDateTime, OctetReader, bits_set, require_length
from device_adapters.errors import IdentityError, ReasonCode
from device_adapters.readings import AbsentReason, Quantity, Reading

WEIGHT_MEASUREMENT = "Weight Measurement"
WEIGHT_SCALE_FEATURE = "Weight Scale Feature"
UNKNOWN_USER = 0xFF
MEASUREMENT_UNSUCCESSFUL = 0xFFFF
"""The raw uint16 a weight or body fat field carries when the device could not measure."""

MassUnit = Literal["kg", "[lb_av]"]
LengthUnit = Literal["m", "[in_i]"]

MASS_STEP: Mapping[MassUnit, Decimal] = MappingProxyType({"kg": Decimal("0.005"), "[lb_av]": Decimal("0.01")})
LENGTH_STEP: Mapping[LengthUnit, Decimal] = MappingProxyType({"m": Decimal("0.001"), "[in_i]": Decimal("0.1")})
BMI_STEP = Decimal("0.1")
FEATURE_OCTETS = 4
_EXACT = Context(prec=34)
"""Wide enough that a u16 times any step above is exact, whatever the caller's context."""


def scaled(raw: int, step: Decimal) -> Decimal:
    """A fixed-point field as an exact Decimal keeping the format's resolution (14000 x 0.005 = 70.000)."""
    return _EXACT.multiply(Decimal(raw), step)


def mass_unit(flags: int) -> MassUnit:
    return "[lb_av]" if flags & 0x01 else "kg"


def length_unit(unit: MassUnit) -> LengthUnit:
    return "[in_i]" if unit == "[lb_av]" else "m"


@dataclass(frozen=True, slots=True)
class Resolution:
    """One value of a Feature resolution field: the step in SI units (kg or m) and in imperial ones (lb or in)."""

    si: Decimal
    imperial: Decimal


def _resolutions(*steps: tuple[str, str]) -> Mapping[int, Resolution]:
    return MappingProxyType({code: Resolution(Decimal(si), Decimal(imperial)) for code, (si, imperial) in enumerate(steps, 1)})


MASS_RESOLUTIONS = _resolutions(("0.5", "1"), ("0.2", "0.5"), ("0.1", "0.2"), ("0.05", "0.1"), ("0.02", "0.05"),
                                ("0.01", "0.02"), ("0.005", "0.01"))  # fmt: skip
"""Weight (WSS) and mass (BCS) resolution field: 0 is "not specified", 8-15 are RFU (both: no resolution)."""
HEIGHT_RESOLUTIONS = _resolutions(("0.01", "1"), ("0.005", "0.5"), ("0.001", "0.1"))
"""Height resolution field: 0 is "not specified", 4-7 are RFU (both: no resolution)."""

_FEATURE_BITS = {0: "time-stamp", 1: "multiple-users", 2: "bmi"}


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    weight: Decimal | AbsentReason
    """AbsentReason.ERROR for "Measurement Unsuccessful" (0xFFFF), never 327.675 kg."""
    unit: MassUnit
    timestamp: BleDateTime | None = None
    user_id: int | None = None
    bmi: Decimal | None = None
    """kg/m2."""
    height: Decimal | None = None
    """In :attr:`height_unit`; present exactly when ``bmi`` is."""

    @property
    def height_unit(self) -> LengthUnit:
        return length_unit(self.unit)


@dataclass(frozen=True, slots=True)
class WeightScaleFeature:
    raw: int
    supported: frozenset[str]
    """``time-stamp``, ``multiple-users``, ``bmi``."""
    weight_resolution_raw: int
    weight_resolution: Resolution | None
    """None when not specified (0) or RFU."""
    height_resolution_raw: int
    height_resolution: Resolution | None


def parse_weight_measurement(data: bytes) -> WeightMeasurement:
    reader = OctetReader(WEIGHT_MEASUREMENT, data)
    if not data:
        raise reader.error("empty value")
    flags = data[0]
    stamped, user, body = bool(flags & 0x02), bool(flags & 0x04), bool(flags & 0x08)
    require_length(WEIGHT_MEASUREMENT, data, flags, [(True, 3), (stamped, 7), (user, 1), (body, 4)])
    reader.u8("Flags")
    raw_weight = reader.u16("Weight")
    timestamp = reader.date_time() if stamped else None
    user_id = reader.u8("User ID") if user else None
    unit = mass_unit(flags)
    bmi = height = None
    if body:
        bmi, height = scaled(reader.u16("BMI"), BMI_STEP), scaled(reader.u16("Height"), LENGTH_STEP[length_unit(unit)])
    reader.finish()
    if raw_weight == MEASUREMENT_UNSUCCESSFUL:
        if body:
            raise reader.error(
                f"Measurement Unsuccessful (weight 0xFFFF) with BMI and Height (flags 0x{flags:02X}); "
                "only Time Stamp and User ID may accompany it"
            )
        return WeightMeasurement(AbsentReason.ERROR, unit, timestamp, user_id)
    return WeightMeasurement(scaled(raw_weight, MASS_STEP[unit]), unit, timestamp, user_id, bmi, height)


def parse_feature(name: str, data: bytes) -> int:
    """A uint32 feature bit field, exactly 4 octets (shared with Body Composition Feature)."""
    reader = OctetReader(name, data)
    if not data:
        raise reader.error("empty value")
    if len(data) != FEATURE_OCTETS:
        raise reader.error(f"value must be exactly {FEATURE_OCTETS} octets, have {len(data)}")
    return reader.u32("Feature")


def parse_weight_scale_feature(data: bytes) -> WeightScaleFeature:
    raw = parse_feature(WEIGHT_SCALE_FEATURE, data)
    weight_resolution, height_resolution = raw >> 3 & 0xF, raw >> 7 & 0x7
    return WeightScaleFeature(
        raw, bits_set(raw, _FEATURE_BITS), weight_resolution, MASS_RESOLUTIONS.get(weight_resolution),
        height_resolution, HEIGHT_RESOLUTIONS.get(height_resolution),
    )  # fmt: skip


def unattributed(characteristic: str) -> IdentityError:
    return IdentityError(ReasonCode.UNPAIRED_DEVICE, f"{characteristic} from user 255 (unknown user) is not attributed")


def value_reading(
    context: BleContext, kind: str, value: Decimal | AbsentReason, unit: str, *, time_stamp: BleDateTime | None,
    index: int, user: int | None,
) -> Reading:  # fmt: skip
    """One simple reading: a quantity, or the absent reason in its place."""
    time, device_time = context.time_of(time_stamp)
    return Reading(
        context.device_id, kind, time,
        quantity=Quantity(value, unit) if isinstance(value, Decimal) else None,
        absent=None if isinstance(value, Decimal) else value,
        index=index, device_time=device_time, user=user,
    )  # fmt: skip


def readings_from_weight(measurement: WeightMeasurement, context: BleContext) -> list[Reading]:
    """Body weight (absent ``error`` when unsuccessful), then BMI and body height when sent."""
    if measurement.user_id == UNKNOWN_USER:
        raise unattributed(WEIGHT_MEASUREMENT)
    fields: list[tuple[str, Decimal | AbsentReason, str]] = [("body_weight", measurement.weight, measurement.unit)]
    if measurement.bmi is not None and measurement.height is not None:
        fields += [("bmi", measurement.bmi, "kg/m2"), ("body_height", measurement.height, measurement.height_unit)]
    return [
        value_reading(context, kind, value, unit, time_stamp=measurement.timestamp, index=index, user=measurement.user_id)
        for index, (kind, value, unit) in enumerate(fields)
    ]


CHARACTERISTICS = (
    Characteristic(0x2A9D, WEIGHT_MEASUREMENT, parse_weight_measurement, readings_from_weight),
    Characteristic(0x2A9E, WEIGHT_SCALE_FEATURE, parse_weight_scale_feature),  # device description, not a measurement
)
