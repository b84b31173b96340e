"""CGM Measurement (0x2AA7) and CGM Feature (0x2AA8).

Layouts (spec digest 2.8):

* Measurement: one or more concatenated records, each Size u8 | Flags u8 | Glucose SFLOAT mg/dL |
  Time Offset u16 minutes | Sensor Status Annunciation, one octet per flag bit 7/6/5 |
  [Trend SFLOAT (mg/dL)/min] (bit0) | [Quality SFLOAT %] (bit1) | [E2E-CRC u16].
  Size counts the whole record. With n = 6 + 2*bit0 + 2*bit1 + popcount(bits 5-7), Size must be n
  (no CRC) or n + 2 (CRC present, and then checked); anything else rejects the notification.
* Feature: CGM Feature u24 | Type (low nibble) / Sample Location (high nibble) u8 | E2E-CRC u16,
  exactly 6 octets. The CRC is checked when the E2E-CRC feature bit (12) is set; otherwise the
  field should be 0xFFFF and is kept as sent without judging it.

Sensor Status Annunciation octet order (spec 5 item 2, disputed between implementations): we follow
the SIG XML, whose 24 bits are Status (0-7), Cal/Temp (8-15), Warning (16-23) sent LSO first, so
the octets arrive Status (flag bit7), Cal/Temp (bit6), Warning (bit5). Nordic's Android library
reads the first octet as Status whatever flag announced it, and Nordic's nRF5 server writes them in
the opposite order; the V-CGM-D2 vector shows the difference.

HL7 ASN1ToHL7 ``8418060`` covers most annunciation bits, irregularly (spec 3.2): BLE 0, 2-4 ->
``.0, .2-.4``; 9-13 -> ``.7-.11``; 16-23 -> ``.12-.19``. Battery low (1), general device fault
(5), time synchronisation required (8) and calibration pending (14) have no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.glucose import GlucoseType, SampleLocation
from device_adapters.ble.ieee11073 import MedicalNumber
from device_adapters.ble.octets import GattParseError, OctetReader, bits_set, known, require_length
from device_adapters.errors import ReasonCode, ValidationError
from device_adapters.readings import AbsentReason, Quantity, Reading, ReadingFlag

CGM_MEASUREMENT = "CGM Measurement"
CGM_FEATURE = "CGM Feature"
_MIN_RECORD = 6
_CRC_SIZE = 2
_HEADER = 2
"""Size and Flags: what a record needs before its flags tell the rest."""

# The 24-bit Sensor Status Annunciation (Status octet bits 0-7, Cal/Temp 8-15, Warning 16-23).
STATUS_BITS = {
    0: "sensor-session-stopped",
    1: "device-battery-low",
    2: "sensor-type-incorrect",
    3: "sensor-malfunction",
    4: "device-specific-alert",
    5: "general-device-fault",
    8: "time-synchronization-required",
    9: "sensor-calibration-not-allowed",
    10: "sensor-calibration-recommended",
    11: "sensor-calibration-required",
    12: "sensor-temp-too-high",
    13: "sensor-temp-too-low",
    14: "sensor-calibration-pending",
    16: "sensor-result-below-patient-low",
    17: "sensor-result-above-patient-high",
    18: "sensor-low-hypo",
    19: "sensor-high-hyper",
    20: "sensor-rate-decrease-exceeded",
    21: "sensor-rate-increase-exceeded",
    22: "sensor-result-too-low",
    23: "sensor-result-too-high",
}
# BLE bit -> 8418060 bit (by name; spec 3.2).
_ASN1_BITS = {0: 0, 2: 2, 3: 3, 4: 4, 9: 7, 10: 8, 11: 9, 12: 10, 13: 11,
              16: 12, 17: 13, 18: 14, 19: 15, 20: 16, 21: 17, 22: 18, 23: 19}  # fmt: skip
FEATURE_BITS = {
    0: "calibration",
    1: "patient-high-low-alerts",
    2: "hypo-alerts",
    3: "hyper-alerts",
    4: "rate-of-increase-decrease-alerts",
    5: "device-specific-alert",
    6: "sensor-malfunction-detection",
    7: "sensor-temperature-high-low-detection",
    8: "sensor-result-high-low-detection",
    9: "low-battery-detection",
    10: "sensor-type-error-detection",
    11: "general-device-fault",
    12: "e2e-crc",
    13: "multiple-bond",
    14: "multiple-sessions",
    15: "cgm-trend-information",
    16: "cgm-quality",
}
E2E_CRC_FEATURE = 1 << 12


def crc16_mcrf4xx(data: bytes) -> int:
    """CRC-16/MCRF4XX, the CGMS E2E-CRC: polynomial 0x1021 reflected (0x8408), init 0xFFFF, no final XOR.

    Check values: ``b"123456789"`` -> 0x6F91; ``3E 01 02 03 04 05 06 07 08 09`` -> 0x2F01.
    """
    crc = 0xFFFF
    for octet in data:
        crc ^= octet
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True, slots=True)
class CgmMeasurement:
    """One record of a CGM Measurement notification."""

    glucose: MedicalNumber
    """mg/dL."""
    time_offset: int
    """Minutes since the CGM Session Start Time."""
    status_octet: int | None = None
    cal_temp_octet: int | None = None
    warning_octet: int | None = None
    status: frozenset[str] = frozenset()
    """Names of the set annunciation bits (absent octets count as zero)."""
    trend: MedicalNumber | None = None
    """(mg/dL)/min."""
    quality: MedicalNumber | None = None
    """Percent."""
    e2e_crc: int | None = None
    """The record's CRC when it carried one (already checked)."""

    @property
    def annunciation(self) -> int:
        """The 24-bit Sensor Status Annunciation (Status | Cal/Temp << 8 | Warning << 16)."""
        return (self.status_octet or 0) | (self.cal_temp_octet or 0) << 8 | (self.warning_octet or 0) << 16


@dataclass(frozen=True, slots=True)
class CgmFeature:
    features_raw: int
    features: frozenset[str]
    type_raw: int
    type: GlucoseType | None
    """None when RFU."""
    sample_location_raw: int
    sample_location: SampleLocation | None
    e2e_crc: int
    """As sent: checked when ``e2e_crc_supported``, 0xFFFF by the spec otherwise."""

    @property
    def e2e_crc_supported(self) -> bool:
        return bool(self.features_raw & E2E_CRC_FEATURE)


def _record(data: bytes, offset: int, number: int) -> tuple[CgmMeasurement, int]:
    """The record at ``offset`` (record ``number``, 1-based) and its size."""
    chunk = data[offset:]
    if len(chunk) < _HEADER:
        raise GattParseError(
            CGM_MEASUREMENT, f"record {number} at offset {offset}: {len(chunk)} octet(s) cannot hold Size and Flags"
        )
    size, flags = chunk[0], chunk[1]
    needed = require_length(CGM_MEASUREMENT, chunk, flags, [
        (True, _MIN_RECORD), (bool(flags & 0x01), 2), (bool(flags & 0x02), 2),
        (bool(flags & 0x80), 1), (bool(flags & 0x40), 1), (bool(flags & 0x20), 1),
    ])  # fmt: skip
    if size not in {needed, needed + _CRC_SIZE}:
        raise GattParseError(
            CGM_MEASUREMENT,
            f"record {number}: Size {size} does not fit flags 0x{flags:02X} ({needed} or {needed + _CRC_SIZE} octets)",
        )
    if size > len(chunk):
        raise GattParseError(CGM_MEASUREMENT, f"record {number}: Size {size} but only {len(chunk)} octets left")
    reader = OctetReader(CGM_MEASUREMENT, chunk[:size])
    reader.u8("Size")
    reader.u8("Flags")
    glucose, time_offset = reader.sfloat("CGM Glucose Concentration"), reader.u16("Time Offset")
    status_octet = reader.u8("Status octet") if flags & 0x80 else None
    cal_temp_octet = reader.u8("Cal/Temp octet") if flags & 0x40 else None
    warning_octet = reader.u8("Warning octet") if flags & 0x20 else None
    trend = reader.sfloat("CGM Trend Information") if flags & 0x01 else None
    quality = reader.sfloat("CGM Quality") if flags & 0x02 else None
    crc = None
    if size == needed + _CRC_SIZE:
        crc = reader.u16("E2E-CRC")
        computed = crc16_mcrf4xx(chunk[: size - _CRC_SIZE])
        if crc != computed:
            raise GattParseError(
                CGM_MEASUREMENT, f"record {number}: E2E-CRC 0x{crc:04X} does not match computed 0x{computed:04X}"
            )
    reader.finish()
    annunciation = (status_octet or 0) | (cal_temp_octet or 0) << 8 | (warning_octet or 0) << 16
    status = bits_set(annunciation, STATUS_BITS)
    return CgmMeasurement(glucose, time_offset, status_octet, cal_temp_octet, warning_octet, status, trend, quality, crc), size


def parse_cgm_measurement(data: bytes) -> tuple[CgmMeasurement, ...]:
    """Every record of the notification, in order; one bad record rejects the whole notification."""
    if not data:
        raise GattParseError(CGM_MEASUREMENT, "empty value")
    records: list[CgmMeasurement] = []
    offset = 0
    while offset < len(data):
        record, size = _record(data, offset, len(records) + 1)
        records.append(record)
        offset += size
    return tuple(records)


def parse_cgm_feature(data: bytes) -> CgmFeature:
    reader = OctetReader(CGM_FEATURE, data)
    if not data:
        raise reader.error("empty value")
    features = int.from_bytes(data[:3], "little")
    require_length(CGM_FEATURE, data, features, [(True, 6)], flag_width=6)
    reader.u24("CGM Feature")
    packed = reader.u8("Type-Sample Location")
    crc = reader.u16("E2E-CRC")
    reader.finish()
    if features & E2E_CRC_FEATURE:
        computed = crc16_mcrf4xx(data[:4])
        if crc != computed:
            raise reader.error(f"E2E-CRC 0x{crc:04X} does not match computed 0x{computed:04X}")
    type_raw, location_raw = packed & 0x0F, packed >> 4
    return CgmFeature(
        features, bits_set(features, FEATURE_BITS),
        type_raw, known(GlucoseType, type_raw), location_raw, known(SampleLocation, location_raw), crc,
    )  # fmt: skip


def readings_from_cgm_measurement(records: tuple[CgmMeasurement, ...], context: BleContext) -> list[Reading]:
    """One ``cgm_glucose`` reading (mg/dL) per record.

    Time: Session Start Time + Time Offset when the session start is known (device time
    ``<session start>+<N>min``), else the reception time with device time ``cgm-offset:<N>min``.
    Trend and quality are decoded but not stored (no standard code, spec 5 item 19).
    """
    session = context.cgm_session_start
    start = session.naive() if session is not None else None
    readings = []
    for index, record in enumerate(records):
        if session is not None and start is not None:
            try:
                local = start + timedelta(minutes=record.time_offset)
            except OverflowError as exc:
                raise ValidationError(
                    ReasonCode.IMPLAUSIBLE_VALUE,
                    f"{CGM_MEASUREMENT}: session start {session.text()} +{record.time_offset} min is outside the calendar",
                ) from exc
            time, device_time = context.anchor(local), f"{session.text()}+{record.time_offset}min"
        else:
            time, device_time = context.received_at, f"cgm-offset:{record.time_offset}min"
        value = record.glucose
        flags = {ReadingFlag.LOW} if "sensor-result-too-low" in record.status else set()
        flags |= {ReadingFlag.HIGH} if "sensor-result-too-high" in record.status else set()
        annunciation = record.annunciation
        status = tuple((f"8418060.{code}", STATUS_BITS[bit]) for bit, code in _ASN1_BITS.items() if annunciation >> bit & 1)
        readings.append(
            Reading(
                context.device_id, "cgm_glucose", time,
                quantity=None if isinstance(value, AbsentReason) else Quantity(value, "mg/dL"),
                absent=value if isinstance(value, AbsentReason) else None,
                index=index, flags=frozenset(flags), device_time=device_time, status_codes=status,
            )
        )  # fmt: skip
    return readings


CHARACTERISTICS = (
    Characteristic(0x2AA7, CGM_MEASUREMENT, parse_cgm_measurement, readings_from_cgm_measurement),
    Characteristic(0x2AA8, CGM_FEATURE, parse_cgm_feature),  # device description, not a measurement
)
