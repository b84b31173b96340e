"""Glucose Measurement (0x2A18), Glucose Measurement Context (0x2A34) and Glucose Feature (0x2A51).

Layouts (spec digest 2.7):

* Measurement: flags u8 | Sequence Number u16 | Base Time 7 | [Time Offset sint16 minutes] (bit0) |
  [Concentration SFLOAT, Type/Sample Location u8] (bit1) | [Sensor Status Annunciation u16] (bit3).
  Bit2 selects mol/L instead of kg/L; bit4 says a Context with the same sequence number follows.
* Context: flags u8 | Sequence Number u16 | [Extended Flags u8] (bit7, *before* the carbohydrate) |
  [Carbohydrate ID u8, Carbohydrate SFLOAT] (bit0) | [Meal u8] (bit1) | [Tester/Health u8] (bit2) |
  [Exercise Duration u16 s, Exercise Intensity u8 %] (bit3) | [Medication ID u8, Medication SFLOAT]
  (bit4; bit5 selects litres instead of kilograms) | [HbA1c SFLOAT %] (bit6).
* Feature: u16 bit field, exactly 2 octets.

Units: the concentration is converted exactly by moving the decimal point (kg/L x 10^5 = mg/dL,
mol/L x 10^3 = mmol/L) so the device's precision survives. The Context carbohydrate and
medication amounts are kept as sent, in the GSS units (kilogram, or litre for medication): the old
XML's decimal exponents suggest g / mg / mL instead (spec 5 item 5), and the SFLOAT exponent
usually shows which one a device means (50 x 10^-3 is obviously 0.050 kg).

Sensor Status Annunciation bits 0-10 are HL7 ASN1ToHL7 ``8417752.0``-``.10`` one to one (bit 11,
time fault, has no code: ``8417752.11`` is "sensor-temp-out-of-range"). Bit5 is "result HIGHER
than the device can process" and bit6 "LOWER", per the SIG XML and the PHD IG; Nordic's Android
library swaps the two names (spec 5 item 3), which we do not copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Literal

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.ieee11073 import MedicalNumber
from device_adapters.ble.octets import BleDateTime, OctetReader, bits_set, known, require_length
from device_adapters.errors import ReasonCode, ValidationError
from device_adapters.readings import AbsentReason, Quantity, Reading, ReadingFlag

GLUCOSE_MEASUREMENT = "Glucose Measurement"
GLUCOSE_MEASUREMENT_CONTEXT = "Glucose Measurement Context"
GLUCOSE_FEATURE = "Glucose Feature"
EXERCISE_OVERRUN = 0xFFFF
_FEATURE_SIZE = 2


class GlucoseType(IntEnum):
    CAPILLARY_WHOLE_BLOOD = 1
    CAPILLARY_PLASMA = 2
    VENOUS_WHOLE_BLOOD = 3
    VENOUS_PLASMA = 4
    ARTERIAL_WHOLE_BLOOD = 5
    ARTERIAL_PLASMA = 6
    UNDETERMINED_WHOLE_BLOOD = 7
    UNDETERMINED_PLASMA = 8
    INTERSTITIAL_FLUID = 9
    CONTROL_SOLUTION = 10


class SampleLocation(IntEnum):
    FINGER = 1
    ALTERNATE_SITE_TEST = 2
    EARLOBE = 3
    CONTROL_SOLUTION = 4
    NOT_AVAILABLE = 15


class CarbohydrateId(IntEnum):
    BREAKFAST = 1
    LUNCH = 2
    DINNER = 3
    SNACK = 4
    DRINK = 5
    SUPPER = 6
    BRUNCH = 7


class Meal(IntEnum):
    PREPRANDIAL = 1
    POSTPRANDIAL = 2
    FASTING = 3
    CASUAL = 4
    BEDTIME = 5


class GlucoseTester(IntEnum):
    SELF = 1
    HEALTH_CARE_PROFESSIONAL = 2
    LAB_TEST = 3
    NOT_AVAILABLE = 15


class Health(IntEnum):
    MINOR_HEALTH_ISSUES = 1
    MAJOR_HEALTH_ISSUES = 2
    DURING_MENSES = 3
    UNDER_STRESS = 4
    NO_HEALTH_ISSUES = 5
    NOT_AVAILABLE = 15


class MedicationId(IntEnum):
    RAPID_ACTING_INSULIN = 1
    SHORT_ACTING_INSULIN = 2
    INTERMEDIATE_ACTING_INSULIN = 3
    LONG_ACTING_INSULIN = 4
    PRE_MIXED_INSULIN = 5


# Sensor Status Annunciation; bits 0-10 carry the HL7 ASN1ToHL7 names of 8417752.<bit>.
STATUS_BITS = {
    0: "device-battery-low",
    1: "sensor-malfunction",
    2: "sensor-sample-size-insufficient",
    3: "sensor-strip-insertion",
    4: "sensor-strip-type-incorrect",
    5: "sensor-result-too-high",
    6: "sensor-result-too-low",
    7: "sensor-temp-too-high",
    8: "sensor-temp-too-low",
    9: "sensor-read-interrupt",
    10: "device-gen-fault",
    11: "time-fault",
}
_LAST_CODED_STATUS_BIT = 10
_STATUS_CODES = {name: f"8417752.{bit}" for bit, name in STATUS_BITS.items() if bit <= _LAST_CODED_STATUS_BIT}
FEATURE_BITS = {
    0: "low-battery-detection",
    1: "sensor-malfunction-detection",
    2: "sensor-sample-size",
    3: "sensor-strip-insertion-error-detection",
    4: "sensor-strip-type-error-detection",
    5: "sensor-result-high-low-detection",
    6: "sensor-temperature-high-low-detection",
    7: "sensor-read-interrupt-detection",
    8: "general-device-fault",
    9: "time-fault",
    10: "multiple-bond",
}

# Sample type -> catalogue kind. Capillary whole blood has its own kind; venous/arterial/undetermined
# whole blood share the generic "glucose in blood" one, every plasma type the "serum or plasma" one.
KINDS: dict[GlucoseType, str] = {
    GlucoseType.CAPILLARY_WHOLE_BLOOD: "blood_glucose",
    GlucoseType.CAPILLARY_PLASMA: "blood_glucose_plasma",
    GlucoseType.VENOUS_WHOLE_BLOOD: "blood_glucose_whole_blood",
    GlucoseType.VENOUS_PLASMA: "blood_glucose_plasma",
    GlucoseType.ARTERIAL_WHOLE_BLOOD: "blood_glucose_whole_blood",
    GlucoseType.ARTERIAL_PLASMA: "blood_glucose_plasma",
    GlucoseType.UNDETERMINED_WHOLE_BLOOD: "blood_glucose_whole_blood",
    GlucoseType.UNDETERMINED_PLASMA: "blood_glucose_plasma",
    GlucoseType.INTERSTITIAL_FLUID: "cgm_glucose",
}


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    sequence_number: int
    base_time: BleDateTime
    time_offset: int | None = None
    """Minutes (sint16) to add to the base time for the user-facing time."""
    concentration: MedicalNumber | None = None
    """As sent, in ``unit``; None when flag bit1 is clear (a record without a result)."""
    unit: Literal["kg/L", "mol/L"] | None = None
    type_raw: int | None = None
    type: GlucoseType | None = None
    """None when absent or RFU (0, 11-15)."""
    sample_location_raw: int | None = None
    sample_location: SampleLocation | None = None
    """None when absent or RFU (0, 5-14)."""
    status_raw: int | None = None
    status: frozenset[str] = frozenset()
    context_follows: bool = False
    """Flag bit4: a Glucose Measurement Context with the same sequence number follows."""

    def user_facing_time(self) -> datetime | None:
        """Base Time + Time Offset as the device's naive local time; None when the date is unknown.

        Raises ``OverflowError`` when the offset leaves the calendar (year 9999 + minutes).
        """
        local = self.base_time.naive()
        if local is None:
            return None
        return local + timedelta(minutes=self.time_offset or 0)


@dataclass(frozen=True, slots=True)
class GlucoseMeasurementContext:
    sequence_number: int
    extended_flags: int | None = None
    """All bits RFU."""
    carbohydrate_id_raw: int | None = None
    carbohydrate_id: CarbohydrateId | None = None
    carbohydrate: MedicalNumber | None = None
    """Kilograms per the GSS (see the module notes)."""
    meal_raw: int | None = None
    meal: Meal | None = None
    tester_raw: int | None = None
    tester: GlucoseTester | None = None
    health_raw: int | None = None
    health: Health | None = None
    exercise_duration: int | None = None
    """Seconds; 0xFFFF means overrun (longer than the field can hold)."""
    exercise_intensity: int | None = None
    """Percent."""
    medication_id_raw: int | None = None
    medication_id: MedicationId | None = None
    medication: MedicalNumber | None = None
    medication_unit: Literal["kg", "L"] | None = None
    hba1c: MedicalNumber | None = None
    """Percent."""

    @property
    def exercise_overrun(self) -> bool:
        return self.exercise_duration == EXERCISE_OVERRUN


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    raw: int
    features: frozenset[str]


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    """A measurement and, when the device sent one with the same sequence number, its context."""

    measurement: GlucoseMeasurement
    context: GlucoseMeasurementContext | None = None


def _start(name: str, data: bytes) -> OctetReader:
    reader = OctetReader(name, data)
    if not data:
        raise reader.error("empty value")
    return reader


def parse_glucose_measurement(data: bytes) -> GlucoseMeasurement:
    reader = _start(GLUCOSE_MEASUREMENT, data)
    flags = data[0]
    require_length(GLUCOSE_MEASUREMENT, data, flags, [(True, 10), (bool(flags & 0x01), 2), (bool(flags & 0x02), 3),
                                                      (bool(flags & 0x08), 2)])  # fmt: skip
    reader.u8("Flags")
    sequence = reader.u16("Sequence Number")
    base = reader.date_time("Base Time")
    offset = reader.s16("Time Offset") if flags & 0x01 else None
    concentration = type_raw = location_raw = None
    if flags & 0x02:
        concentration = reader.sfloat("Glucose Concentration")
        packed = reader.u8("Type-Sample Location")
        type_raw, location_raw = packed & 0x0F, packed >> 4
    status_raw = reader.u16("Sensor Status Annunciation") if flags & 0x08 else None
    reader.finish()
    return GlucoseMeasurement(
        sequence, base, offset, concentration,
        None if concentration is None else ("mol/L" if flags & 0x04 else "kg/L"),
        type_raw, None if type_raw is None else known(GlucoseType, type_raw),
        location_raw, None if location_raw is None else known(SampleLocation, location_raw),
        status_raw, bits_set(status_raw or 0, STATUS_BITS), bool(flags & 0x10),
    )  # fmt: skip


def parse_glucose_measurement_context(data: bytes) -> GlucoseMeasurementContext:
    reader = _start(GLUCOSE_MEASUREMENT_CONTEXT, data)
    flags = data[0]
    require_length(GLUCOSE_MEASUREMENT_CONTEXT, data, flags, [
        (True, 3), (bool(flags & 0x80), 1), (bool(flags & 0x01), 3), (bool(flags & 0x02), 1), (bool(flags & 0x04), 1),
        (bool(flags & 0x08), 3), (bool(flags & 0x10), 3), (bool(flags & 0x40), 2),
    ])  # fmt: skip
    reader.u8("Flags")
    sequence = reader.u16("Sequence Number")
    extended = reader.u8("Extended Flags") if flags & 0x80 else None
    carb_id = carbohydrate = meal = tester = health = duration = intensity = medication_id = medication = hba1c = None
    if flags & 0x01:
        carb_id, carbohydrate = reader.u8("Carbohydrate ID"), reader.sfloat("Carbohydrate")
    if flags & 0x02:
        meal = reader.u8("Meal")
    if flags & 0x04:
        packed = reader.u8("Tester-Health")
        tester, health = packed & 0x0F, packed >> 4
    if flags & 0x08:
        duration, intensity = reader.u16("Exercise Duration"), reader.u8("Exercise Intensity")
    if flags & 0x10:
        medication_id, medication = reader.u8("Medication ID"), reader.sfloat("Medication")
    if flags & 0x40:
        hba1c = reader.sfloat("HbA1c")
    reader.finish()
    return GlucoseMeasurementContext(
        sequence, extended,
        carb_id, None if carb_id is None else known(CarbohydrateId, carb_id), carbohydrate,
        meal, None if meal is None else known(Meal, meal),
        tester, None if tester is None else known(GlucoseTester, tester),
        health, None if health is None else known(Health, health),
        duration, intensity,
        medication_id, None if medication_id is None else known(MedicationId, medication_id), medication,
        None if medication is None else ("L" if flags & 0x20 else "kg"),
        hba1c,
    )  # fmt: skip


def parse_glucose_feature(data: bytes) -> GlucoseFeature:
    reader = _start(GLUCOSE_FEATURE, data)
    if len(data) < _FEATURE_SIZE:
        raise reader.error(f"value needs {_FEATURE_SIZE} octets, have {len(data)}")
    raw = reader.u16(GLUCOSE_FEATURE)
    reader.finish()
    return GlucoseFeature(raw, bits_set(raw, FEATURE_BITS))


def join_glucose(
    measurements: Iterable[GlucoseMeasurement], contexts: Iterable[GlucoseMeasurementContext]
) -> tuple[GlucoseRecord, ...]:
    """Pair each measurement with the context of the same sequence number, in measurement order.

    A context without a measurement is dropped (it describes nothing stored); when a sequence
    number has several contexts (a record transferred twice), the last one wins.
    """
    by_sequence = {context.sequence_number: context for context in contexts}
    return tuple(GlucoseRecord(measurement, by_sequence.get(measurement.sequence_number)) for measurement in measurements)


def _device_time_text(measurement: GlucoseMeasurement) -> str:
    """The device's own time, stable across connections: base time text and a non-zero offset."""
    offset = measurement.time_offset or 0
    return measurement.base_time.text() + (f"{offset:+d}min" if offset else "")


def readings_from_glucose(measurement: GlucoseMeasurement, context: BleContext) -> list[Reading]:
    """One glucose reading (kind by sample type) at Base Time + Time Offset; nothing for a record without a result.

    Control solution (type 10 or sample location 4) and reserved types are refused: not patient data.
    """
    value = measurement.concentration
    if value is None:
        return []
    if measurement.type is GlucoseType.CONTROL_SOLUTION or measurement.sample_location is SampleLocation.CONTROL_SOLUTION:
        sequence = measurement.sequence_number
        raise ValidationError(
            ReasonCode.UNSUPPORTED_TYPE,
            f"{GLUCOSE_MEASUREMENT}: control solution result (sequence {sequence}) is not patient data",
        )
    kind = None if measurement.type is None else KINDS.get(measurement.type)
    if kind is None:
        raise ValidationError(
            ReasonCode.UNSUPPORTED_TYPE, f"{GLUCOSE_MEASUREMENT}: sample type {measurement.type_raw} is reserved (RFU)"
        )
    try:
        local = measurement.user_facing_time()
    except OverflowError as exc:
        raise ValidationError(
            ReasonCode.IMPLAUSIBLE_VALUE,
            f"{GLUCOSE_MEASUREMENT}: user-facing time {_device_time_text(measurement)} is outside the calendar",
        ) from exc
    if local is None:
        time, device_time = context.time_of(None)
    else:
        time, device_time = context.anchor(local), _device_time_text(measurement)
    quantity = absent = None
    if isinstance(value, AbsentReason):
        absent = value
    elif measurement.unit == "mol/L":
        quantity = Quantity(value.scaleb(3), "mmol/L")
    else:
        quantity = Quantity(value.scaleb(5), "mg/dL")
    flags = {ReadingFlag.HIGH} if "sensor-result-too-high" in measurement.status else set()
    flags |= {ReadingFlag.LOW} if "sensor-result-too-low" in measurement.status else set()
    status = tuple((code, name) for name, code in _STATUS_CODES.items() if name in measurement.status)  # in bit order
    return [
        Reading(
            context.device_id, kind, time, quantity=quantity, absent=absent, flags=frozenset(flags),
            device_time=device_time, status_codes=status,
        )
    ]  # fmt: skip


CHARACTERISTICS = (
    Characteristic(0x2A18, GLUCOSE_MEASUREMENT, parse_glucose_measurement, readings_from_glucose),
    # Context is joined to its measurement (join_glucose); its fields have no catalogue kind.
    Characteristic(0x2A34, GLUCOSE_MEASUREMENT_CONTEXT, parse_glucose_measurement_context),
    Characteristic(0x2A51, GLUCOSE_FEATURE, parse_glucose_feature),  # device description, not a measurement
)
