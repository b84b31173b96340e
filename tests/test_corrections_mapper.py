"""A corrected Observation: entered in error or amended with the mapper's own unit and precision rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from device_adapters.readings import AbsentReason, Quantity, Reading, ReadingFlag
from fhir_mapper.corrections import Correction, CorrectionError, correct
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from fhir_mapper.plausibility import PlausibilityPolicy
from fhir_mapper.units import glucose_in
from fhir_mapper.validation import validate_resource

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)
WHO = Attribution("ada", uuid.UUID(int=7), "dev-1")
POLICY = PlausibilityPolicy()


def _mapped(kind: str, value: str | None, unit: str, **extra: Any) -> MappedObservation:
    quantity = Quantity(Decimal(value), unit) if value is not None else None
    return map_reading(Reading("dev-1", kind, T0, quantity=quantity, **extra), WHO, T0 + timedelta(minutes=1), source="mqtt")


def _correct(observation: MappedObservation, correction: Correction, status: str = "final") -> tuple[dict[str, Any], Any]:
    corrected = correct(
        observation.resource.decode(), kind_name=observation.kind, unit=observation.unit, value=observation.value,
        status=status, correction=correction, author="Practitioner/dr-who", now=NOW, plausibility=POLICY,
    )  # fmt: skip
    validate_resource(corrected.resource)
    return orjson.loads(corrected.resource), corrected


def test_entered_in_error_keeps_the_reading_and_says_why() -> None:
    original = _mapped("heart_rate", "72", "/min")
    resource, corrected = _correct(original, Correction("entered-in-error", "watch worn by a visitor"))
    assert (corrected.status, corrected.value) == ("entered-in-error", Decimal(72))
    assert resource["status"] == "entered-in-error"
    assert resource["valueQuantity"] == orjson.loads(original.resource)["valueQuantity"]
    assert resource["note"] == [
        {"authorString": "Practitioner/dr-who", "time": "2026-11-23T09:30:15.123456+00:00",
         "text": "Entered in error: watch worn by a visitor"},
    ]  # fmt: skip
    assert resource["meta"]["lastUpdated"] == "2026-11-23T09:30:15.123456Z"
    assert resource["meta"]["profile"] == orjson.loads(original.resource)["meta"]["profile"]
    unchanged = {key: value for key, value in resource.items() if key not in {"status", "note", "meta"}}
    assert unchanged == {key: value for key, value in orjson.loads(original.resource).items() if key not in {"status", "meta"}}


def test_an_amendment_in_the_stored_unit_keeps_the_precision_sent() -> None:
    original = _mapped("body_temperature", "38.5", "Cel")
    corrected = correct(
        original.resource.decode(), kind_name=original.kind, unit=original.unit, value=original.value, status="final",
        correction=Correction("amend", "typed in the wrong reading", Decimal("36.50")), author="Practitioner/dr-who",
        now=NOW, plausibility=POLICY,
    )  # fmt: skip
    assert b'"value":36.50,' in corrected.resource  # digit for digit, as the mapper writes numbers
    assert (corrected.status, corrected.value) == ("amended", Decimal("36.50"))
    resource = orjson.loads(corrected.resource)
    assert resource["status"] == "amended"
    assert resource["note"][0]["text"] == "Amended from 38.5 °C to 36.50 °C: typed in the wrong reading"


@pytest.mark.parametrize(
    ("kind", "stored", "stored_unit", "sent", "sent_unit"),
    [
        ("body_temperature", "37.0", "Cel", "98.6", "[degF]"),
        ("body_temperature", "37.0", "Cel", "100.40", "°F"),
        ("body_weight", "80", "kg", "176.4", "lbs"),
        ("blood_glucose", "110", "mg/dL", "5.9", "mmol/L"),
    ],
)
def test_an_amendment_in_another_unit_is_what_the_mapper_would_have_written(
    kind: str, stored: str, stored_unit: str, sent: str, sent_unit: str
) -> None:
    original = _mapped(kind, stored, stored_unit)
    resource, corrected = _correct(original, Correction("amend", "re-measured", Decimal(sent), sent_unit))
    if kind == "blood_glucose":  # the mapper keeps a glucose meter's unit: convert as a destination asking for it would
        expected_value = glucose_in(Decimal(sent), "mmol/L", "mg/dL")
        assert resource["valueQuantity"]["value"] == float(expected_value)
        assert resource["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": float(sent), "unit": sent_unit}
    else:
        as_if_sent = orjson.loads(_mapped(kind, sent, sent_unit).resource)
        assert resource["valueQuantity"] == as_if_sent["valueQuantity"]
    assert resource["valueQuantity"]["code"] == stored_unit
    assert resource["code"] == orjson.loads(original.resource)["code"]  # glucose: the LOINC of the stored unit still holds
    assert corrected.value is not None


@pytest.mark.parametrize(
    ("kind", "value", "unit", "correction", "status", "words"),
    [
        ("heart_rate", "72", "/min", Correction("amend", "r", Decimal(70), "kg"), "final", "cannot express"),
        ("heart_rate", "72", "/min", Correction("amend", "r", Decimal(70), "furlongs"), "final", "not a known UCUM"),
        ("heart_rate", "72", "/min", Correction("amend", "r", Decimal(900)), "final", "plausible range"),
        ("heart_rate", "72", "/min", Correction("amend", "r", Decimal(70)), "entered-in-error", "entered in error"),
        ("heart_rate", "72", "/min", Correction("entered-in-error", "r"), "entered-in-error", "entered in error"),
    ],
)
def test_corrections_that_cannot_be_made(  # noqa: PLR0917 - one parameter per column of the table above
    kind: str, value: str, unit: str, correction: Correction, status: str, words: str
) -> None:
    with pytest.raises(CorrectionError, match=words) as raised:
        _correct(_mapped(kind, value, unit), correction, status)
    assert raised.value.status in {400, 409, 422}


def test_statuses_of_refusals() -> None:
    reading = _mapped("heart_rate", "72", "/min")
    cases = [
        (Correction("amend", "r", Decimal(70), "kg"), "final", 400),
        (Correction("amend", "r", Decimal(900)), "final", 422),
        (Correction("amend", "r", Decimal(70)), "entered-in-error", 409),
    ]
    for correction, status, answer in cases:
        with pytest.raises(CorrectionError) as raised:
            _correct(reading, correction, status)
        assert raised.value.status == answer


def test_a_panel_is_not_amended() -> None:
    reading = Reading("dev-1", "blood_pressure", T0, components=(("systolic", Quantity(Decimal(120), "mm[Hg]")),
                                                              ("diastolic", Quantity(Decimal(80), "mm[Hg]"))))  # fmt: skip
    panel = map_reading(reading, WHO, T0, source="mqtt")
    with pytest.raises(CorrectionError, match="panel") as raised:
        _correct(panel, Correction("amend", "r", Decimal(118)))
    assert raised.value.status == 422
    resource, _ = _correct(panel, Correction("entered-in-error", "cuff on the wrong arm"))
    assert resource["status"] == "entered-in-error"


def test_an_amendment_replaces_a_missing_value_and_drops_the_device_flags() -> None:
    absent = _mapped("blood_glucose", None, "mg/dL", absent=AbsentReason.POSITIVE_INFINITY)
    resource, corrected = _correct(absent, Correction("amend", "lab value", Decimal(612)))
    assert "dataAbsentReason" not in resource
    assert resource["valueQuantity"]["value"] == 612
    assert resource["note"][0]["text"] == "Amended from no value to 612 mg/dL: lab value"
    assert corrected.value == Decimal(612)
    flagged = _mapped("heart_rate", "190", "/min", flags=frozenset({ReadingFlag.HIGH}))
    assert "interpretation" in orjson.loads(flagged.resource)
    resource, _ = _correct(flagged, Correction("amend", "artefact", Decimal(90)))
    assert "interpretation" not in resource


def test_a_second_amendment_adds_a_note() -> None:
    first, _ = _correct(_mapped("heart_rate", "72", "/min"), Correction("amend", "one", Decimal(70)))
    again = correct(
        orjson.dumps(first).decode(), kind_name="heart_rate", unit="/min", value=Decimal(70), status="amended",
        correction=Correction("amend", "two", Decimal(71)), author="Practitioner/admin", now=NOW, plausibility=POLICY,
    )  # fmt: skip
    notes = orjson.loads(again.resource)["note"]
    assert [(note["text"], note["authorString"]) for note in notes] == [
        ("Amended from 72 beats/minute to 70 beats/minute: one", "Practitioner/dr-who"),
        ("Amended from 70 beats/minute to 71 beats/minute: two", "Practitioner/admin"),
    ]
