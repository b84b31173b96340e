"""SenML packs (RFC 8428, JSON) as PulseBridge readings (pure: no I/O).

A SenML pack is a JSON array of records. Each record is resolved as RFC 8428 section 4.6 says,
then read as a body reading. The device is the one named by the MQTT topic (``device_id``);
``received_at`` is "now" for the pack's relative times.

Resolution (RFC 8428 sections 4.1-4.6)
    * Base fields (``bn bt bu bv bs bver``) apply to the record that carries them and to every
      later record, until a later record carries the same base field again.
    * name = ``bn`` + ``n``; it must match the section 4.5.1 character set
      (``A-Z a-z 0-9 - : . / _``, starting with a letter or digit) or the record is rejected.
    * time = ``bt`` + ``t`` (a missing one counts as 0). A sum >= 2**28 is absolute Unix time
      (UTC); a smaller one is seconds relative to "now" (``received_at``; negative is the past).
      No ``t`` and no ``bt`` is "now". Relative times make the reading key depend on the
      reception time: prefer absolute times (a broker redelivery gets a new "now").
    * value = ``bv`` + ``v`` (a missing one counts as 0); unit = ``u``, else ``bu``.
    * ``bver``: a positive integer, 10 when absent. A version above 10 (newer than RFC 8428)
      rejects the pack, as section 4.4 requires; every record must have the same version.
    * Labels ending in ``_`` are must-understand extensions (section 4.4): none are understood,
      so a base one (``b...``) rejects the pack and another rejects its record. Other unknown
      labels are ignored (section 4.4).

Frame-level rejections (:class:`DecodeError`, the whole pack is quarantined): too big, not
UTF-8 / strict JSON (NaN, duplicate keys), not an array, an empty array, too many records, a
base field of the wrong JSON type, an unsupported or inconsistent version, an unknown
must-understand base label, or a pack whose records carry only base fields. Everything else
rejects one record (``FrameDecode.rejections``, by position) and keeps its neighbours.

Records that are not readings
    * A record with only base fields (RFC 8428 section 5.1.7's first record) is a pack header:
      its fields apply to the records after it, and it yields nothing itself.
    * String, boolean and data values (``vs vb vd``) and a sum without a value (``s``) are not
      physiological readings: rejected with ``unsupported_type``. A sum beside a value is ignored.
    * A record with neither a value nor a sum breaks section 4.2: rejected, ``malformed_frame``.

Units: :data:`UNITS` maps SenML symbols (case-sensitive, RFC 8428 section 12.1 and RFC 8798)
to the UCUM codes the mapper reads. A symbol is kept as the same UCUM unit where the mapper
knows it, and converted exactly (``value * 10**scale * factor + offset``, the RFC 8798 rule)
only where it does not. Note that SenML ``%`` is NOT a percentage: RFC 8428 (Note 2 of its
units table) defines it as the same ratio as ``/``, so ``0.97 %`` is 97 UCUM ``%``; RFC 8798's
``/100`` is the percentage. Registered units no body reading is measured in (``%RH``, ``lat``,
``V``...) reject the record with ``unsupported_type``; an unknown symbol with ``unit_unknown``.
A few units health devices send that SenML does not register (``mmHg``, ``kPa``, ``cm``,
``lb``, ``degF``...) are accepted and marked as PulseBridge extensions.

Kinds: the name's last segment (after the last ``:``, ``/``, ``.`` or ``;`` -- the RFC's name
characters exclude ``;``), lower-cased with ``-`` read as ``_``, is looked up in
:data:`NAME_ALIASES`; an alias applies only when the unit fits its kind (``temperature`` in
``Cel`` is a body temperature, in anything else it is not). Otherwise a unit that names a
quantity (``%EL`` battery, ``beat/min`` heart rate) gives the kind. Otherwise the kind is the
segment itself, so the reading still reaches the mapper, which quarantines it as
``unsupported_type``: a record is never dropped silently.

Blood pressure: records whose segment is ``systolic``, ``diastolic`` or ``mean`` (in a pressure
unit) and that share the rest of the name and the time become one ``blood_pressure`` reading
with components (systolic, diastolic, mean), at the position of the first of them; the mapper
checks that systolic and diastolic are both there. A repeated component is rejected.

Identity: a name that starts with a device URN (RFC 9039, ``urn:dev:<subtype>:<id>``) names a
device. Its ``<id>`` (up to the next ``:``, ``_`` or ``/``) or the whole ``urn:dev:<subtype>:<id>``
must equal ``device_id`` -- case-insensitively for the subtypes RFC 9039 defines (``mac ow org
os ops``, where case is not significant), byte for byte otherwise -- or the record is rejected
with ``identity_mismatch``. Names without a device URN (``2001:db8::2/temperature``) carry no
recognizable device and are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from types import MappingProxyType
from typing import Any

from device_adapters.errors import DecodeError, IdentityError, InputRejectedError, NormalizeError, ReasonCode
from device_adapters.jsonwire import json_type, loads_strict
from device_adapters.readings import FrameDecode, Quantity, Reading, require_aware

SENML_VERSION = 10
"""The version RFC 8428 defines (the default of ``bver``)."""
ABSOLUTE_TIME_FROM = Decimal(2**28)
"""Times at or above this are Unix seconds; below it they are relative to "now" (RFC 8428 4.5.3)."""
DEFAULT_MAX_PAYLOAD_BYTES = 65_536
DEFAULT_MAX_RECORDS = 1_000

RFC_8428 = "RFC 8428"
RFC_8798 = "RFC 8798"
EXTENSION = "PulseBridge extension"
"""A unit health devices send that no SenML registry holds."""

BLOOD_PRESSURE = "blood_pressure"
BLOOD_PRESSURE_COMPONENTS = ("systolic", "diastolic", "mean")

_NAME = re.compile(r"[A-Za-z0-9][-A-Za-z0-9:./_]*")
_SEPARATORS = re.compile(r"[:/.;]")
_DEVICE_URN = re.compile(r"(?i:urn:dev):([A-Za-z0-9]+):([^:_/]+)")
_CASELESS_SUBTYPES = frozenset({"mac", "ow", "org", "os", "ops"})
"""RFC 9039's subtypes: character case is not significant in them."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# FHIR decimals must survive IEEE doubles; times beyond +-1e12 s are outside any calendar.
_MAX_SIGNIFICANT_DIGITS = 18
_MAX_MAGNITUDE = Decimal("1e12")
_MAX_SECONDS = Decimal("1e12")
_MAX_VERSION = 1_000_000
"""Bounds ``bver`` before integer checks (a version above 10 is refused anyway)."""
_PRECISION = 60
"""Decimal digits for base + regular sums: exact for anything within the limits above."""


@dataclass(frozen=True, slots=True)
class SenmlUnit:
    """One SenML unit symbol and what PulseBridge makes of it."""

    description: str
    source: str
    """Where the symbol is defined: RFC 8428 (section 12.1), RFC 8798, or a PulseBridge extension."""
    ucum: str | None = None
    """The UCUM code the value is given in after conversion; None: no body reading uses this unit."""
    scale: int = 0
    """Power of ten applied first (exact: the digits the device sent are kept)."""
    factor: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)
    implies: str | None = None
    """The reading kind the unit alone names (``%EL`` is a battery level), for names that do not."""

    def convert(self, value: Decimal) -> Decimal:
        """``value`` in :attr:`ucum`: ``value * 10**scale * factor + offset``."""
        converted = value.scaleb(self.scale)
        if self.factor != 1:
            converted *= self.factor
        if self.offset:
            converted += self.offset
        return converted


def _not_body(description: str, source: str = RFC_8428) -> SenmlUnit:
    return SenmlUnit(description, source)


UNITS: Mapping[str, SenmlUnit] = MappingProxyType({
    # RFC 8428 section 12.1, units body readings are given in.
    "Cel": SenmlUnit("degrees Celsius", RFC_8428, "Cel"),
    "K": SenmlUnit("kelvin", RFC_8428, "Cel", offset=Decimal("-273.15")),
    "kg": SenmlUnit("kilogram", RFC_8428, "kg"),
    "g": SenmlUnit("gram", RFC_8428, "g"),
    "m": SenmlUnit("meter", RFC_8428, "m"),
    "s": SenmlUnit("second", RFC_8428, "s"),
    "Pa": SenmlUnit("pascal", RFC_8428, "kPa", scale=-3),
    "J": SenmlUnit("joule", RFC_8428, "kJ", scale=-3),
    "Ohm": SenmlUnit("ohm", RFC_8428, "Ohm"),
    "/": SenmlUnit("ratio (1 is all)", RFC_8428, "%", scale=2),
    "%": SenmlUnit("ratio (1 is all): RFC 8428 Note 2, not a percentage", RFC_8428, "%", scale=2),
    "%EL": SenmlUnit("percentage of remaining battery energy", RFC_8428, "%", implies="battery_level"),
    "1/s": SenmlUnit("events per second", RFC_8428, "/min", factor=Decimal(60)),
    "Hz": SenmlUnit("hertz", RFC_8428, "/min", factor=Decimal(60)),
    "1/min": SenmlUnit("events per minute", RFC_8428, "/min"),
    "beat/min": SenmlUnit("heart beats per minute", RFC_8428, "/min", implies="heart_rate"),
    "count": SenmlUnit("counter value", RFC_8428, "{count}"),
    # RFC 8798: a new primary unit and secondary units (scaled primary ones).
    "kg/m3": SenmlUnit("mass concentration (glucose: 1 kg/m3 = 100 mg/dL)", RFC_8798, "mg/dL", scale=2),
    "ms": SenmlUnit("millisecond", RFC_8798, "ms"),
    "min": SenmlUnit("minute", RFC_8798, "s", factor=Decimal(60)),
    "h": SenmlUnit("hour", RFC_8798, "s", factor=Decimal(3600)),
    "hPa": SenmlUnit("hectopascal", RFC_8798, "kPa", scale=-1),
    "mm": SenmlUnit("millimeter", RFC_8798, "mm"),
    "/100": SenmlUnit("percent", RFC_8798, "%"),
    "rpm": SenmlUnit("per minute", RFC_8798, "/min"),
    # Not registered for SenML, but what health devices send.
    "mmHg": SenmlUnit("millimeter of mercury", EXTENSION, "mm[Hg]"),
    "kPa": SenmlUnit("kilopascal", EXTENSION, "kPa"),
    "cm": SenmlUnit("centimeter", EXTENSION, "cm"),
    "lb": SenmlUnit("avoirdupois pound", EXTENSION, "[lb_av]"),
    "degF": SenmlUnit("degrees Fahrenheit", EXTENSION, "[degF]"),
    "kg/m2": SenmlUnit("kilogram per square meter (BMI)", EXTENSION, "kg/m2"),
    "mg/dL": SenmlUnit("milligram per deciliter", EXTENSION, "mg/dL"),
    "mmol/L": SenmlUnit("millimole per liter", EXTENSION, "mmol/L"),
    "kJ": SenmlUnit("kilojoule", EXTENSION, "kJ"),
    "kcal": SenmlUnit("kilocalorie", EXTENSION, "kcal"),
    # Registered, but no body reading is measured in them.
    **{
        symbol: _not_body(description)
        for symbol, description in (
            ("A", "ampere"), ("cd", "candela"), ("mol", "mole"), ("rad", "radian"), ("sr", "steradian"),
            ("N", "newton"), ("W", "watt"), ("C", "coulomb"), ("V", "volt"), ("F", "farad"), ("S", "siemens"),
            ("Wb", "weber"), ("T", "tesla"), ("H", "henry"), ("lm", "lumen"), ("lx", "lux"), ("Bq", "becquerel"),
            ("Gy", "gray"), ("Sv", "sievert"), ("kat", "katal"), ("m2", "square meter"), ("m3", "cubic meter"),
            ("l", "liter"), ("m/s", "meter per second"), ("m/s2", "meter per square second"),
            ("m3/s", "cubic meter per second"), ("l/s", "liter per second"), ("W/m2", "watt per square meter"),
            ("cd/m2", "candela per square meter"), ("bit", "bit"), ("bit/s", "bit per second"),
            ("lat", "degrees latitude"), ("lon", "degrees longitude"), ("pH", "pH value"), ("dB", "decibel"),
            ("dBW", "decibel relative to 1 W"), ("Bspl", "bel (sound pressure level)"),
            ("%RH", "relative humidity"), ("EL", "seconds of remaining battery energy"),
            ("beats", "cumulative number of heart beats"), ("S/m", "siemens per meter"),
        )
    },
    **{
        symbol: _not_body(description, RFC_8798)
        for symbol, description in (
            ("B", "byte"), ("VA", "volt-ampere"), ("VAs", "volt-ampere second"), ("var", "volt-ampere reactive"),
            ("vars", "volt-ampere reactive second"), ("J/m", "joule per meter"), ("deg", "degrees (angle)"),
            ("kW", "kilowatt"), ("kVA", "kilovolt-ampere"), ("kvar", "kilovar"), ("Ah", "ampere-hour"),
            ("Wh", "watt-hour"), ("kWh", "kilowatt-hour"), ("varh", "var-hour"), ("kvarh", "kilovar-hour"),
            ("kVAh", "kilovolt-ampere-hour"), ("Wh/km", "watt-hour per kilometer"), ("KiB", "kibibyte"),
            ("mV", "millivolt"), ("mA", "milliampere"), ("dBm", "decibel (milliwatt)"),
            ("ug/m3", "microgram per cubic meter"), ("mm/h", "millimeter per hour"), ("ppm", "parts per million"),
            ("/1000", "permille"), ("km", "kilometer"), ("km/h", "kilometer per hour"),
        )
    },
})  # fmt: skip
"""SenML unit symbols (case-sensitive) and their UCUM reading."""


@dataclass(frozen=True, slots=True)
class NameAlias:
    """What a name's last segment means, provided the record's unit fits."""

    kind: str
    units: frozenset[str]
    """UCUM units (after :data:`UNITS`) the kind is measured in: with another unit the alias does not apply."""
    component: str | None = None
    """For the parts of a blood pressure: the component the record is."""


_PER_MINUTE = frozenset({"/min"})
_PERCENT = frozenset({"%"})
_PRESSURE = frozenset({"mm[Hg]", "kPa"})
_INTERVAL = frozenset({"ms", "s"})


def _aliases(kind: str, units: frozenset[str], *names: str, component: str | None = None) -> dict[str, NameAlias]:
    return dict.fromkeys(names, NameAlias(kind, units, component))


NAME_ALIASES: Mapping[str, NameAlias] = MappingProxyType({
    **_aliases("heart_rate", _PER_MINUTE, "heart_rate", "heartrate", "hr"),
    **_aliases("pulse_rate", _PER_MINUTE, "pulse", "pulse_rate", "pulserate"),
    **_aliases("respiratory_rate", _PER_MINUTE, "respiration", "respiratory_rate", "resp_rate", "breathing_rate"),
    **_aliases("spo2", _PERCENT, "spo2", "oxygen_saturation", "o2_saturation"),
    **_aliases("body_temperature", frozenset({"Cel", "[degF]"}), "temperature", "temp", "body_temperature", "body_temp"),
    **_aliases("body_weight", frozenset({"kg", "g", "[lb_av]"}), "weight", "body_weight"),
    **_aliases("body_height", frozenset({"cm", "m", "mm"}), "height", "body_height"),
    **_aliases("bmi", frozenset({"kg/m2"}), "bmi"),
    **_aliases("body_fat", _PERCENT, "body_fat"),
    **_aliases("blood_glucose", frozenset({"mg/dL", "mmol/L"}), "glucose", "blood_glucose"),
    **_aliases("steps", frozenset({"{count}"}), "steps", "step_count"),
    **_aliases("energy_expended", frozenset({"kJ", "kcal"}), "energy", "energy_expended", "calories"),
    **_aliases("rr_interval", _INTERVAL, "rr_interval"),
    **_aliases("heart_rate_variability", _INTERVAL, "hrv", "heart_rate_variability"),
    **_aliases("battery_level", _PERCENT, "battery", "battery_level"),
    **_aliases(BLOOD_PRESSURE, _PRESSURE, "systolic", "sys", component="systolic"),
    **_aliases(BLOOD_PRESSURE, _PRESSURE, "diastolic", "dia", component="diastolic"),
    **_aliases(BLOOD_PRESSURE, _PRESSURE, "mean", "map", "mean_arterial_pressure", component="mean"),
})  # fmt: skip
"""Last name segments (lower case, ``-`` as ``_``) and the catalogue kinds they name."""

COUNTED_UNITS: Mapping[str, str] = MappingProxyType({"steps": "{steps}"})
"""Kinds that are counts: the UCUM unit they take without a unit or with SenML ``count``."""


@dataclass(frozen=True, slots=True)
class _Base:
    """The base fields in force for one record."""

    name: str = ""
    time: Decimal | None = None
    unit: str | None = None
    value: Decimal | None = None
    version: int = SENML_VERSION


@dataclass(slots=True)
class _Pressure:
    """A blood pressure being assembled from its part records."""

    index: int
    time: datetime
    parts: dict[str, Quantity] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Part:
    """One record that is a part of a blood pressure."""

    group: tuple[str, datetime]
    component: str
    quantity: Quantity


def decode_senml(
    payload: bytes,
    device_id: str,
    *,
    received_at: datetime,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> FrameDecode:
    """Decode one SenML JSON pack published by ``device_id`` and received at ``received_at``.

    A problem with the pack raises :class:`DecodeError`; a problem with one record rejects it
    (by position) and keeps the others. See the module documentation for every rule.
    """
    require_aware("received_at", received_at)
    if len(payload) > max_payload_bytes:
        raise DecodeError(ReasonCode.OVERSIZE, f"payload is {len(payload)} bytes, the limit is {max_payload_bytes}")
    records = loads_strict(payload)
    if not isinstance(records, list):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"a SenML pack is a JSON array, got {json_type(records)}")
    if not records:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, "a SenML pack needs at least one record, got an empty array")
    if len(records) > max_records:
        raise DecodeError(ReasonCode.OVERSIZE, f"pack has {len(records)} records, the limit is {max_records}")

    pack = _Pack(device_id)
    for index, (record, base) in enumerate(zip(records, _bases(records), strict=True)):
        try:
            pack.add(index, _record(record, index, base, device_id, received_at))
        except InputRejectedError as exc:
            pack.rejections.append((index, exc))
    if not pack.slots and not pack.rejections:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, "the pack's records carry only base fields: nothing was measured")
    return pack.decoded()


@dataclass(slots=True)
class _Pack:
    """The readings and rejections of a pack so far, blood pressures gathered from their parts."""

    device_id: str
    slots: list[Reading | _Pressure] = field(default_factory=list)
    pressures: dict[tuple[str, datetime], _Pressure] = field(default_factory=dict)
    rejections: list[tuple[int, InputRejectedError]] = field(default_factory=list)

    def add(self, index: int, result: Reading | _Part | None) -> None:
        if isinstance(result, Reading):
            self.slots.append(result)
        elif result is not None:
            pressure = self.pressures.get(result.group)
            if pressure is None:
                pressure = self.pressures[result.group] = _Pressure(index, result.group[1])
                self.slots.append(pressure)
            if result.component in pressure.parts:
                raise DecodeError(
                    ReasonCode.MALFORMED_FRAME,
                    f"record {index}: a second {result.component} for the blood pressure of record {pressure.index}",
                )
            pressure.parts[result.component] = result.quantity

    def decoded(self) -> FrameDecode:
        readings = tuple(slot if isinstance(slot, Reading) else self._blood_pressure(slot) for slot in self.slots)
        return FrameDecode(readings, tuple(self.rejections))

    def _blood_pressure(self, pressure: _Pressure) -> Reading:
        parts = tuple((name, pressure.parts[name]) for name in BLOOD_PRESSURE_COMPONENTS if name in pressure.parts)
        return Reading(self.device_id, BLOOD_PRESSURE, pressure.time, components=parts, index=pressure.index)


def _bases(records: list[Any]) -> list[_Base]:
    """The base fields in force for each record; a base field that cannot be used rejects the pack."""
    bases: list[_Base] = []
    current = _Base()
    versions: set[int] = set()
    for index, record in enumerate(records):
        if isinstance(record, dict):
            where = f"record {index}"
            must_understand = sorted(label for label in record if label.startswith("b") and label.endswith("_"))
            if must_understand:
                raise DecodeError(
                    ReasonCode.MALFORMED_FRAME,
                    f"{where}: must-understand base field(s) {', '.join(map(repr, must_understand))} are not supported",
                )
            name, unit = _text(record, "bn", where), _text(record, "bu", where)
            time, value = _number(record, "bt", where), _number(record, "bv", where)
            _number(record, "bs", where)  # the base sum only matters to sums, which are not read
            current = _Base(
                name=current.name if name is None else name,
                time=current.time if time is None else time,
                unit=current.unit if unit is None else unit,
                value=current.value if value is None else value,
                version=_version(record, where, current.version),
            )
            versions.add(current.version)
            if len(versions) > 1:
                raise DecodeError(
                    ReasonCode.MALFORMED_FRAME,
                    f"{where}: SenML version {current.version} differs from the pack's earlier records"
                    " (all records of a pack have one version)",
                )
        bases.append(current)
    return bases


def _version(record: dict[str, Any], where: str, current: int) -> int:
    if "bver" not in record:
        return current
    raw = record["bver"]
    if not isinstance(raw, Decimal) or not 1 <= raw <= _MAX_VERSION or raw != raw.to_integral_value():
        shown = raw if isinstance(raw, Decimal) else json_type(raw)
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'bver' must be a positive integer, got {shown}")
    if raw > SENML_VERSION:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: SenML version {raw} is newer than version {SENML_VERSION}, the one understood"
        )
    return int(raw)


@dataclass(frozen=True, slots=True)
class _Fields:
    """A record's regular fields, type-checked."""

    name: str | None
    unit: str | None
    value: Decimal | None
    time: Decimal | None
    value_label: str | None
    """Which value field the record has: ``v``, ``vs``, ``vb``, ``vd`` or none."""
    has_sum: bool


def _record(record: object, index: int, base: _Base, device_id: str, received_at: datetime) -> Reading | _Part | None:
    """What one record is: a reading, a part of a blood pressure, or nothing (a header)."""
    where = f"record {index}"
    if not isinstance(record, dict):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where} must be a JSON object, got {json_type(record)}")
    if record and all(label.startswith("b") for label in record):
        return None  # a header: its base fields apply to the records after it
    fields = _fields(record, where)
    name = base.name + (fields.name or "")
    if not name:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where} has no name: neither 'bn' nor 'n' is given")
    if not _NAME.fullmatch(name):
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME,
            f"{where}: name {name[:80]!r} is not a SenML name (A-Z a-z 0-9 - : . / _, starting with a letter or digit)",
        )
    where = f"{where} ({name[:80]})"
    _check_identity(name, device_id, where)
    if fields.value_label in {"vs", "vb", "vd"}:
        what = {"vs": "string", "vb": "boolean", "vd": "data"}[str(fields.value_label)]
        raise DecodeError(
            ReasonCode.UNSUPPORTED_TYPE, f"{where}: a {what} value ({fields.value_label!r}) is not a physiological reading"
        )
    if fields.value is None:
        if fields.has_sum:
            raise DecodeError(ReasonCode.UNSUPPORTED_TYPE, f"{where}: a sum ('s') without a value is not a physiological reading")
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where} has no value: one of 'v', 'vs', 'vb', 'vd' or 's' is required")
    segment = _SEPARATORS.split(name)[-1]
    if not segment:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: the name ends with a separator, so it names no measurement")
    time = _time(base.time, fields.time, received_at, where)
    value = _value(base.value, fields.value, where)
    unit = _senml_unit(fields.unit if fields.unit is not None else base.unit, where)
    if unit is not None:
        value = _within_limits(unit.convert(value), f"{where}: value in {unit.ucum}")
    return _reading(device_id, index, name=(name[: -len(segment)], segment), time=time, value=value, unit=unit, where=where)


def _fields(record: dict[str, Any], where: str) -> _Fields:
    must_understand = sorted(label for label in record if label.endswith("_"))
    if must_understand:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME,
            f"{where}: must-understand field(s) {', '.join(map(repr, must_understand))} are not supported",
        )
    for label in ("s", "ut"):
        _number(record, label, where)
    for label in ("vs", "vd"):
        _text(record, label, where)
    if "vb" in record and not isinstance(record["vb"], bool):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'vb' must be a JSON boolean, got {json_type(record['vb'])}")
    values = [label for label in ("v", "vs", "vb", "vd") if label in record]
    if len(values) > 1:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: has {', '.join(map(repr, values))}; a record has exactly one value field"
        )
    return _Fields(
        name=_text(record, "n", where),
        unit=_text(record, "u", where),
        value=_number(record, "v", where),
        time=_number(record, "t", where),
        value_label=values[0] if values else None,
        has_sum="s" in record,
    )


def _reading(
    device_id: str,
    index: int,
    *,
    name: tuple[str, str],
    time: datetime,
    value: Decimal,
    unit: SenmlUnit | None,
    where: str,
) -> Reading | _Part:
    """The reading a resolved record is; ``name`` is (everything before the last segment, the last segment)."""
    prefix, segment = name
    ucum = None if unit is None else unit.ucum
    kind = segment.lower().replace("-", "_")
    alias = NAME_ALIASES.get(kind)
    if alias is not None and (ucum in alias.units or (ucum is None and alias.kind in COUNTED_UNITS)):
        if alias.component is not None and ucum is not None:
            return _Part((prefix, time), alias.component, Quantity(value, ucum))
        kind = alias.kind
    elif unit is not None and unit.implies is not None:
        kind = unit.implies
    if kind in COUNTED_UNITS and ucum in {None, "{count}"}:
        ucum = COUNTED_UNITS[kind]
    if ucum is None:
        raise NormalizeError(ReasonCode.UNIT_UNKNOWN, f"{where} has no unit: neither 'u' nor 'bu' is given")
    return Reading(device_id, kind, time, Quantity(value, ucum), index=index)


def _senml_unit(symbol: str | None, where: str) -> SenmlUnit | None:
    if symbol is None:
        return None
    unit = UNITS.get(symbol)
    if unit is None:
        raise NormalizeError(
            ReasonCode.UNIT_UNKNOWN, f"{where}: unit {symbol[:40]!r} is not a SenML unit (RFC 8428 section 12.1, RFC 8798)"
        )
    if unit.ucum is None:
        raise NormalizeError(
            ReasonCode.UNSUPPORTED_TYPE, f"{where}: unit {symbol!r} ({unit.description}) is not a unit of any body reading"
        )
    return unit


def _check_identity(name: str, device_id: str, where: str) -> None:
    """Reject a record whose name is a device URN (RFC 9039) of another device than ``device_id``."""
    match = _DEVICE_URN.match(name)
    if match is None:
        return
    subtype, token = match.groups()
    urn = f"urn:dev:{subtype}:{token}"
    claimed = f"urn:dev:{device_id[8:]}" if device_id[:8].lower() == "urn:dev:" else device_id
    caseless = subtype.lower() in _CASELESS_SUBTYPES
    named = {token.lower(), urn.lower()} if caseless else {token, urn}
    if (claimed.lower() if caseless else claimed) not in named:
        raise IdentityError(
            ReasonCode.IDENTITY_MISMATCH, f"{where}: the name is device {urn!r}, but the pack was published by {device_id!r}"
        )


def _time(base: Decimal | None, offset: Decimal | None, received_at: datetime, where: str) -> datetime:
    """``bt + t``: Unix time from 2**28 on, else seconds from "now" (``received_at``)."""
    parts = [part for part in (base, offset) if part is not None]
    if any(part.copy_abs() >= _MAX_SECONDS for part in parts):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: time (bt + t) is beyond 1e12 seconds")
    with localcontext() as context:
        context.prec = _PRECISION
        total = sum(parts, Decimal(0))
    since = timedelta(microseconds=int((total * 1_000_000).to_integral_value()))
    try:
        return _EPOCH + since if total >= ABSOLUTE_TIME_FROM else received_at + since
    except OverflowError as exc:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: time {total} (bt + t) is outside the calendar") from exc


def _value(base: Decimal | None, value: Decimal, where: str) -> Decimal:
    """``bv + v``."""
    value = _within_limits(value, f"{where}: 'v'")
    if base is None:
        return value
    with localcontext() as context:
        context.prec = _PRECISION
        total = _within_limits(base, f"{where}: 'bv'") + value
    return _within_limits(total, f"{where}: 'bv' + 'v'")


def _within_limits(value: Decimal, what: str) -> Decimal:
    if value.copy_abs() >= _MAX_MAGNITUDE or len(value.as_tuple().digits) > _MAX_SIGNIFICANT_DIGITS:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME,
            f"{what} {value} is out of range (|value| < 1e12, at most {_MAX_SIGNIFICANT_DIGITS} significant digits)",
        )
    # -0 and 0E+3 are the same reading as 0: one spelling keeps the reading key stable.
    return value + 0 if value.is_zero() else value


def _text(record: dict[str, Any], label: str, where: str) -> str | None:
    if label not in record:
        return None
    raw = record[label]
    if not isinstance(raw, str):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: {label!r} must be a JSON string, got {json_type(raw)}")
    return raw


def _number(record: dict[str, Any], label: str, where: str) -> Decimal | None:
    if label not in record:
        return None
    raw = record[label]
    if not isinstance(raw, Decimal):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: {label!r} must be a JSON number, got {json_type(raw)}")
    return raw
