"""Reading + attribution -> FHIR R4 Observation, ready to store.

Builds plain JSON (no pydantic on the hot path); :mod:`fhir_mapper.validation` checks the
result against the FHIR models in tests and in the mapping debugger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from device_adapters.errors import NormalizeError, ReasonCode, ValidationError
from device_adapters.jsonwire import dumps
from device_adapters.readings import Quantity, Reading
from fhir_mapper.catalogue import CATALOGUE, OBSERVATION_CATEGORY, UCUM, VITAL_SIGNS_PROFILE, Coding, VitalKind
from fhir_mapper.identity import IDENTIFIER_SYSTEM, identifier_value, reading_key
from fhir_mapper.units import NormalizedQuantity, normalize

ORIGINAL_QUANTITY_EXTENSION = "https://pulsebridge.dev/fhir/StructureDefinition/original-quantity"
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)

_VITAL_SIGNS_CATEGORY = {
    "coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}],
    "text": "Vital Signs",
}


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a reading belongs to: resolved from the registry by the device's time."""

    patient_id: str
    device_resource_id: uuid.UUID
    device_id: str
    """The device's own id (MQTT topic segment, serial)."""


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


def map_reading(
    reading: Reading,
    attribution: Attribution,
    received_at: datetime,
    *,
    source: str,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> MappedObservation:
    """Normalize one reading and build its Observation, or raise a quarantine-able error."""
    kind = CATALOGUE.get(reading.kind)
    if kind is None:
        raise NormalizeError(ReasonCode.UNSUPPORTED_TYPE, f"reading type {reading.kind!r} is not in the catalogue")
    if reading.time > received_at + future_tolerance:
        raise ValidationError(
            ReasonCode.FUTURE_TIMESTAMP,
            f"time {reading.time.isoformat()} is more than {future_tolerance} after reception at {received_at.isoformat()}",
        )
    key = reading_key(attribution.device_id, attribution.patient_id, kind.name, reading.time)
    resource: dict[str, object] = {
        "resourceType": "Observation",
        "id": str(key),
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": identifier_value(key)}],
        "status": "final",
    }
    if kind.profile is not None:
        resource["meta"] = {"profile": [VITAL_SIGNS_PROFILE + kind.profile]}
    if kind.vital_sign:
        resource["category"] = [_VITAL_SIGNS_CATEGORY]
    resource["code"] = _concept(kind.codings, kind.text)
    resource["subject"] = {"reference": f"Patient/{attribution.patient_id}"}
    resource["effectiveDateTime"] = reading.time.isoformat()
    resource["issued"] = received_at.astimezone(UTC).isoformat()
    resource["device"] = {"reference": f"Device/{attribution.device_resource_id}", "display": attribution.device_id}

    value: Decimal | None = None
    if kind.compound:
        resource["component"] = _components(reading, kind)
    else:
        if reading.quantity is None:
            raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} takes a 'value', not 'components'")
        normalized = normalize(reading.quantity, kind.unit, kind.name)
        value = normalized.value
        resource["valueQuantity"] = _quantity(normalized, kind.unit_display)

    code = kind.loinc.code if kind.loinc is not None else kind.mdc.code
    return MappedObservation(
        reading_key=key,
        time=reading.time,
        patient_id=attribution.patient_id,
        device_resource_id=attribution.device_resource_id,
        kind=kind.name,
        code=code,
        value=value,
        unit=kind.unit,
        resource=dumps(resource),
        received_at=received_at,
        source=source,
    )


def _components(reading: Reading, kind: VitalKind) -> list[dict[str, object]]:
    if not reading.components:
        raise NormalizeError(
            ReasonCode.MALFORMED_FRAME, f"{kind.name} takes 'components' ({', '.join(c.name for c in kind.components)})"
        )
    given = {name for name, _ in reading.components}
    missing = sorted(kind.required_components - given)
    if missing:
        raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} needs component(s) {', '.join(missing)}")
    components: list[dict[str, object]] = []
    for name, quantity in reading.components:
        spec = kind.component(name)
        if spec is None:
            raise NormalizeError(ReasonCode.MALFORMED_FRAME, f"{kind.name} has no component {name!r}")
        normalized = normalize(quantity, kind.unit, f"{kind.name} {name}")
        components.append({"code": _concept(spec.codings, None), "valueQuantity": _quantity(normalized, kind.unit_display)})
    return components


def _concept(codings: tuple[Coding, ...], text: str | None) -> dict[str, object]:
    concept: dict[str, object] = {"coding": [coding.as_fhir() for coding in codings]}
    if text is not None:
        concept["text"] = text
    return concept


def _quantity(normalized: NormalizedQuantity, display: str) -> dict[str, object]:
    quantity: dict[str, object] = {"value": normalized.value, "unit": display, "system": UCUM, "code": normalized.unit}
    if normalized.original is not None:
        quantity["extension"] = [{"url": ORIGINAL_QUANTITY_EXTENSION, "valueQuantity": _original(normalized.original)}]
    return quantity


def _original(original: Quantity) -> dict[str, object]:
    return {"value": original.value, "unit": original.unit}
