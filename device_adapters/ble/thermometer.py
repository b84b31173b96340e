"""Temperature Measurement (0x2A1C), Intermediate Temperature (0x2A1E) and Temperature Type (0x2A1D).

Layout (spec digest 2.3): flags u8 | Temperature FLOAT (32-bit) | [Time Stamp 7] (bit1) |
[Temperature Type u8] (bit2). Bit0 selects degrees Fahrenheit instead of Celsius; bits 3-7 are
RFU and ignored. Intermediate Temperature shares the layout and is never stored (live display
while the thermometer settles). Temperature Type 1-9 names the site (IEEE 11073-10408); 0 and
10-255 are RFU: kept raw, mapped to no site.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Literal

from device_adapters.ble.characteristic import Characteristic
from device_adapters.ble.context import BleContext
from device_adapters.ble.ieee11073 import MedicalNumber
from device_adapters.ble.octets import BleDateTime, OctetReader, known, require_length
from device_adapters.readings import Quantity, Reading

TEMPERATURE_MEASUREMENT = "Temperature Measurement"
INTERMEDIATE_TEMPERATURE = "Intermediate Temperature"
TEMPERATURE_TYPE = "Temperature Type"


class TemperatureType(IntEnum):
    ARMPIT = 1
    BODY = 2
    """Body (general): no particular site."""
    EAR = 3
    """Usually the ear lobe."""
    FINGER = 4
    GASTROINTESTINAL_TRACT = 5
    MOUTH = 6
    RECTUM = 7
    TOE = 8
    TYMPANUM = 9
    """Ear drum."""


# Temperature Type -> the catalogue's body_temperature site; BODY (general) has none.
SITES: dict[TemperatureType, str | None] = {
    TemperatureType.ARMPIT: "axillary",
    TemperatureType.BODY: None,
    TemperatureType.EAR: "ear",
    TemperatureType.FINGER: "finger",
    TemperatureType.GASTROINTESTINAL_TRACT: "gi_tract",
    TemperatureType.MOUTH: "oral",
    TemperatureType.RECTUM: "rectal",
    TemperatureType.TOE: "toe",
    TemperatureType.TYMPANUM: "tympanic",
}

TemperatureUnit = Literal["Cel", "[degF]"]
"""UCUM codes, as the FHIR bodytemp profile accepts them."""


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    value: MedicalNumber
    unit: TemperatureUnit
    timestamp: BleDateTime | None = None
    type_raw: int | None = None
    """The Temperature Type octet as sent (bit2), RFU values included."""
    temperature_type: TemperatureType | None = None
    """None when absent or RFU."""


@dataclass(frozen=True, slots=True)
class IntermediateTemperature:
    value: MedicalNumber
    unit: TemperatureUnit
    timestamp: BleDateTime | None = None
    type_raw: int | None = None
    temperature_type: TemperatureType | None = None


@dataclass(frozen=True, slots=True)
class TemperatureTypeValue:
    """The Temperature Type characteristic: the fixed site of a thermometer that does not send it per measurement."""

    raw: int
    temperature_type: TemperatureType | None
    """None for the RFU values."""


def _parse(name: str, data: bytes) -> tuple[MedicalNumber, TemperatureUnit, BleDateTime | None, int | None]:
    reader = OctetReader(name, data)
    if not data:
        raise reader.error("empty value")
    flags = data[0]
    require_length(name, data, flags, [(True, 5), (bool(flags & 0x02), 7), (bool(flags & 0x04), 1)])
    reader.u8("Flags")
    value = reader.float32("Temperature Measurement Value")
    timestamp = reader.date_time() if flags & 0x02 else None
    type_raw = reader.u8(TEMPERATURE_TYPE) if flags & 0x04 else None
    reader.finish()
    return value, "[degF]" if flags & 0x01 else "Cel", timestamp, type_raw


def parse_temperature_measurement(data: bytes) -> TemperatureMeasurement:
    value, unit, timestamp, type_raw = _parse(TEMPERATURE_MEASUREMENT, data)
    return TemperatureMeasurement(
        value, unit, timestamp, type_raw, None if type_raw is None else known(TemperatureType, type_raw)
    )


def parse_intermediate_temperature(data: bytes) -> IntermediateTemperature:
    value, unit, timestamp, type_raw = _parse(INTERMEDIATE_TEMPERATURE, data)
    return IntermediateTemperature(
        value, unit, timestamp, type_raw, None if type_raw is None else known(TemperatureType, type_raw)
    )


def parse_temperature_type(data: bytes) -> TemperatureTypeValue:
    reader = OctetReader(TEMPERATURE_TYPE, data)
    if not data:
        raise reader.error("empty value")
    if len(data) != 1:
        raise reader.error(f"value must be exactly 1 octet, have {len(data)}")
    raw = reader.u8(TEMPERATURE_TYPE)
    return TemperatureTypeValue(raw, known(TemperatureType, raw))


def readings_from_temperature(measurement: TemperatureMeasurement, context: BleContext) -> list[Reading]:
    """One body temperature; the Temperature Type, when sent and known, becomes its site.

    A thermometer with a fixed site exposes it in the Temperature Type characteristic instead of
    the measurement; joining the two is the session's business (it reads the characteristic once),
    so a measurement without the field has no site here.
    """
    time, device_time = context.time_of(measurement.timestamp)
    site = None if measurement.temperature_type is None else SITES[measurement.temperature_type]
    value = measurement.value
    return [
        Reading(
            context.device_id, "body_temperature", time,
            quantity=Quantity(value, measurement.unit) if isinstance(value, Decimal) else None,
            absent=None if isinstance(value, Decimal) else value,
            site=site, device_time=device_time,
        )
    ]  # fmt: skip


CHARACTERISTICS = (
    Characteristic(0x2A1C, TEMPERATURE_MEASUREMENT, parse_temperature_measurement, readings_from_temperature),
    Characteristic(0x2A1D, TEMPERATURE_TYPE, parse_temperature_type),  # device description, not a measurement
    Characteristic(0x2A1E, INTERMEDIATE_TEMPERATURE, parse_intermediate_temperature),  # live display only: never stored
)
