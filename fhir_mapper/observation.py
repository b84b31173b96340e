"""Readings + attribution -> FHIR R4 Observations, ready to store.

The hot path builds plain JSON (dicts with pre-serialized constant parts, written by orjson);
:mod:`fhir_mapper.validation` checks every shape against the FHIR models in the tests.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

import orjson

from device_adapters.errors import InputRejectedError, NormalizeError, ReasonCode, ValidationError
from device_adapters.jsonwire import dumps
from device_adapters.readings import Quantity, Reading, ReadingFlag
from fhir_mapper.catalogue import (
    CATALOGUE,
    LOINC,
    OBSERVATION_CATEGORY,
    PHD_CATEGORY,
    PROFILE_BASE,
    UCUM,
    VITAL_SIGNS_PROFILE,
    Coding,
    ComponentSpec,
    UnitChoice,
    VitalKind,
)
from fhir_mapper.identity import IDENTIFIER_SYSTEM, identifier_value, reading_key
from fhir_mapper.plausibility import CheckedValue, PlausibilityPolicy
from fhir_mapper.units import NormalizedQuantity, normalize

ORIGINAL_QUANTITY_EXTENSION = "https://pulsebridge.dev/fhir/StructureDefinition/original-quantity"
GATEWAY_DEVICE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)

_INTERPRETATIONS: Mapping[ReadingFlag, Coding] = MappingProxyType({
    ReadingFlag.HIGH: Coding(INTERPRETATION_SYSTEM, "H", "High"),
    ReadingFlag.LOW: Coding(INTERPRETATION_SYSTEM, "L", "Low"),
    ReadingFlag.CRITICAL_HIGH: Coding(INTERPRETATION_SYSTEM, "HH", "Critical high"),
    ReadingFlag.CRITICAL_LOW: Coding(INTERPRETATION_SYSTEM, "LL", "Critical low"),
    ReadingFlag.ABNORMAL: Coding(INTERPRETATION_SYSTEM, "A", "Abnormal"),
})  # fmt: skip
_ABSENT_DISPLAY = MappingProxyType({
    "not-a-number": "Not a Number (NaN)",
    "error": "Error",
    "positive-infinity": "Positive Infinity (PINF)",
    "negative-infinity": "Negative Infinity (NINF)",
    "unknown": "Unknown",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a reading belongs to: resolved from the registry by the device's time."""

    patient_id: str
    device_resource_id: uuid.UUID
    device_id: str
    """The device's own id (MQTT topic segment, serial)."""


@dataclass(frozen=True, slots=True)
class MappingInput:
    reading: Reading
    attribution: Attribution
    received_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class MappedObservation:
    """A normalized reading and its FHIR Observation: one row of the observations table."""

    reading_key: uuid.UUID
    time: datetime
    patient_id: str
    device_resource_id: uuid.UUID
    kind: str
    code: str
    value: Decimal | None
    unit: str
    resource: bytes
    received_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class MapperContext:
    gateway_device_id: uuid.UUID | None = None
    """The gateway's own Device, named in every Observation's gatewayDevice extension."""
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
    plausibility: PlausibilityPolicy = field(default_factory=PlausibilityPolicy)


@dataclass(frozen=True, slots=True)
class _Normalized:
    item: MappingInput
    kind: VitalKind
    unit: UnitChoice
    value: NormalizedQuantity | None
    components: tuple[tuple[ComponentSpec, NormalizedQuantity], ...]


class ObservationMapper:
    """Maps batches: normalize each reading, check plausibility for the batch at once, build JSON."""

    def __init__(self, context: MapperContext | None = None) -> None:
        self._context = context or MapperContext()
        gateway = self._context.gateway_device_id
        self._gateway_extension = (
            orjson.Fragment(
                orjson.dumps([{"url": GATEWAY_DEVICE_EXTENSION, "valueReference": {"reference": f"Device/{gateway}"}}])
            )
            if gateway is not None
            else None
        )

    def map_batch(self, items: Sequence[MappingInput]) -> tuple[list[MappedObservation], list[tuple[int, InputRejectedError]]]:
        """Map every item; rejected ones come back with their position in ``items``."""
        rejected: list[tuple[int, InputRejectedError]] = []
        normalized: list[tuple[int, _Normalized]] = []
        checks: list[CheckedValue] = []
        for position, item in enumerate(items):
            try:
                entry = self._normalize(item)
            except InputRejectedError as exc:
                rejected.append((position, exc))
                continue
            normalized.append((position, entry))
            checks.extend(_checked_values(position, entry))
        violations = self._context.plausibility.violations(checks)
        mapped: list[MappedObservation] = []
        issued: dict[datetime, str] = {}
        for position, entry in normalized:
            reason = violations.get(position) or _pressure_order(entry)
            if reason is not None:
                rejected.append((position, ValidationError(ReasonCode.IMPLAUSIBLE_VALUE, reason)))
                continue
            received = entry.item.received_at
            if received not in issued:
                issued[received] = received.astimezone(UTC).isoformat()
            mapped.append(self._build(entry, issued[received]))
        rejected.sort(key=lambda pair: pair[0])
        return mapped, rejected

    def map_one(self, item: MappingInput) -> MappedObservation:
        mapped, rejected = self.map_batch([item])
        if rejected:
            raise rejected[0][1]
        return mapped[0]

    def _normalize(self, item: MappingInput) -> _Normalized:
        reading = item.reading
        kind = CATALOGUE.get(reading.kind)
        if kind is None:
            raise NormalizeError(ReasonCode.UNSUPPORTED_TYPE, f"reading type {reading.kind!r} is not in the catalogue")
        if reading.time > item.received_at + self._context.future_tolerance:
            raise ValidationError(
                ReasonCode.FUTURE_TIMESTAMP,
                f"time {reading.time.isoformat()} is more than {self._context.future_tolerance} "
                f"after reception at {item.received_at.isoformat()}",
            )
        if reading.site is not None and reading.site not in kind.sites:
            known = ", ".join(sorted(kind.sites)) or "none"
            raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} has no site {reading.site!r} (sites: {known})")
        accepted = tuple(choice.ucum for choice in kind.units)
        if reading.absent is not None:
            return _Normalized(item, kind, kind.canonical_unit, None, ())
        if kind.compound:
            components = _components(reading, kind, accepted)
            unit = kind.unit_choice(components[0][1].unit) or kind.canonical_unit
            return _Normalized(item, kind, unit, None, components)
        if reading.quantity is None:
            raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} takes a 'value', not 'components'")
        value = normalize(reading.quantity, accepted, kind.name)
        return _Normalized(item, kind, kind.unit_choice(value.unit) or kind.canonical_unit, value, ())

    def _build(self, entry: _Normalized, issued: str) -> MappedObservation:
        item, kind, reading = entry.item, entry.kind, entry.item.reading
        attribution = item.attribution
        key = reading_key(
            attribution.device_id, attribution.patient_id, kind.name, reading.time, duration=reading.duration, site=reading.site,
        )  # fmt: skip
        static = static_parts(kind.name, reading.site, entry.unit.ucum)
        resource: dict[str, object] = {
            "resourceType": "Observation",
            "id": str(key),
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": identifier_value(key)}],
        }
        if static.meta is not None:
            resource["meta"] = static.meta
        if self._gateway_extension is not None:
            resource["extension"] = self._gateway_extension
        resource["status"] = "final"
        resource["category"] = static.category
        resource["code"] = static.code
        resource["subject"] = {"reference": f"Patient/{attribution.patient_id}"}
        if reading.duration is None:
            resource["effectiveDateTime"] = reading.time.isoformat()
        else:
            resource["effectivePeriod"] = {
                "start": reading.time.isoformat(),
                "end": (reading.time + reading.duration).isoformat(),
            }
        resource["issued"] = issued
        resource["device"] = {"reference": f"Device/{attribution.device_resource_id}", "display": attribution.device_id}
        if entry.value is not None:
            resource["valueQuantity"] = _quantity(entry.value, entry.unit.display)
        elif entry.components:
            resource["component"] = [
                {"code": _component_code(spec), "valueQuantity": _quantity(value, entry.unit.display)}
                for spec, value in entry.components
            ]
        elif reading.absent is not None:
            absent = _absent_reason(reading.absent.value)
            if kind.compound:
                # The bp profile requires its components: each carries the reason instead.
                resource["component"] = [
                    {"code": _component_code(spec), "dataAbsentReason": absent}
                    for spec in kind.components
                    if spec.name in kind.required_components
                ]
            else:
                resource["dataAbsentReason"] = absent
        if reading.flags:
            resource["interpretation"] = [{"coding": [_INTERPRETATIONS[flag].as_fhir()]} for flag in sorted(reading.flags)]
        return MappedObservation(
            reading_key=key,
            time=reading.time,
            patient_id=attribution.patient_id,
            device_resource_id=attribution.device_resource_id,
            kind=kind.name,
            code=static.primary_code,
            value=entry.value.value if entry.value is not None else None,
            unit=entry.unit.ucum,
            resource=dumps(resource),
            received_at=item.received_at,
            source=item.source,
        )


_DEFAULT_MAPPER = ObservationMapper()


def map_reading(
    reading: Reading,
    attribution: Attribution,
    received_at: datetime,
    *,
    source: str,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> MappedObservation:
    """Map one reading with the default ranges (no gateway Device); raises a quarantine-able error."""
    mapper = (
        _DEFAULT_MAPPER
        if future_tolerance == DEFAULT_FUTURE_TOLERANCE
        else ObservationMapper(MapperContext(None, future_tolerance))
    )
    return mapper.map_one(MappingInput(reading, attribution, received_at, source))


@dataclass(frozen=True, slots=True)
class StaticParts:
    meta: orjson.Fragment | None
    category: orjson.Fragment
    code: orjson.Fragment
    primary_code: str


@functools.cache
def static_parts(kind_name: str, site: str | None, unit: str) -> StaticParts:
    """The parts of an Observation that depend only on kind, site and unit, serialized once."""
    kind = CATALOGUE[kind_name]
    codings = list(kind.codings)
    choice = kind.unit_choice(unit)
    if choice is not None and choice.loinc is not None:
        codings = [choice.loinc if coding.system == LOINC else coding for coding in codings]
    if site is not None:
        spot = kind.sites[site]
        loinc = [coding for coding in codings if coding.system == LOINC]
        codings = [*loinc, *([spot.loinc] if spot.loinc else []), spot.mdc]
    categories: list[dict[str, object]] = []
    if kind.vital_sign:
        categories.append({
            "coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}],
            "text": "Vital Signs",
        })  # fmt: skip
    categories.append({"coding": [{"system": PHD_CATEGORY, "code": "phd", "display": "PHD generated"}]})
    meta = None
    if kind.profile is not None:
        meta = orjson.Fragment(orjson.dumps({"profile": [VITAL_SIGNS_PROFILE, PROFILE_BASE + kind.profile]}))
    code = {"coding": [coding.as_fhir() for coding in codings], "text": kind.text if site is None else f"{kind.text} ({site})"}
    return StaticParts(meta, orjson.Fragment(orjson.dumps(categories)), orjson.Fragment(orjson.dumps(code)), codings[0].code)


@functools.cache
def _component_code(spec: ComponentSpec) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps({"coding": [coding.as_fhir() for coding in spec.codings]}))


@functools.cache
def _absent_reason(code: str) -> orjson.Fragment:
    return orjson.Fragment(
        orjson.dumps({"coding": [{"system": DATA_ABSENT_REASON_SYSTEM, "code": code, "display": _ABSENT_DISPLAY[code]}]}),
    )


def _components(
    reading: Reading, kind: VitalKind, accepted: tuple[str, ...]
) -> tuple[tuple[ComponentSpec, NormalizedQuantity], ...]:
    if not reading.components:
        raise NormalizeError(
            ReasonCode.MALFORMED_FRAME, f"{kind.name} takes 'components' ({', '.join(c.name for c in kind.components)})"
        )
    missing = sorted(kind.required_components - {name for name, _ in reading.components})
    if missing:
        raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} needs component(s) {', '.join(missing)}")
    normalized: list[tuple[ComponentSpec, NormalizedQuantity]] = []
    for name, quantity in reading.components:
        spec = kind.component(name)
        if spec is None:
            raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} has no component {name!r}")
        normalized.append((spec, normalize(quantity, accepted, f"{kind.name} {name}")))
    return tuple(normalized)


def _checked_values(position: int, entry: _Normalized) -> list[CheckedValue]:
    if entry.value is not None:
        return [CheckedValue(position, entry.kind.name, None, entry.value.unit, entry.value.value)]
    return [CheckedValue(position, entry.kind.name, spec.name, value.unit, value.value) for spec, value in entry.components]


def _pressure_order(entry: _Normalized) -> str | None:
    values = {spec.name: value.value for spec, value in entry.components}
    systolic, diastolic = values.get("systolic"), values.get("diastolic")
    if systolic is not None and diastolic is not None and diastolic >= systolic:
        return f"{entry.kind.name}: diastolic {diastolic} is not below systolic {systolic}"
    return None


def _quantity(normalized: NormalizedQuantity, display: str) -> dict[str, object]:
    quantity: dict[str, object] = {"value": normalized.value, "unit": display, "system": UCUM, "code": normalized.unit}
    if normalized.original is not None:
        quantity["extension"] = [{"url": ORIGINAL_QUANTITY_EXTENSION, "valueQuantity": _original(normalized.original)}]
    return quantity


def _original(original: Quantity) -> dict[str, object]:
    return {"value": original.value, "unit": original.unit}
