"""Our Observations agree with the official FHIR R4 examples (npm hl7.fhir.r4.examples@4.0.1).

The examples are fetched by ``scripts/fetch-fhir-examples.sh`` (part of ``make test``). Each
example's value and unit go through the mapper as a device would send them; the result must
carry the example's LOINC code, its MDC codes, its UCUM unit (or the canonical one with the
original kept), its profile and its category.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from device_adapters.readings import Quantity, Reading
from fhir_mapper.catalogue import CATALOGUE, LOINC, MDC
from fhir_mapper.observation import Attribution, MappingInput, ObservationMapper
from fhir_mapper.templates import ORIGINAL_QUANTITY_EXTENSION
from fhir_mapper.validation import validate_resource

EXAMPLES = Path(__file__).resolve().parent.parent / ".cache" / "fhir-r4-examples"
WHO = Attribution("example-patient", uuid.UUID("00000000-0000-4000-8000-000000000003"), "example-device")
AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

CASES = {
    "Observation-blood-pressure.json": "blood_pressure",
    "Observation-heart-rate.json": "heart_rate",
    "Observation-satO2.json": "spo2",
    "Observation-body-temperature.json": "body_temperature",
    "Observation-example.json": "body_weight",
    "Observation-f001.json": "blood_glucose_whole_blood",
    "Observation-respiratory-rate.json": "respiratory_rate",
    "Observation-body-height.json": "body_height",
    "Observation-bmi.json": "bmi",
}
COMPONENTS = {"8480-6": "systolic", "8462-4": "diastolic", "8478-0": "mean"}


def _example(name: str) -> dict[str, Any]:
    path = EXAMPLES / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make test` (scripts/fetch-fhir-examples.sh fetches the R4 examples)")
    example: dict[str, Any] = orjson.loads(path.read_bytes())
    return example


def _reading(kind: str, example: dict[str, Any]) -> Reading:
    if "component" in example:
        components = tuple(
            (
                COMPONENTS[c["code"]["coding"][0]["code"]],
                Quantity(Decimal(str(c["valueQuantity"]["value"])), c["valueQuantity"]["code"]),
            )
            for c in example["component"]
            if c["code"]["coding"][0]["code"] in COMPONENTS
        )
        return Reading("example-device", kind, AT, components=components)
    quantity = example["valueQuantity"]
    return Reading("example-device", kind, AT, quantity=Quantity(Decimal(str(quantity["value"])), quantity["code"]))


def _codes(concept: dict[str, Any], system: str) -> list[str]:
    return [coding["code"] for coding in concept.get("coding", []) if coding.get("system") == system]


@pytest.mark.parametrize(("name", "kind"), sorted(CASES.items()))
def test_mapper_agrees_with_the_official_example(name: str, kind: str) -> None:
    example = _example(name)
    mapped = ObservationMapper().map_one(MappingInput(_reading(kind, example), WHO, AT, "test"))
    ours: dict[str, Any] = orjson.loads(mapped.resource)
    validate_resource(ours)

    assert _codes(ours["code"], LOINC)[0] == _codes(example["code"], LOINC)[0]
    assert set(_codes(example["code"], MDC)) <= set(_codes(ours["code"], MDC))
    assert set(example.get("meta", {}).get("profile", [])) <= set(ours.get("meta", {}).get("profile", []))
    example_categories = {(c["system"], c["code"]) for cat in example.get("category", []) for c in cat["coding"]}
    assert example_categories <= {(c["system"], c["code"]) for cat in ours.get("category", []) for c in cat["coding"]}

    if "valueQuantity" in example:
        pairs = [(example, ours)]
    else:
        theirs = [c for c in example["component"] if c["code"]["coding"][0]["code"] in COMPONENTS]
        pairs = list(zip(theirs, ours["component"], strict=True))
    accepted = {choice.ucum for choice in CATALOGUE[kind].units}
    for their_part, our_part in pairs:
        assert _codes(their_part["code"], LOINC)[0] == _codes(our_part["code"], LOINC)[0]
        expected, got = their_part["valueQuantity"], our_part["valueQuantity"]
        assert got["system"] == expected["system"] == "http://unitsofmeasure.org"
        if expected["code"] in accepted:
            assert (got["code"], Decimal(str(got["value"]))) == (expected["code"], Decimal(str(expected["value"])))
        else:
            assert got["code"] == CATALOGUE[kind].canonical_unit.ucum
            (original,) = [e["valueQuantity"] for e in got["extension"] if e["url"] == ORIGINAL_QUANTITY_EXTENSION]
            assert (Decimal(str(original["value"])), original["unit"]) == (Decimal(str(expected["value"])), expected["code"])
