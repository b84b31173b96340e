"""Posted FHIR Observations become readings: the official R4 examples, and what is refused and why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from device_adapters.errors import InputRejectedError, ReasonCode
from device_adapters.jsonwire import loads_strict
from device_adapters.readings import AbsentReason, Quantity
from fhir_mapper.inbound import reading_from_observation
from fhir_mapper.observation import Attribution, MappingInput, ObservationMapper
from fhir_mapper.validation import validate_resource

EXAMPLES = Path(__file__).resolve().parent.parent / ".cache" / "fhir-r4-examples"
MAPPER = ObservationMapper()
RECEIVED = datetime(2026, 11, 30, 12, tzinfo=UTC)

ACCEPTED = {
    "Observation-blood-pressure.json": ("blood_pressure", None),
    "Observation-heart-rate.json": ("heart_rate", Quantity(Decimal(44), "/min")),
    "Observation-satO2.json": ("spo2", Quantity(Decimal(95), "%")),
    "Observation-body-temperature.json": ("body_temperature", Quantity(Decimal("36.5"), "Cel")),
    "Observation-example.json": ("body_weight", Quantity(Decimal(185), "[lb_av]")),
    "Observation-f001.json": ("blood_glucose_whole_blood", Quantity(Decimal("6.3"), "mmol/L")),
    "Observation-respiratory-rate.json": ("respiratory_rate", Quantity(Decimal(26), "/min")),
    "Observation-body-height.json": ("body_height", None),
    "Observation-bmi.json": ("bmi", Quantity(Decimal("16.2"), "kg/m2")),
}
REFUSED = {
    "Observation-blood-pressure-cancel.json": ReasonCode.MALFORMED_FRAME,  # status cancelled
    "Observation-f202.json": ReasonCode.MALFORMED_FRAME,  # entered-in-error
    "Observation-vitals-panel.json": ReasonCode.UNSUPPORTED_TYPE,
    "Observation-bloodgroup.json": ReasonCode.UNSUPPORTED_TYPE,
    "Observation-eye-color.json": ReasonCode.MALFORMED_FRAME,  # code has text only
}


def _example(name: str) -> dict[str, Any]:
    path = EXAMPLES / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make test` (scripts/fetch-fhir-examples.sh fetches the R4 examples)")
    document: dict[str, Any] = loads_strict(path.read_bytes())
    return document


def _map(resource: dict[str, Any]) -> bytes:
    inbound = reading_from_observation(resource, "dev-1")
    attribution = Attribution(inbound.subject or "p", uuid.uuid5(uuid.NAMESPACE_URL, "dev-1"), "dev-1")
    return MAPPER.map_one(MappingInput(inbound.reading, attribution, RECEIVED, "http")).resource


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_official_vital_sign_examples_become_readings(name: str) -> None:
    kind, quantity = ACCEPTED[name]
    inbound = reading_from_observation(_example(name), "dev-1")
    assert inbound.reading.kind == kind
    assert inbound.subject in {"example", "f001"}
    if quantity is not None:
        assert inbound.reading.quantity == quantity
    validate_resource(_map(_example(name)))


def test_the_blood_pressure_example_keeps_both_components() -> None:
    reading = reading_from_observation(_example("Observation-blood-pressure.json"), "dev-1").reading
    assert reading.components == (("systolic", Quantity(Decimal(107), "mm[Hg]")), ("diastolic", Quantity(Decimal(60), "mm[Hg]")))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_examples_that_are_not_vital_sign_results_are_refused_with_a_reason(name: str) -> None:
    with pytest.raises(InputRejectedError) as caught:
        reading_from_observation(_example(name), "dev-1")
    assert caught.value.reason == REFUSED[name]


def _observation(**members: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/pat-a"},
        "effectiveDateTime": "2026-11-30T08:15:00+01:00",
        "valueQuantity": {"value": Decimal(61), "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    return {name: value for name, value in (base | members).items() if value is not None}


def test_an_mdc_code_decides_between_kinds_sharing_a_loinc_code() -> None:
    pulse = {
        "coding": [{"system": "http://loinc.org", "code": "8867-4"}, {"system": "urn:iso:std:iso:11073:10101", "code": "149514"}]
    }
    assert reading_from_observation(_observation(code=pulse), "d").reading.kind == "pulse_rate"
    assert reading_from_observation(_observation(), "d").reading.kind == "heart_rate"


def test_a_date_without_time_is_anchored_at_midnight_utc_and_keys_by_its_text() -> None:
    reading = reading_from_observation(_observation(effectiveDateTime="1999-07-02"), "d").reading
    assert reading.time == datetime(1999, 7, 2, tzinfo=UTC)
    assert reading.device_time == "date:1999-07-02"
    month = reading_from_observation(_observation(effectiveDateTime="1999-07"), "d").reading
    assert (month.time, month.device_time) == (datetime(1999, 7, 1, tzinfo=UTC), "date:1999-07")


def test_a_period_gives_the_duration_and_an_instant_is_kept_with_its_offset() -> None:
    period = {"start": "2026-11-30T08:00:00+01:00", "end": "2026-11-30T08:15:00+01:00"}
    steps = {"coding": [{"system": "http://loinc.org", "code": "55423-8"}]}
    reading = reading_from_observation(
        _observation(
            code=steps, effectiveDateTime=None, effectivePeriod=period, valueQuantity={"value": Decimal(950), "unit": "steps"}
        ),
        "d",
    ).reading
    assert (reading.kind, reading.duration, reading.time.utcoffset()) == ("steps", timedelta(minutes=15), timedelta(hours=1))


def test_a_data_absent_reason_becomes_an_absent_reading() -> None:
    absent = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "error"}]}
    reading = reading_from_observation(_observation(valueQuantity=None, dataAbsentReason=absent), "d").reading
    assert reading.absent is AbsentReason.ERROR


@pytest.mark.parametrize(
    ("members", "reason", "message"),
    [
        ({"resourceType": "Patient"}, ReasonCode.MALFORMED_FRAME, "resourceType must be 'Observation'"),
        ({"status": "registered"}, ReasonCode.MALFORMED_FRAME, "not a result"),
        ({"effectiveDateTime": None}, ReasonCode.TIMESTAMP_MISSING, "no effectiveDateTime"),
        ({"effectiveDateTime": "2026-11-30T08:15:00"}, ReasonCode.MALFORMED_FRAME, "no UTC offset"),
        ({"effectiveDateTime": "2026-02-30"}, ReasonCode.MALFORMED_FRAME, "is not a date"),
        ({"valueQuantity": None}, ReasonCode.MALFORMED_FRAME, "no value"),
        ({"valueQuantity": {"value": Decimal(61)}}, ReasonCode.UNIT_UNKNOWN, "has no unit"),
        ({"valueQuantity": {"value": "61", "code": "/min"}}, ReasonCode.MALFORMED_FRAME, "must be a JSON number"),
        ({"subject": {"reference": "Group/ward-3"}}, ReasonCode.MALFORMED_FRAME, "subject must be a reference Patient/<id>"),
        ({"code": {"text": "pulse"}}, ReasonCode.MALFORMED_FRAME, "code has no coding"),
        (
            {"effectivePeriod": {"start": "2026-11-30T08:00:00Z", "end": "2026-11-30T07:00:00Z"}, "effectiveDateTime": None},
            ReasonCode.MALFORMED_FRAME,
            "ends before it starts",
        ),
    ],
)
def test_what_cannot_be_a_reading_is_refused_by_name(members: dict[str, Any], reason: ReasonCode, message: str) -> None:
    with pytest.raises(InputRejectedError, match=message) as caught:
        reading_from_observation(_observation(**members), "d")
    assert caught.value.reason == reason


def test_the_same_observation_posted_twice_keys_the_same_reading() -> None:
    first = MAPPER.map_one(
        MappingInput(
            reading_from_observation(_observation(), "d").reading, Attribution("pat-a", uuid.UUID(int=1), "d"), RECEIVED, "http"
        )
    )
    again = MAPPER.map_one(
        MappingInput(
            reading_from_observation(_observation(), "d").reading,
            Attribution("pat-a", uuid.UUID(int=1), "d"),
            RECEIVED + timedelta(hours=1),
            "http",
        )
    )
    assert first.key == again.key
    dated = reading_from_observation(_observation(effectiveDateTime="1999-07-02"), "d").reading
    keyed = MAPPER.map_one(MappingInput(dated, Attribution("pat-a", uuid.UUID(int=1), "d"), RECEIVED, "http"))
    assert keyed.key != first.key
