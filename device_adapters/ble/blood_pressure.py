"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).

Layout (spec digest 2.2): flags u8 | systolic, diastolic, MAP SFLOAT | [Time Stamp 7] (bit1) |
[Pulse Rate SFLOAT] (bit2) | [User ID u8] (bit3) | [Measurement Status u16] (bit4).
Bit0 selects kPa instead of mmHg. Intermediate Cuff Pressure shares the layout; its diastolic
and MAP are unused (NaN or zero) and ignored, and it is never stored as a reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.ieee11073 import MedicalNumber
from device_adapters.ble.octets import BleDateTime, OctetReader, bits_set, require_length
from device_adapters.errors import IdentityError, ReasonCode
from device_adapters.readings import AbsentReason, Quantity, Reading, ReadingFlag

BLOOD_PRESSURE_MEASUREMENT = "Blood Pressure Measurement"
INTERMEDIATE_CUFF_PRESSURE = "Intermediate Cuff Pressure"
UNKNOWN_USER = 0xFF

# Measurement Status bits -> names of MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS (8410608) bits in HL7 ASN1ToHL7.
STATUS_BITS = {
    0: "body-movement",
    1: "cuff-too-loose",
    2: "irregular-pulse",
    5: "improper-body-position",
}
# Bits 3-4 are one 2-bit field: 1 = pulse above the range limit, 2 = below; 3 is RFU (kept raw, mapped to nothing).
PULSE_RANGE = {1: "pulse-over-range-limit", 2: "pulse-under-range-limit"}
_STATUS_CODES = {"body-movement": 0, "cuff-too-loose": 1, "irregular-pulse": 2, "pulse-over-range-limit": 3,
                 "pulse-under-range-limit": 4, "improper-body-position": 5}  # fmt: skip


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    systolic: MedicalNumber
    diastolic: MedicalNumber
    mean_arterial: MedicalNumber
    unit: Literal["mmHg", "kPa"]
    timestamp: BleDateTime | None = None
    pulse_rate: MedicalNumber | None = None
    user_id: int | None = None
    status_raw: int | None = None
    status: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure:
    cuff_pressure: MedicalNumber
    unit: Literal["mmHg", "kPa"]
    timestamp: BleDateTime | None = None
    pulse_rate: MedicalNumber | None = None
    user_id: int | None = None
    status_raw: int | None = None


def _fields(name: str, data: bytes) -> tuple[OctetReader, int]:
    if not data:
        raise OctetReader(name, data).error("empty value")
    flags = data[0]
    require_length(name, data, flags, [(True, 7), (bool(flags & 0x02), 7), (bool(flags & 0x04), 2), (bool(flags & 0x08), 1),
                                       (bool(flags & 0x10), 2)])  # fmt: skip
    reader = OctetReader(name, data)
    reader.u8("Flags")
    return reader, flags


def parse_blood_pressure_measurement(data: bytes) -> BloodPressureMeasurement:
    reader, flags = _fields(BLOOD_PRESSURE_MEASUREMENT, data)
    systolic, diastolic, mean = reader.sfloat("Systolic"), reader.sfloat("Diastolic"), reader.sfloat("Mean Arterial Pressure")
    timestamp = reader.date_time() if flags & 0x02 else None
    pulse = reader.sfloat("Pulse Rate") if flags & 0x04 else None
    user = reader.u8("User ID") if flags & 0x08 else None
    status_raw = reader.u16("Measurement Status") if flags & 0x10 else None
    reader.finish()
    status: frozenset[str] = frozenset()
    if status_raw is not None:
        status = bits_set(status_raw, STATUS_BITS) | frozenset(filter(None, [PULSE_RANGE.get(status_raw >> 3 & 0b11)]))
    return BloodPressureMeasurement(
        systolic, diastolic, mean, "kPa" if flags & 0x01 else "mmHg", timestamp, pulse, user, status_raw, status,
    )  # fmt: skip


def parse_intermediate_cuff_pressure(data: bytes) -> IntermediateCuffPressure:
    reader, flags = _fields(INTERMEDIATE_CUFF_PRESSURE, data)
    cuff = reader.sfloat("Current Cuff Pressure")
    reader.raw(4, "unused Diastolic and MAP")
    timestamp = reader.date_time() if flags & 0x02 else None
    pulse = reader.sfloat("Pulse Rate") if flags & 0x04 else None
    user = reader.u8("User ID") if flags & 0x08 else None
    status_raw = reader.u16("Measurement Status") if flags & 0x10 else None
    reader.finish()
    return IntermediateCuffPressure(cuff, "kPa" if flags & 0x01 else "mmHg", timestamp, pulse, user, status_raw)


def readings_from_blood_pressure(measurement: BloodPressureMeasurement, context: BleContext) -> list[Reading]:
    """The panel (systolic, diastolic, mean) and the pulse rate as its own reading."""
    if measurement.user_id == UNKNOWN_USER:
        raise IdentityError(
            ReasonCode.UNPAIRED_DEVICE, f"{BLOOD_PRESSURE_MEASUREMENT} from user 255 (unknown user) is not attributed"
        )
    time, device_time = context.time_of(measurement.timestamp)
    unit = "mm[Hg]" if measurement.unit == "mmHg" else "kPa"
    status = tuple((f"8410608.{_STATUS_CODES[name]}", name) for name in sorted(measurement.status, key=_STATUS_CODES.__getitem__))
    systolic, diastolic, mean = measurement.systolic, measurement.diastolic, measurement.mean_arterial
    components: tuple[tuple[str, Quantity], ...] = ()
    absent: AbsentReason | None = None
    if isinstance(systolic, Decimal) and isinstance(diastolic, Decimal):
        components = (("systolic", Quantity(systolic, unit)), ("diastolic", Quantity(diastolic, unit)))
        if isinstance(mean, Decimal):  # a special MAP (often NaN) is left out: the panel needs only sys/dia
            components += (("mean", Quantity(mean, unit)),)
    else:
        absent = systolic if isinstance(systolic, AbsentReason) else diastolic  # type: ignore[assignment] # one of them is
    readings = [
        Reading(
            context.device_id, "blood_pressure", time, components=components, absent=absent, device_time=device_time,
            user=measurement.user_id, status_codes=status,
        )
    ]  # fmt: skip
    pulse = measurement.pulse_rate
    if pulse is not None:
        flags = {ReadingFlag.HIGH} if "pulse-over-range-limit" in measurement.status else set()
        flags |= {ReadingFlag.LOW} if "pulse-under-range-limit" in measurement.status else set()
        readings.append(
            Reading(
                context.device_id, "pulse_rate", time,
                quantity=Quantity(pulse, "/min") if isinstance(pulse, Decimal) else None,
                absent=pulse if isinstance(pulse, AbsentReason) else None,
                index=1, flags=frozenset(flags), device_time=device_time, user=measurement.user_id,
            )
        )  # fmt: skip
    return readings


CHARACTERISTICS = (
    Characteristic(0x2A35, BLOOD_PRESSURE_MEASUREMENT, parse_blood_pressure_measurement, readings_from_blood_pressure),
    Characteristic(0x2A36, INTERMEDIATE_CUFF_PRESSURE, parse_intermediate_cuff_pressure),  # live display only: never stored
)
