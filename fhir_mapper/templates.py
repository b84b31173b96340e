"""The constant parts of Observations, serialized once and reused for every reading.

Everything here depends only on the kind, site and unit (or on one patient and device), so it
is built on first use and cached: the ingest hot path only fills in key, times and value.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import orjson

from device_adapters.readings import ReadingFlag
from fhir_mapper.catalogue import (
    CATALOGUE,
    LOINC,
    PROFILE_BASE,
    UCUM,
    VITAL_SIGNS_CATEGORY,
    VITAL_SIGNS_PROFILE,
    Coding,
    ComponentSpec,
    kind_categories,
)

ORIGINAL_QUANTITY_EXTENSION = "https://pulsebridge.dev/fhir/StructureDefinition/original-quantity"
GATEWAY_DEVICE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ASN1_TO_HL7 = "http://terminology.hl7.org/CodeSystem/ASN1ToHL7"

INTERPRETATIONS: Mapping[ReadingFlag, Coding] = MappingProxyType({
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
class StaticParts:
    meta: orjson.Fragment | None
    category: orjson.Fragment
    code: orjson.Fragment
    primary_code: str
    """The code stored in the observations table's ``code`` column."""


@functools.cache
def static_parts(kind_name: str, site: str | None, unit: str) -> StaticParts:
    """meta, category and code of an Observation of this kind, site and unit."""
    kind = CATALOGUE[kind_name]
    codings = list(kind.codings)
    choice = kind.unit_choice(unit)
    if choice is not None and choice.loinc is not None:
        codings = [choice.loinc if coding.system == LOINC else coding for coding in codings]
    if site is not None:
        spot = kind.sites[site]
        loinc = [coding for coding in codings if coding.system == LOINC]
        codings = [*loinc, *([spot.loinc] if spot.loinc else []), spot.mdc]
    categories: list[dict[str, object]] = [
        # The vital-signs profile's category slice carries text too.
        {"coding": [coding.as_fhir()], "text": coding.display}
        if coding == VITAL_SIGNS_CATEGORY
        else {"coding": [coding.as_fhir()]}
        for coding in kind_categories(kind)
    ]
    meta = None
    if kind.profile is not None:
        meta = orjson.Fragment(orjson.dumps({"profile": [VITAL_SIGNS_PROFILE, PROFILE_BASE + kind.profile]}))
    code = {"coding": [coding.as_fhir() for coding in codings], "text": kind.text if site is None else f"{kind.text} ({site})"}
    return StaticParts(meta, orjson.Fragment(orjson.dumps(categories)), orjson.Fragment(orjson.dumps(code)), codings[0].code)


def gateway_extension(gateway_device_id: uuid.UUID | None) -> orjson.Fragment | None:
    if gateway_device_id is None:
        return None
    return orjson.Fragment(
        orjson.dumps([{"url": GATEWAY_DEVICE_EXTENSION, "valueReference": {"reference": f"Device/{gateway_device_id}"}}]),
    )


@dataclass(frozen=True, slots=True)
class QuantityTemplate:
    """A one-value Observation as text with holes: the members from ``meta`` to ``code``, the unit members."""

    head: str
    unit_members: str
    original_unit: str | None
    """The device's unit as a JSON string, when the value was converted from it."""


@functools.cache
def quantity_template(
    kind_name: str, site: str | None, unit: str, extension: orjson.Fragment | None, original_unit: str | None
) -> QuantityTemplate:
    static = static_parts(kind_name, site, unit)
    choice = CATALOGUE[kind_name].unit_choice(unit)
    if choice is None:
        msg = f"{unit!r} is not a unit of {kind_name}"
        raise ValueError(msg)
    head = ""
    if static.meta is not None:
        head += f'"meta":{orjson.dumps(static.meta).decode()},'
    if extension is not None:
        head += f'"extension":{orjson.dumps(extension).decode()},'
    head += f'"status":"final","category":{orjson.dumps(static.category).decode()},"code":{orjson.dumps(static.code).decode()},'
    members = orjson.dumps({"unit": choice.display, "system": UCUM, "code": unit}).decode()[1:-1]
    original = orjson.dumps(original_unit).decode() if original_unit is not None else None
    return QuantityTemplate(head, members, original)


REFERENCES_KEPT = 65_536
_references: dict[tuple[str, str, int], tuple[str, str]] = {}


def references(patient_id: str, device_resource_id: uuid.UUID, device_id: str) -> tuple[str, str]:
    """``subject`` and ``device`` members for one patient's device, JSON-escaped once.

    Kept in a plain dict keyed by the UUID's integer (hashing a UUID runs Python code) and
    emptied when full: a gateway's active devices fit, and a miss costs about a microsecond.
    """
    key = (patient_id, device_id, device_resource_id.int)
    found = _references.get(key)
    if found is None:
        if len(_references) >= REFERENCES_KEPT:
            _references.clear()
        subject = orjson.dumps({"reference": f"Patient/{patient_id}"}).decode()
        device = orjson.dumps({"reference": f"Device/{device_resource_id}", "display": device_id}).decode()
        found = _references[key] = (f'"subject":{subject}', f'"device":{device}')
    return found


@functools.cache
def component_code(spec: ComponentSpec) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps({"coding": [coding.as_fhir() for coding in spec.codings]}))


@functools.cache
def absent_reason(code: str) -> orjson.Fragment:
    return orjson.Fragment(
        orjson.dumps({"coding": [{"system": DATA_ABSENT_REASON_SYSTEM, "code": code, "display": _ABSENT_DISPLAY[code]}]}),
    )
