"""Readings + attribution -> FHIR R4 Observations, ready to store.

Two paths write the same JSON. The hot path (:mod:`fhir_mapper.hot_path`) takes the common
reading (one value, no flags) a batch at a time and fills a per-(kind, unit, site) text
template; every other shape goes through plain dicts serialized by orjson.
 ``tests/test_mapper.py`` checks that both write the same bytes, and
:mod:`fhir_mapper.validation` checks every shape against the FHIR models.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np

from device_adapters.errors import InputRejectedError, NormalizeError, ReasonCode, ValidationError
from device_adapters.jsonwire import dumps
from device_adapters.readings import Quantity, Reading
from fhir_mapper.catalogue import CATALOGUE, UCUM, ComponentSpec, UnitChoice, VitalKind
from fhir_mapper.hot_path import ConvertedValues, FastEntry, FastPlan, build_observations, fhir_datetime, issued_text
from fhir_mapper.identity import IDENTIFIER_SYSTEM, device_stamp, identifier_value, key_text, utc_text, uuid5_text
from fhir_mapper.mapping_types import Attribution, MappedObservation, MappingInput
from fhir_mapper.plausibility import CheckedValues, PlausibilityPolicy
from fhir_mapper.templates import (
    ASN1_TO_HL7,
    INTERPRETATIONS,
    ORIGINAL_QUANTITY_EXTENSION,
    absent_reason,
    component_code,
    gateway_extension,
    quantity_template,
    static_parts,
)
from fhir_mapper.units import CONVERSIONS, NormalizedQuantity, normalize, to_ucum

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE",
    "Attribution",
    "MappedObservation",
    "MapperContext",
    "MappingInput",
    "ObservationMapper",
    "map_reading",
]

DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class MapperContext:
    gateway_device_id: uuid.UUID | None = None
    """The gateway's own Device, named in every Observation's gatewayDevice extension."""
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
    plausibility: PlausibilityPolicy = field(default_factory=PlausibilityPolicy)


class _Normalized(NamedTuple):
    item: MappingInput
    kind: VitalKind
    unit: UnitChoice
    value: NormalizedQuantity | None
    components: tuple[tuple[ComponentSpec, NormalizedQuantity], ...]


class _Triage:
    """One batch sorted by path: hot-path entries as parallel columns, the rest normalized."""

    __slots__ = ("checked", "fast", "fast_numbers", "fast_positions", "fast_slots", "general", "rejected")

    def __init__(self) -> None:
        self.fast: list[FastEntry] = []
        self.fast_positions: list[int] = []
        self.fast_numbers: list[float] = []
        self.fast_slots: list[int] = []
        self.general: dict[int, _Normalized] = {}
        self.checked = CheckedValues()
        self.rejected: list[tuple[int, InputRejectedError]] = []


class ObservationMapper:
    """Maps batches: normalize each reading, check plausibility for the whole batch at once, build JSON."""

    def __init__(self, context: MapperContext | None = None) -> None:
        self._context = context or MapperContext()
        self._extension = gateway_extension(self._context.gateway_device_id)
        self._plans: dict[tuple[str, str, str | None], FastPlan] = {}
        self._plan_bounds: list[tuple[float, float]] = []
        self._bounds: np.ndarray[tuple[int, int], np.dtype[np.float64]] | None = None

    def map_batch(self, items: Sequence[MappingInput]) -> tuple[list[MappedObservation], list[tuple[int, InputRejectedError]]]:
        """Map every item; rejected ones come back with their position in ``items``."""
        triage = self._triage(items)
        violations = self._violations(triage)
        rejected = triage.rejected
        if not triage.general and not violations:  # the usual batch: every reading on the hot path, all plausible
            return build_observations(triage.fast), rejected
        survivors = [
            (position, entry)
            for position, entry in zip(triage.fast_positions, triage.fast, strict=True)
            if position not in violations
        ]
        built = build_observations([entry for _, entry in survivors])
        fast_mapped = {position: observation for (position, _), observation in zip(survivors, built, strict=True)}
        issued_texts: dict[datetime, str] = {}
        mapped: list[MappedObservation] = []
        for position in sorted(fast_mapped.keys() | triage.general.keys() | violations.keys()):
            entry = triage.general.get(position)
            reason = violations.get(position) or (_pressure_order(entry) if entry is not None else None)
            if reason is not None:
                rejected.append((position, ValidationError(ReasonCode.IMPLAUSIBLE_VALUE, reason)))
            elif entry is not None:
                mapped.append(self._build_general(entry, issued_text(issued_texts, entry.item.received_at)))
            else:
                mapped.append(fast_mapped[position])
        rejected.sort(key=lambda pair: pair[0])
        return mapped, rejected

    def _triage(self, items: Sequence[MappingInput]) -> _Triage:
        """Send each item down the hot path or the general one, noting its values for the range check."""
        triage = _Triage()
        fast, positions, numbers, slots, plans = (
            triage.fast,
            triage.fast_positions,
            triage.fast_numbers,
            triage.fast_slots,
            self._plans,
        )
        deadlines: dict[datetime, datetime] = {}
        # One loop with the hot path written inline: a call per reading would cost more than its work.
        for position, item in enumerate(items):
            reading, received = item.reading, item.received_at
            deadline = deadlines.get(received)
            if deadline is None:
                deadline = deadlines[received] = received + self._context.future_tolerance
            try:
                if reading.time > deadline:
                    raise self._future(reading.time, received)
                quantity = reading.quantity
                if quantity is None or reading.flags or reading.status_codes:
                    entry = triage.general[position] = self._normalize(item)
                    self._check_general(position, entry, triage.checked)
                    continue
                plan = plans.get((reading.kind, quantity.unit, reading.site)) or self._plan(reading, quantity)
            except InputRejectedError as exc:
                triage.rejected.append((position, exc))
                continue
            value = quantity.value
            if plan.conversion is None:
                number = str(value)
                if "E" in number:  # decimal_json, inline
                    number = format(value, "f")
            else:
                value, number = plan.conversion.convert(value)
            fast.append((item, plan, value, number))
            positions.append(position)
            numbers.append(float(number))
            slots.append(plan.slot)
        return triage

    def _future(self, time: datetime, received: datetime) -> ValidationError:
        return ValidationError(
            ReasonCode.FUTURE_TIMESTAMP,
            f"time {time.isoformat()} is more than {self._context.future_tolerance} after reception at {received.isoformat()}",
        )

    def _violations(self, triage: _Triage) -> dict[int, str]:
        """Positions of implausible readings, both paths checked with one vectorized pass each."""
        policy = self._context.plausibility
        violations = policy.violations(triage.checked)
        if triage.fast:
            bounds = self._bounds_array()[triage.fast_slots]
            for index in policy.outside(triage.fast_numbers, bounds[:, 0], bounds[:, 1]):
                _, plan, value, _ = triage.fast[index]
                violations[triage.fast_positions[index]] = policy.reason(plan.kind.name, None, plan.choice.ucum, value)
        return violations

    def map_one(self, item: MappingInput) -> MappedObservation:
        mapped, rejected = self.map_batch([item])
        if rejected:
            raise rejected[0][1]
        return mapped[0]

    def _plan(self, reading: Reading, quantity: Quantity) -> FastPlan:
        kind = _kind(reading)
        if kind.compound:
            raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} takes 'components', not a 'value'")
        ucum = to_ucum(quantity.unit)
        choice = kind.unit_choice(ucum)
        conversion = None
        if choice is None:
            choice = kind.canonical_unit
            conversion = CONVERSIONS.get((ucum, choice.ucum))
            if conversion is None:
                raise NormalizeError(
                    ReasonCode.UNIT_UNKNOWN, f"unit {quantity.unit!r} cannot express {kind.name} (expected {choice.ucum!r})"
                )
        original_unit = quantity.unit if conversion is not None else None
        bounds = self._context.plausibility.float_bounds(kind.name, None, choice.ucum)
        plan = FastPlan(
            kind,
            choice,
            None if conversion is None else ConvertedValues(conversion),
            len(self._plan_bounds),
            quantity_template(kind.name, reading.site, choice.ucum, self._extension, original_unit),
            static_parts(kind.name, reading.site, choice.ucum).primary_code,
            "" if reading.site is None else f"|site={reading.site}",
        )
        self._plan_bounds.append(bounds)
        self._bounds = None
        self._plans[reading.kind, quantity.unit, reading.site] = plan
        return plan

    def _bounds_array(self) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
        """Each plan's plausible range, by plan slot, for the vectorized check."""
        if self._bounds is None:
            self._bounds = np.array(self._plan_bounds, dtype=np.float64).reshape(-1, 2)
        return self._bounds

    # -- every other shape: components, special values, flags ----------------------------------

    def _normalize(self, item: MappingInput) -> _Normalized:
        reading = item.reading
        kind = _kind(reading)
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

    def _check_general(self, position: int, entry: _Normalized, checked: CheckedValues) -> None:
        policy, kind = self._context.plausibility, entry.kind.name
        if entry.value is not None:
            checked.add(
                position, policy.float_bounds(kind, None, entry.value.unit), (kind, None, entry.value.unit, entry.value.value)
            )
        for spec, value in entry.components:
            checked.add(position, policy.float_bounds(kind, spec.name, value.unit), (kind, spec.name, value.unit, value.value))

    def _build_general(self, entry: _Normalized, issued: str) -> MappedObservation:
        item, kind, reading = entry.item, entry.kind, entry.item.reading
        attribution = item.attribution
        key = uuid5_text(
            key_text(
                attribution.device_id,
                attribution.patient_id,
                kind.name,
                device_stamp(reading.device_time) if reading.device_time is not None else utc_text(reading.time),
                duration=reading.duration,
                site=reading.site,
            )
        )
        static = static_parts(kind.name, reading.site, entry.unit.ucum)
        return MappedObservation(
            key, reading.time, attribution.patient_id, attribution.device_resource_id, kind.name, static.primary_code,
            entry.value.value if entry.value is not None else None, entry.unit.ucum, dumps(self.resource(entry, key, issued)),
            item.received_at, item.source,
        )  # fmt: skip

    def resource(self, entry: _Normalized, key: str, issued: str) -> dict[str, object]:
        """The Observation as a dict (every shape; the hot path writes the same for one value)."""
        item, kind, reading = entry.item, entry.kind, entry.item.reading
        attribution = item.attribution
        static = static_parts(kind.name, reading.site, entry.unit.ucum)
        resource: dict[str, object] = {
            "resourceType": "Observation",
            "id": key,
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": identifier_value(key)}],
        }
        if static.meta is not None:
            resource["meta"] = static.meta
        if self._extension is not None:
            resource["extension"] = self._extension
        resource["status"] = "final"
        resource["category"] = static.category
        resource["code"] = static.code
        resource["subject"] = {"reference": f"Patient/{attribution.patient_id}"}
        if reading.duration is None:
            resource["effectiveDateTime"] = fhir_datetime(reading.time)
        else:
            resource["effectivePeriod"] = {
                "start": fhir_datetime(reading.time),
                "end": fhir_datetime(reading.time + reading.duration),
            }
        resource["issued"] = issued
        resource["device"] = {"reference": f"Device/{attribution.device_resource_id}", "display": attribution.device_id}
        components: list[dict[str, object]] = []
        if entry.value is not None:
            resource["valueQuantity"] = _quantity(entry.value, entry.unit.display)
        elif entry.components:
            components = [
                {"code": component_code(spec), "valueQuantity": _quantity(value, entry.unit.display)}
                for spec, value in entry.components
            ]
        elif reading.absent is not None:
            absent = absent_reason(reading.absent.value)
            if kind.compound:
                # The bp profile requires its components: each carries the reason instead.
                components = [
                    {"code": component_code(spec), "dataAbsentReason": absent}
                    for spec in kind.components
                    if spec.name in kind.required_components
                ]
            else:
                resource["dataAbsentReason"] = absent
        if reading.flags:
            resource["interpretation"] = [{"coding": [INTERPRETATIONS[flag].as_fhir()]} for flag in sorted(reading.flags)]
        # Device status bits as the PHD IG writes them: one boolean component per set bit.
        components += [
            {"code": {"coding": [{"system": ASN1_TO_HL7, "code": code, "display": name}]}, "valueBoolean": True}
            for code, name in reading.status_codes
        ]
        if components:
            resource["component"] = components
        return resource

    def normalized(self, item: MappingInput) -> _Normalized:
        """The general path's view of one item (tests compare both paths with it)."""
        return self._normalize(item)


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


def _kind(reading: Reading) -> VitalKind:
    kind = CATALOGUE.get(reading.kind)
    if kind is None:
        raise NormalizeError(ReasonCode.UNSUPPORTED_TYPE, f"reading type {reading.kind!r} is not in the catalogue")
    if reading.site is not None and reading.site not in kind.sites:
        known = ", ".join(sorted(kind.sites)) or "none"
        raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} has no site {reading.site!r} (sites: {known})")
    return kind


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
