"""Readings + attribution -> FHIR R4 Observations, ready to store.

Two paths write the same JSON. The hot path takes the common reading (one value, no flags)
and fills a per-(kind, unit, site) text template; every other shape goes through plain dicts
serialized by orjson. ``tests/test_mapper.py`` checks that both write the same bytes, and
:mod:`fhir_mapper.validation` checks every shape against the FHIR models.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from device_adapters.errors import InputRejectedError, NormalizeError, ReasonCode, ValidationError
from device_adapters.jsonwire import dumps
from device_adapters.readings import Quantity, Reading
from fhir_mapper.catalogue import CATALOGUE, UCUM, ComponentSpec, UnitChoice, VitalKind
from fhir_mapper.identity import IDENTIFIER_SYSTEM, device_stamp, identifier_value, key_text, utc_text, uuid5_text
from fhir_mapper.plausibility import CheckedValues, PlausibilityPolicy
from fhir_mapper.templates import (
    ASN1_TO_HL7,
    INTERPRETATIONS,
    ORIGINAL_QUANTITY_EXTENSION,
    QuantityTemplate,
    absent_reason,
    component_code,
    gateway_extension,
    quantity_template,
    references,
    static_parts,
)
from fhir_mapper.units import CONVERSIONS, Conversion, NormalizedQuantity, keep_significant_digits, normalize, to_ucum

DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)


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


class MappedObservation(NamedTuple):
    """A normalized reading and its FHIR Observation: one row of the observations table.

    Immutable like the frozen dataclasses between the other stages, but a NamedTuple: one is
    built per reading on the hot path, and a frozen dataclass costs several times more to build.
    """

    key: str
    """The reading key as text (the Observation's id); see :attr:`reading_key`."""
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

    @property
    def reading_key(self) -> uuid.UUID:
        return uuid.UUID(self.key)


@dataclass(frozen=True, slots=True)
class MapperContext:
    gateway_device_id: uuid.UUID | None = None
    """The gateway's own Device, named in every Observation's gatewayDevice extension."""
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
    plausibility: PlausibilityPolicy = field(default_factory=PlausibilityPolicy)


class _Plan(NamedTuple):
    """How to map a one-value reading of a kind in a unit at a site: worked out once, then reused."""

    kind: VitalKind
    choice: UnitChoice
    conversion: Conversion | None
    bounds: tuple[float, float]
    template: QuantityTemplate
    primary_code: str


class _Normalized(NamedTuple):
    item: MappingInput
    kind: VitalKind
    unit: UnitChoice
    value: NormalizedQuantity | None
    components: tuple[tuple[ComponentSpec, NormalizedQuantity], ...]


class ObservationMapper:
    """Maps batches: normalize each reading, check plausibility for the whole batch at once, build JSON."""

    def __init__(self, context: MapperContext | None = None) -> None:
        self._context = context or MapperContext()
        self._extension = gateway_extension(self._context.gateway_device_id)
        self._plans: dict[tuple[str, str, str | None], _Plan] = {}

    def map_batch(self, items: Sequence[MappingInput]) -> tuple[list[MappedObservation], list[tuple[int, InputRejectedError]]]:
        """Map every item; rejected ones come back with their position in ``items``."""
        rejected: list[tuple[int, InputRejectedError]] = []
        fast: dict[int, tuple[MappingInput, _Plan, Decimal]] = {}
        general: dict[int, _Normalized] = {}
        checked = CheckedValues()
        deadlines: dict[datetime, datetime] = {}
        for position, item in enumerate(items):
            try:
                self._triage(position, item, deadlines, fast, general, checked)
            except InputRejectedError as exc:
                rejected.append((position, exc))

        def label(position: int) -> tuple[str, str | None, str, Decimal]:
            _, plan, value = fast[position]
            return plan.kind.name, None, plan.choice.ucum, value

        violations = self._context.plausibility.violations(checked, label)
        issued: dict[datetime, str] = {}
        if not general and not violations:  # the usual batch: every reading on the hot path, all plausible
            build = self._build_fast
            return [build(item, plan, value, _issued(issued, item.received_at)) for item, plan, value in fast.values()], rejected
        mapped: list[MappedObservation] = []
        for position in sorted(fast.keys() | general.keys()):
            entry = general.get(position)
            reason = violations.get(position) or (_pressure_order(entry) if entry is not None else None)
            if reason is not None:
                rejected.append((position, ValidationError(ReasonCode.IMPLAUSIBLE_VALUE, reason)))
            elif entry is not None:
                mapped.append(self._build_general(entry, _issued(issued, entry.item.received_at)))
            else:
                item, plan, value = fast[position]
                mapped.append(self._build_fast(item, plan, value, _issued(issued, item.received_at)))
        rejected.sort(key=lambda pair: pair[0])
        return mapped, rejected

    def _triage(  # noqa: PLR0917 - private step of map_batch, sharing its working collections
        self,
        position: int,
        item: MappingInput,
        deadlines: dict[datetime, datetime],
        fast: dict[int, tuple[MappingInput, _Plan, Decimal]],
        general: dict[int, _Normalized],
        checked: CheckedValues,
    ) -> None:
        """Send one item down the hot path or the general one, noting its values for the range check."""
        reading, received = item.reading, item.received_at
        deadline = deadlines.get(received)
        if deadline is None:
            deadline = deadlines[received] = received + self._context.future_tolerance
        if reading.time > deadline:
            raise ValidationError(
                ReasonCode.FUTURE_TIMESTAMP,
                f"time {reading.time.isoformat()} is more than {self._context.future_tolerance} "
                f"after reception at {received.isoformat()}",
            )
        quantity = reading.quantity
        if quantity is not None and not reading.flags and not reading.status_codes:
            plan = self._plans.get((reading.kind, quantity.unit, reading.site)) or self._plan(reading, quantity)
            value = quantity.value
            if plan.conversion is not None:
                value = keep_significant_digits(plan.conversion.apply(value), value)
            fast[position] = (item, plan, value)
            checked.add_fast(position, value, plan.bounds)
            return
        entry = self._normalize(item)
        general[position] = entry
        self._check_general(position, entry, checked)

    def map_one(self, item: MappingInput) -> MappedObservation:
        mapped, rejected = self.map_batch([item])
        if rejected:
            raise rejected[0][1]
        return mapped[0]

    # -- the hot path: one value, no flags ---------------------------------------------------

    def _plan(self, reading: Reading, quantity: Quantity) -> _Plan:
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
        plan = _Plan(
            kind,
            choice,
            conversion,
            self._context.plausibility.float_bounds(kind.name, None, choice.ucum),
            quantity_template(kind.name, reading.site, choice.ucum, self._extension, original_unit),
            static_parts(kind.name, reading.site, choice.ucum).primary_code,
        )
        self._plans[reading.kind, quantity.unit, reading.site] = plan
        return plan

    def _build_fast(self, item: MappingInput, plan: _Plan, value: Decimal, issued: str) -> MappedObservation:
        reading, attribution, template = item.reading, item.attribution, plan.template
        time = reading.time
        effective_time = time.isoformat()
        utc = effective_time if not time.utcoffset() else utc_text(time)
        if reading.device_time is not None:
            utc = device_stamp(reading.device_time)
        key = uuid5_text(
            key_text(
                attribution.device_id, attribution.patient_id, reading.kind, utc, duration=reading.duration, site=reading.site
            )
        )
        people = references(attribution.patient_id, attribution.device_resource_id, attribution.device_id)
        if reading.duration is None:
            effective = f'"effectiveDateTime":"{effective_time}"'
        else:
            effective = f'"effectivePeriod":{{"start":"{effective_time}","end":"{(time + reading.duration).isoformat()}"}}'
        extension = ""
        if template.original_unit is not None:
            original = reading.quantity.value if reading.quantity is not None else value
            extension = (
                f',"extension":[{{"url":"{ORIGINAL_QUANTITY_EXTENSION}",'
                f'"valueQuantity":{{"value":{format(original, "f")},"unit":{template.original_unit}}}}}]'
            )
        resource = (
            f'{{"resourceType":"Observation","id":"{key}","identifier":[{{"system":"{IDENTIFIER_SYSTEM}","value":"urn:uuid:{key}"}}],'
            f'{template.head}{people.subject},{effective},"issued":"{issued}",{people.device},'
            f'"valueQuantity":{{"value":{format(value, "f")},{template.unit_members}{extension}}}}}'
        ).encode()
        return MappedObservation(
            key, time, attribution.patient_id, attribution.device_resource_id, plan.kind.name, plan.primary_code, value,
            plan.choice.ucum, resource, item.received_at, item.source,
        )  # fmt: skip

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
            resource["effectiveDateTime"] = reading.time.isoformat()
        else:
            resource["effectivePeriod"] = {
                "start": reading.time.isoformat(),
                "end": (reading.time + reading.duration).isoformat(),
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


def _issued(cache: dict[datetime, str], received_at: datetime) -> str:
    text = cache.get(received_at)
    if text is None:
        text = cache[received_at] = received_at.astimezone(UTC).isoformat()
    return text


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
