"""Corrections of a stored Observation by a care team: entered in error, or amended with a new value.

The corrected resource keeps everything the mapper wrote (id, identifier, codes, subject, times,
device) and gets:

- ``status``: ``entered-in-error`` or ``amended``;
- a ``note`` (appended to any earlier ones) saying what changed, why, who and when: an amendment
  names the value it replaced, so the resource itself tells the story;
- ``meta.lastUpdated``: the correction's time;
- for an amendment, a ``valueQuantity`` in the unit the reading is stored in, with the mapper's
  rules: a value sent in another unit is converted with the mapper's exact UCUM conversions
  (glucose between mg/dL and mmol/L included), keeps the significant digits it was sent with,
  and carries the value as sent in the original-quantity extension; a value outside the kind's
  plausible range is refused. A ``dataAbsentReason`` (the device reported no number) gives way
  to the value, and the device's ``interpretation`` flags go: they described the value replaced.

Panels (blood pressure) are not amended here, since they hold several values: such a reading is
marked entered in error, and the right values are entered anew. A reading entered in error is
not corrected again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from device_adapters.errors import NormalizeError, PulseBridgeError
from device_adapters.jsonwire import dumps
from fhir_mapper.catalogue import CATALOGUE, UCUM, VitalKind
from fhir_mapper.hot_path import decimal_json, fhir_datetime
from fhir_mapper.plausibility import PlausibilityPolicy
from fhir_mapper.templates import ORIGINAL_QUANTITY_EXTENSION
from fhir_mapper.units import CONVERSIONS, glucose_in, keep_significant_digits, to_ucum
from fhir_mapper.validation import FhirValidationError, validate_resource

CorrectionAction = Literal["entered-in-error", "amend"]
CorrectedStatus = Literal["entered-in-error", "amended"]
ENTERED_IN_ERROR: Literal["entered-in-error"] = "entered-in-error"
AMENDED: Literal["amended"] = "amended"
_GLUCOSE_UNITS = frozenset({"mg/dL", "mmol/L"})


class CorrectionError(PulseBridgeError):
    """A correction that cannot be made; ``status`` is the HTTP answer (400, 409 or 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Correction:
    action: CorrectionAction
    reason: str
    value: Decimal | None = None
    """amend: the new value, with the precision it was sent with."""
    unit: str | None = None
    """amend: the value's unit (UCUM or a spelling the mapper knows); None: the stored unit."""


@dataclass(frozen=True, slots=True)
class Corrected:
    resource: bytes
    status: CorrectedStatus
    value: Decimal | None
    """The stored ``value`` column: the new value of an amendment, the old one otherwise."""


def instant_text(now: datetime) -> str:
    """A FHIR instant in UTC to the microsecond, as the stores serve ``meta.lastUpdated``."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def correct(
    stored: str,
    *,
    kind_name: str,
    unit: str,
    value: Decimal | None,
    status: str,
    correction: Correction,
    author: str,
    now: datetime,
    plausibility: PlausibilityPolicy,
) -> Corrected:
    """The corrected Observation of a stored one (``stored``: its JSON; ``unit``, ``value``, ``status``: its row)."""
    if status == ENTERED_IN_ERROR:
        raise CorrectionError(409, "this reading was entered in error: it is not corrected again")
    resource: dict[str, Any] = json.loads(stored, parse_float=Decimal)
    new_status: CorrectedStatus
    if correction.action == ENTERED_IN_ERROR:
        new_status, new_value = ENTERED_IN_ERROR, value
        text = f"Entered in error: {correction.reason}"
    else:
        kind = CATALOGUE.get(kind_name)
        if kind is None or kind.compound:
            raise CorrectionError(
                422, f"{kind_name} is a panel of several values: mark it entered-in-error and record the right values anew"
            )
        if correction.value is None:
            raise CorrectionError(400, "amend needs a value")
        before = _shown(resource)
        new_value, quantity = _quantity(kind, unit, correction.value, correction.unit, plausibility)
        resource = _replaced(resource, ("valueQuantity", "dataAbsentReason"), "valueQuantity", quantity)
        resource.pop("interpretation", None)
        new_status = AMENDED
        text = f"Amended from {before} to {decimal_json(new_value)} {quantity['unit']}: {correction.reason}"
    resource["status"] = new_status
    meta = resource.get("meta")
    resource["meta"] = {**(meta if isinstance(meta, dict) else {}), "lastUpdated": instant_text(now)}
    notes = resource.get("note")
    resource["note"] = [*(notes if isinstance(notes, list) else []), {"authorString": author, "time": fhir_datetime(now),
                                                                      "text": text}]  # fmt: skip
    written = dumps(resource)
    try:
        validate_resource(written)
    except FhirValidationError as exc:  # not expected: the stored resource was valid and the changes are
        raise CorrectionError(422, f"the corrected Observation would not be valid FHIR: {exc.detail[:300]}") from exc
    return Corrected(written, new_status, new_value)


def _quantity(
    kind: VitalKind, stored_unit: str, sent: Decimal, sent_unit: str | None, plausibility: PlausibilityPolicy
) -> tuple[Decimal, dict[str, object]]:
    """The new value in the stored unit, as the mapper would have written it, and its valueQuantity."""
    spelled = stored_unit if sent_unit is None else sent_unit
    try:
        ucum = to_ucum(spelled)
    except NormalizeError as exc:
        raise CorrectionError(400, exc.detail) from exc
    converted = True
    if ucum == stored_unit:
        number, converted = sent, False
    elif (conversion := CONVERSIONS.get((ucum, stored_unit))) is not None:
        number = keep_significant_digits(conversion.apply(sent), sent)
    elif {ucum, stored_unit} <= _GLUCOSE_UNITS and kind.unit_choice(ucum) is not None:
        number = glucose_in(sent, ucum, stored_unit)
    else:
        raise CorrectionError(400, f"unit {spelled!r} cannot express {kind.name} as it is stored ({stored_unit!r})")
    bounds = plausibility.bounds(kind.name, None, stored_unit)
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise CorrectionError(422, plausibility.reason(kind.name, None, stored_unit, number))
    choice = kind.unit_choice(stored_unit)
    quantity: dict[str, object] = {
        "value": number, "unit": choice.display if choice else stored_unit, "system": UCUM, "code": stored_unit,
    }  # fmt: skip
    if converted:
        quantity["extension"] = [{"url": ORIGINAL_QUANTITY_EXTENSION, "valueQuantity": {"value": sent, "unit": spelled}}]
    return number, quantity


def _shown(resource: dict[str, Any]) -> str:
    """The value an amendment replaces, for its note."""
    quantity = resource.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | Decimal):
        number = quantity["value"]
        return f"{decimal_json(number) if isinstance(number, Decimal) else number} {quantity.get('unit', '')}".strip()
    return "no value"


def _replaced(resource: dict[str, Any], old: tuple[str, ...], key: str, value: object) -> dict[str, Any]:
    """``resource`` with ``key`` where the first of ``old`` was (or at the end), and the other ``old`` keys gone."""
    result: dict[str, Any] = {}
    for name, member in resource.items():
        if name in old:
            result.setdefault(key, value)
        else:
            result[name] = member
    result.setdefault(key, value)
    return result
