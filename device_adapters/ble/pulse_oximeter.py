"""PLX Spot-Check Measurement (0x2A5E), PLX Continuous Measurement (0x2A5F) and PLX Features (0x2A60).

Layouts (spec digest 2.6):

* Spot-Check: flags u8 | SpO2, PR SFLOAT | [Timestamp 7] (bit0) | [Measurement Status u16] (bit1) |
  [Device and Sensor Status u24] (bit2) | [Pulse Amplitude Index SFLOAT] (bit3). Bit4 says the
  device clock was never set (no field): the timestamp is then not trusted and the readings take
  the reception time.
* Continuous: flags u8 | SpO2PR-Normal (2 SFLOAT) | [SpO2PR-Fast] (bit0) | [SpO2PR-Slow] (bit1) |
  [Measurement Status u16] (bit2) | [Device and Sensor Status u24] (bit3) | [PAI SFLOAT] (bit4).
  No timestamp: readings (from the Normal pair only) take the reception time.
* Features: Supported Features u16 | [Measurement Status Support u16] (bit0) |
  [Device and Sensor Status Support u24] (bit1).

RFU flag bits are ignored. Gateway policy (spec 2.6, not a SIG rule): data flagged "for
demonstration" or "for testing" is refused as not patient data; "Measurement Unavailable" or
"Invalid Measurement Detected" turn both readings into ``error`` absences. The Device and Sensor
Status bits are HL7 ASN1ToHL7 ``150604`` bits in reverse order (BLE bit b is ``150604.(15-b)``,
matched by name for all 16 bits); they go on the SpO2 reading, as blood pressure status goes on
its panel. The Pulse Amplitude Index and the Fast/Slow pairs are decoded but not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.ieee11073 import MedicalNumber
from device_adapters.ble.octets import BleDateTime, OctetReader, bits_set, require_length
from device_adapters.errors import ReasonCode, ValidationError
from device_adapters.readings import AbsentReason, Quantity, Reading

PLX_SPOT_CHECK = "PLX Spot-Check Measurement"
PLX_CONTINUOUS = "PLX Continuous Measurement"
PLX_FEATURES = "PLX Features"

# Measurement Status (16 bits; 0-4 RFU).
MEASUREMENT_STATUS_BITS = {
    5: "measurement-ongoing",
    6: "early-estimated-data",
    7: "validated-data",
    8: "fully-qualified-data",
    9: "data-from-measurement-storage",
    10: "data-for-demonstration",
    11: "data-for-testing",
    12: "calibration-ongoing",
    13: "measurement-unavailable",
    14: "questionable-measurement-detected",
    15: "invalid-measurement-detected",
}
# Device and Sensor Status (24 bits; 16-23 RFU), named as HL7 ASN1ToHL7 names the 150604 bit 15-b.
DEVICE_STATUS_BITS = {
    0: "device-extended-update",
    1: "device-equipment-malfunction",
    2: "signal-processing-irregularity",
    3: "signal-inadequate",
    4: "signal-poor",
    5: "signal-low-perfusion",
    6: "signal-erratic",
    7: "signal-non-pulsatile",
    8: "signal-pulse-questionable",
    9: "signal-searching",
    10: "sensor-interference",
    11: "sensor-off",
    12: "sensor-unsupported",
    13: "sensor-displaced",
    14: "sensor-malfunction",
    15: "sensor-disconnected",
}
_DEVICE_STATUS_CODES = {name: f"150604.{15 - bit}" for bit, name in reversed(DEVICE_STATUS_BITS.items())}
FEATURE_BITS = {
    0: "measurement-status-support",
    1: "device-and-sensor-status-support",
    2: "spot-check-measurement-storage",
    3: "spot-check-timestamp",
    4: "spo2pr-fast",
    5: "spo2pr-slow",
    6: "pulse-amplitude-index",
    7: "multiple-bonds",
}

NOT_PATIENT_DATA = frozenset({"data-for-demonstration", "data-for-testing"})
NO_VALID_RESULT = frozenset({"measurement-unavailable", "invalid-measurement-detected"})


@dataclass(frozen=True, slots=True)
class SpO2PR:
    """One SpO2 (%) and pulse rate (beats/min) pair."""

    spo2: MedicalNumber
    pulse_rate: MedicalNumber


@dataclass(frozen=True, slots=True)
class PlxSpotCheck:
    spo2: MedicalNumber
    pulse_rate: MedicalNumber
    timestamp: BleDateTime | None = None
    measurement_status_raw: int | None = None
    measurement_status: frozenset[str] = frozenset()
    device_status_raw: int | None = None
    device_status: frozenset[str] = frozenset()
    pulse_amplitude_index: MedicalNumber | None = None
    """Percent."""
    clock_not_set: bool = False
    """Flag bit4: the device clock was never set, so its timestamp (if any) is not trusted."""


@dataclass(frozen=True, slots=True)
class PlxContinuous:
    normal: SpO2PR
    fast: SpO2PR | None = None
    slow: SpO2PR | None = None
    measurement_status_raw: int | None = None
    measurement_status: frozenset[str] = frozenset()
    device_status_raw: int | None = None
    device_status: frozenset[str] = frozenset()
    pulse_amplitude_index: MedicalNumber | None = None


@dataclass(frozen=True, slots=True)
class PlxFeatures:
    supported_raw: int
    supported: frozenset[str]
    measurement_status_support_raw: int | None = None
    measurement_status_support: frozenset[str] = frozenset()
    """Same bit names as the Measurement Status."""
    device_status_support_raw: int | None = None
    device_status_support: frozenset[str] = frozenset()
    """Same bit names as the Device and Sensor Status."""


def _start(name: str, data: bytes, sizes: list[tuple[bool, int]]) -> OctetReader:
    reader = OctetReader(name, data)
    if not data:
        raise reader.error("empty value")
    require_length(name, data, data[0], [(True, 1), *sizes])
    reader.u8("Flags")
    return reader


def parse_plx_spot_check(data: bytes) -> PlxSpotCheck:
    flags = data[0] if data else 0
    reader = _start(PLX_SPOT_CHECK, data, [(True, 4), (bool(flags & 0x01), 7), (bool(flags & 0x02), 2), (bool(flags & 0x04), 3),
                                           (bool(flags & 0x08), 2)])  # fmt: skip
    spo2, pulse = reader.sfloat("SpO2"), reader.sfloat("PR")
    timestamp = reader.date_time("Timestamp") if flags & 0x01 else None
    measurement = reader.u16("Measurement Status") if flags & 0x02 else None
    device = reader.u24("Device and Sensor Status") if flags & 0x04 else None
    pai = reader.sfloat("Pulse Amplitude Index") if flags & 0x08 else None
    reader.finish()
    return PlxSpotCheck(
        spo2, pulse, timestamp,
        measurement, bits_set(measurement or 0, MEASUREMENT_STATUS_BITS),
        device, bits_set(device or 0, DEVICE_STATUS_BITS),
        pai, bool(flags & 0x10),
    )  # fmt: skip


def parse_plx_continuous(data: bytes) -> PlxContinuous:
    flags = data[0] if data else 0
    reader = _start(PLX_CONTINUOUS, data, [(True, 4), (bool(flags & 0x01), 4), (bool(flags & 0x02), 4), (bool(flags & 0x04), 2),
                                           (bool(flags & 0x08), 3), (bool(flags & 0x10), 2)])  # fmt: skip
    normal = SpO2PR(reader.sfloat("SpO2PR-Normal SpO2"), reader.sfloat("SpO2PR-Normal PR"))
    fast = SpO2PR(reader.sfloat("SpO2PR-Fast SpO2"), reader.sfloat("SpO2PR-Fast PR")) if flags & 0x01 else None
    slow = SpO2PR(reader.sfloat("SpO2PR-Slow SpO2"), reader.sfloat("SpO2PR-Slow PR")) if flags & 0x02 else None
    measurement = reader.u16("Measurement Status") if flags & 0x04 else None
    device = reader.u24("Device and Sensor Status") if flags & 0x08 else None
    pai = reader.sfloat("Pulse Amplitude Index") if flags & 0x10 else None
    reader.finish()
    return PlxContinuous(
        normal, fast, slow,
        measurement, bits_set(measurement or 0, MEASUREMENT_STATUS_BITS),
        device, bits_set(device or 0, DEVICE_STATUS_BITS),
        pai,
    )  # fmt: skip


def parse_plx_features(data: bytes) -> PlxFeatures:
    reader = OctetReader(PLX_FEATURES, data)
    if not data:
        raise reader.error("empty value")
    supported = int.from_bytes(data[:2], "little")
    # The Supported Features field is the flags: bit0/bit1 announce the two support fields.
    require_length(
        PLX_FEATURES, data, supported, [(True, 2), (bool(supported & 0x01), 2), (bool(supported & 0x02), 3)], flag_width=4
    )
    reader.u16("Supported Features")
    measurement = reader.u16("Measurement Status Support") if supported & 0x01 else None
    device = reader.u24("Device and Sensor Status Support") if supported & 0x02 else None
    reader.finish()
    return PlxFeatures(
        supported, bits_set(supported, FEATURE_BITS),
        measurement, bits_set(measurement or 0, MEASUREMENT_STATUS_BITS),
        device, bits_set(device or 0, DEVICE_STATUS_BITS),
    )  # fmt: skip


def _readings(
    name: str, pair: SpO2PR, status: tuple[frozenset[str], frozenset[str]], context: BleContext, timestamp: BleDateTime | None
) -> list[Reading]:
    """SpO2 (index 0, carrying the 150604 status bits) and pulse rate (index 1) at ``timestamp`` or reception time."""
    measurement_status, device_status = status
    if measurement_status & NOT_PATIENT_DATA:
        raise ValidationError(ReasonCode.UNSUPPORTED_TYPE, f"{name}: demonstration/testing data is not patient data")
    time, device_time = context.time_of(timestamp)
    invalid = bool(measurement_status & NO_VALID_RESULT)
    codes = tuple((code, name) for name, code in _DEVICE_STATUS_CODES.items() if name in device_status)  # 150604.0 first
    readings = []
    for index, (kind, value, unit) in enumerate((("spo2", pair.spo2, "%"), ("pulse_rate", pair.pulse_rate, "/min"))):
        absent = AbsentReason.ERROR if invalid else (value if isinstance(value, AbsentReason) else None)
        readings.append(
            Reading(
                context.device_id, kind, time,
                quantity=Quantity(value, unit) if absent is None and isinstance(value, Decimal) else None,
                absent=absent, index=index, device_time=device_time,
                status_codes=codes if index == 0 else (),
            )
        )  # fmt: skip
    return readings


def readings_from_plx_spot_check(measurement: PlxSpotCheck, context: BleContext) -> list[Reading]:
    """SpO2 and pulse rate at the device timestamp, or at reception when there is none or the clock was never set."""
    timestamp = None if measurement.clock_not_set else measurement.timestamp
    status = (measurement.measurement_status, measurement.device_status)
    return _readings(PLX_SPOT_CHECK, SpO2PR(measurement.spo2, measurement.pulse_rate), status, context, timestamp)


def readings_from_plx_continuous(measurement: PlxContinuous, context: BleContext) -> list[Reading]:
    """SpO2 and pulse rate from the Normal pair only, at reception time (the format has no timestamp)."""
    status = (measurement.measurement_status, measurement.device_status)
    return _readings(PLX_CONTINUOUS, measurement.normal, status, context, None)


CHARACTERISTICS = (
    Characteristic(0x2A5E, PLX_SPOT_CHECK, parse_plx_spot_check, readings_from_plx_spot_check),
    Characteristic(0x2A5F, PLX_CONTINUOUS, parse_plx_continuous, readings_from_plx_continuous),
    Characteristic(0x2A60, PLX_FEATURES, parse_plx_features),  # device description, not a measurement
)
