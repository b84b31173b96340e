"""Readings -> FHIR R4 Observations: codes, units, identity, and validity against the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.errors import InputRejectedError, NormalizeError, ReasonCode, ValidationError
from device_adapters.readings import Quantity, Reading
from fhir_mapper.catalogue import CATALOGUE, kinds_for_token
from fhir_mapper.identity import reading_key
from fhir_mapper.observation import Attribution, map_reading
from fhir_mapper.units import normalize, to_ucum
from fhir_mapper.validation import FhirValidationError, validate_resource

DEVICE = uuid.UUID("00000000-0000-4000-8000-000000000001")
WHO = Attribution("patient-a", DEVICE, "watch-1")
RECEIVED = datetime(2026, 11, 22, 9, 0, 5, tzinfo=UTC)
AT = datetime(2026, 11, 22, 10, 0, tzinfo=timezone(timedelta(hours=1)))


def _map(kind: str, value: str | None, unit: str, components: dict[str, str] | None = None) -> dict[str, Any]:
    if components is None:
        reading = Reading("watch-1", kind, AT, quantity=Quantity(Decimal(value or "0"), unit))
    else:
        reading = Reading("watch-1", kind, AT, components=tuple((n, Quantity(Decimal(v), unit)) for n, v in components.items()))
    mapped = map_reading(reading, WHO, RECEIVED, source="mqtt")
    resource: dict[str, Any] = orjson.loads(mapped.resource)
    validate_resource(mapped.resource)
    return resource


def test_heart_rate_observation_golden() -> None:
    key = reading_key("watch-1", "patient-a", "heart_rate", AT)
    assert _map("heart_rate", "72", "bpm") == {
        "resourceType": "Observation",
        "id": str(key),
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/heartrate"]},
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{key}"}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    },
                ],
                "text": "Vital Signs",
            },
        ],
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
                {"system": "urn:iso:std:iso:11073:10101", "code": "147842", "display": "MDC_ECG_HEART_RATE"},
            ],
            "text": "Heart rate",
        },
        "subject": {"reference": "Patient/patient-a"},
        "effectiveDateTime": "2026-11-22T10:00:00+01:00",
        "issued": "2026-11-22T09:00:05+00:00",
        "device": {"reference": f"Device/{DEVICE}", "display": "watch-1"},
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def test_blood_pressure_in_kpa_becomes_a_panel_in_mmhg_keeping_the_original() -> None:
    resource = _map("blood_pressure", None, "kPa", {"systolic": "16.0", "diastolic": "10.7"})
    assert resource["code"]["coding"][0]["code"] == "85354-9"
    systolic, diastolic = resource["component"]
    assert systolic["code"]["coding"][0]["code"] == "8480-6"
    assert systolic["valueQuantity"]["code"] == "mm[Hg]"
    assert systolic["valueQuantity"]["value"] == 120  # 16.0 kPa = 120.01 mmHg, three significant digits
    assert systolic["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": 16.0, "unit": "kPa"}
    assert diastolic["valueQuantity"]["value"] == 80.3  # 10.7 kPa = 80.26 mmHg


@pytest.mark.parametrize(
    ("value", "unit", "canonical", "expected"),
    [
        ("98.6", "°F", "Cel", "37.0"),
        ("100.4", "[degF]", "Cel", "38.00"),
        ("154", "lbs", "kg", "69.9"),
        ("70500", "g", "kg", "70.500"),
        ("1.75", "m", "cm", "175"),
        ("69", "in", "cm", "175"),
        ("2.0", "kg", "kg", "2.0"),
        ("120", "mm Hg", "mm[Hg]", "120"),
        ("120", "mmhg", "mm[Hg]", "120"),
        ("60", "BPM", "/min", "60"),
        ("70.2", "kg ", "kg", "70.2"),
    ],
)
def test_unit_normalization(value: str, unit: str, canonical: str, expected: str) -> None:
    normalized = normalize(Quantity(Decimal(value), unit), canonical, "test")
    assert str(normalized.value) == expected
    assert normalized.unit == canonical


@pytest.mark.parametrize("unit", ["furlongs", "mmol", "KG/M", "beats"])
def test_unknown_units_are_never_guessed(unit: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        to_ucum(unit)
    assert caught.value.reason is ReasonCode.UNIT_UNKNOWN


def test_a_unit_of_the_wrong_dimension_is_unit_unknown() -> None:
    with pytest.raises(NormalizeError) as caught:
        map_reading(Reading("w", "heart_rate", AT, quantity=Quantity(Decimal(70), "kg")), WHO, RECEIVED, source="mqtt")
    assert caught.value.reason is ReasonCode.UNIT_UNKNOWN


def test_unsupported_type() -> None:
    with pytest.raises(NormalizeError) as caught:
        map_reading(Reading("w", "mood", AT, quantity=Quantity(Decimal(7), "%")), WHO, RECEIVED, source="mqtt")
    assert caught.value.reason is ReasonCode.UNSUPPORTED_TYPE


def test_future_timestamps_are_refused_beyond_the_tolerance() -> None:
    soon = Reading("w", "heart_rate", RECEIVED + timedelta(minutes=4), quantity=Quantity(Decimal(70), "/min"))
    assert map_reading(soon, WHO, RECEIVED, source="mqtt").time == soon.time
    late = Reading("w", "heart_rate", RECEIVED + timedelta(minutes=6), quantity=Quantity(Decimal(70), "/min"))
    with pytest.raises(ValidationError) as caught:
        map_reading(late, WHO, RECEIVED, source="mqtt")
    assert caught.value.reason is ReasonCode.FUTURE_TIMESTAMP


def test_blood_pressure_needs_systolic_and_diastolic() -> None:
    reading = Reading("c", "blood_pressure", AT, components=(("systolic", Quantity(Decimal(120), "mm[Hg]")),))
    with pytest.raises(NormalizeError) as caught:
        map_reading(reading, WHO, RECEIVED, source="mqtt")
    assert "diastolic" in caught.value.detail


def test_reading_key_is_the_same_instant_whatever_the_offset() -> None:
    same_instant = AT.astimezone(UTC)
    assert reading_key("d", "p", "heart_rate", AT) == reading_key("d", "p", "heart_rate", same_instant)
    assert reading_key("d", "p", "heart_rate", AT) != reading_key("d", "p", "pulse_rate", AT)
    assert reading_key("d", "p", "heart_rate", AT) != reading_key("d", "q", "heart_rate", AT)
    assert reading_key("d", "p", "heart_rate", AT) != reading_key("d", "p", "heart_rate", AT + timedelta(microseconds=1))


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_every_catalogue_kind_maps_to_a_valid_observation(kind: str) -> None:
    spec = CATALOGUE[kind]
    if spec.compound:
        resource = _map(kind, None, spec.unit, {component.name: "90" for component in spec.components})
    else:
        resource = _map(kind, "42.5", spec.unit)
        assert resource["valueQuantity"]["code"] == spec.unit
    assert resource["code"]["coding"][-1]["system"] == "urn:iso:std:iso:11073:10101"


def test_validation_rejects_a_broken_observation() -> None:
    with pytest.raises(FhirValidationError):
        validate_resource({"resourceType": "Observation", "code": {"text": "x"}, "valueQuantity": "72"})


def test_code_tokens_find_kinds_by_loinc_and_mdc() -> None:
    assert kinds_for_token(None, "8867-4") == {"heart_rate", "pulse_rate"}
    assert kinds_for_token("urn:iso:std:iso:11073:10101", "147842") == {"heart_rate"}
    assert kinds_for_token("http://loinc.org", "147842") == frozenset()


_values = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**11), max_value=10**11, places=3)
_units = st.sampled_from(
    ["/min", "bpm", "%", "Cel", "°F", "kg", "lbs", "g", "cm", "m", "in", "mmHg", "kPa", "kg/m2", "parsec", " kg "]
)
_kinds = st.sampled_from([*sorted(CATALOGUE), "mood"])
# hypothesis takes naive bounds and attaches the zone itself
_times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001


@settings(max_examples=3000, deadline=None)
@given(
    _kinds,
    _values,
    _units,
    _times,
    st.lists(st.sampled_from(["systolic", "diastolic", "mean", "pulse"]), max_size=4, unique=True),
)
def test_any_parsed_reading_maps_or_is_rejected_with_a_reason(
    kind: str, value: Decimal, unit: str, at: datetime, component_names: list[str]
) -> None:
    if component_names:
        reading = Reading("w", kind, at, components=tuple((name, Quantity(value, unit)) for name in component_names))
    else:
        reading = Reading("w", kind, at, quantity=Quantity(value, unit))
    try:
        mapped = map_reading(reading, WHO, RECEIVED, source="mqtt")
    except InputRejectedError as exc:
        rejected: InputRejectedError | None = exc
    else:
        rejected = None
        assert mapped.kind == kind
        assert orjson.loads(mapped.resource)["resourceType"] == "Observation"
    if rejected is not None:
        assert rejected.reason in ReasonCode
