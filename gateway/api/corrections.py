"""Corrections: a care team marks a reading entered in error, or amends its value.

``POST /api/v1/observations/{id}/correction`` (``id``: the Observation id, the reading key) with
``{"action": "entered-in-error", "reason": "…"}`` or
``{"action": "amend", "value": 72, "unit": "/min", "reason": "…"}`` (``unit`` optional: the
stored unit, or one the mapper converts from). The answer is the corrected Observation.

Who: a practitioner whose care team holds the patient, or an administrator, with a token whose
scopes allow updating that Observation. Patients and caregivers are refused (403), as is a token
without an update scope; a reading of a patient the caller does not reach answers like an unknown
one (404). Other answers: 400 (the body), 409 (a reading entered in error is not corrected again),
422 (a panel cannot be amended; an implausible value).

In one transaction the stored Observation is rewritten (see :mod:`fhir_mapper.corrections`), the
version it replaces is kept, and every EHR destination that already has the reading gets an
``update`` outbox row if the patient's consent allows it. Search, read and exports show the
corrected resource; ``$lastn``, vitals series and rollups leave readings entered in error out.

The number is read from the body as written (``36.50`` keeps its two decimals), so the body is
parsed here rather than by a model.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from device_adapters.errors import DecodeError
from device_adapters.jsonwire import json_number, loads_strict
from fhir_mapper.corrections import Correction, CorrectionError, correct
from fhir_mapper.resources import FHIR_JSON
from gateway.api.access import CallerDep, ForbiddenError, patient_access
from gateway.api.audit_trail import agent_of
from gateway.api.errors import ERROR_RESPONSES, FhirJsonResponse, outcome_response
from gateway.api.fhir import RuntimeDep, subject_of
from gateway.api.search.common import as_uuid
from gateway.auth.scopes import Interaction
from gateway.auth.tokens import Role
from gateway.pipeline import plausibility_for
from gateway.storage.corrections import Revision, StoredReading

router = APIRouter(prefix="/api/v1", tags=["corrections"], responses=ERROR_RESPONSES)

CORRECTION_ROLES = frozenset({Role.PRACTITIONER, Role.ADMIN})
MAX_BODY_BYTES = 16 * 1024
MAX_REASON = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIELDS = frozenset({"action", "reason", "value", "unit"})
_OUTCOME_CODES = {400: "invalid", 404: "not-found", 409: "conflict", 413: "too-costly", 422: "processing"}

_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "reason"],
    "properties": {
        "action": {"type": "string", "enum": ["entered-in-error", "amend"]},
        "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON},
        "value": {"type": "number", "description": "amend: the right value, with the precision meant"},
        "unit": {"type": "string", "maxLength": 32, "description": "amend: UCUM unit of value (default: the stored unit)"},
    },
}
_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}},
    "responses": {"200": {"description": "the corrected Observation", "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
                  "422": {"description": "OperationOutcome: not a correction this reading can take",
                          "content": {FHIR_JSON: {"schema": {"type": "object"}}}}},
}  # fmt: skip


def _refused(status: int, text: str) -> CorrectionError:
    return CorrectionError(status, text)


def parse_correction(body: bytes) -> Correction:
    """The request body, strictly: numbers keep their precision, unknown members are refused."""
    document = _document(body)
    action, reason = document.get("action"), _reason(document.get("reason"))
    if action == "entered-in-error":
        if "value" in document or "unit" in document:
            raise _refused(400, "entered-in-error takes no value or unit")
        return Correction("entered-in-error", reason)
    if action != "amend":
        raise _refused(400, "action must be 'entered-in-error' or 'amend'")
    if "value" not in document:
        raise _refused(400, "amend needs the right value")
    try:
        value = json_number(document["value"], "value")
    except DecodeError as exc:
        raise _refused(400, exc.detail) from exc
    unit = document.get("unit")
    if unit is not None and (not isinstance(unit, str) or not 1 <= len(unit) <= 32):  # noqa: PLR2004 - the schema's bound
        raise _refused(400, "unit must be a UCUM unit (1 to 32 characters)")
    return Correction("amend", reason, value, unit)


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = loads_strict(body)
    except DecodeError as exc:
        raise _refused(400, exc.detail) from exc
    if not isinstance(document, dict):
        raise _refused(400, "the body must be a JSON object")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise _refused(400, f"unknown member(s): {', '.join(unknown)}")
    return document


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON or _CONTROL.search(reason):
        raise _refused(400, f"reason must be text of 1 to {MAX_REASON} characters (no control characters)")
    return reason.strip()


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    return body


@router.post("/observations/{observation_id}/correction", response_class=FhirJsonResponse, openapi_extra=_OPENAPI)
async def correct_observation(observation_id: str, request: Request, rt: RuntimeDep, principal: CallerDep) -> Response:
    """Mark a reading entered in error, or amend its value; answers the corrected Observation."""
    if principal.role not in CORRECTION_ROLES:
        raise ForbiddenError(f"the {principal.role} role may not correct readings: a care team member or an administrator does")
    access = await patient_access(rt, principal, "Observation", Interaction.UPDATE)
    try:
        correction = parse_correction(await _body(request))
    except CorrectionError as exc:
        return outcome_response(exc.status, str(exc), code=_OUTCOME_CODES.get(exc.status))
    key = as_uuid(observation_id)
    served = await rt.store.get_observation(key) if key is not None else None
    document = orjson.loads(served) if served is not None else None
    patient = subject_of(document) if document is not None else None
    if document is None or not access.allows(patient, document):
        return outcome_response(404, f"Observation/{observation_id} is not known")
    request.state.audit_patient = patient
    now, author, policy = datetime.now(UTC), agent_of(principal), plausibility_for(rt.settings)

    def revise(row: StoredReading) -> Revision:
        corrected = correct(
            row.resource, kind_name=row.kind, unit=row.unit, value=row.value, status=row.status, correction=correction,
            author=author, now=now, plausibility=policy,
        )  # fmt: skip
        return Revision(correction.action, correction.reason, author, corrected.status, corrected.value, corrected.resource)

    assert key is not None  # noqa: S101 - a stored resource was found by it
    try:
        outcome = await rt.store.correct_observation(
            key, revise, {destination.name: destination.consent for destination in rt.settings.destinations}, now
        )
    except CorrectionError as exc:
        return outcome_response(exc.status, str(exc), code=_OUTCOME_CODES.get(exc.status))
    corrected = await rt.store.get_observation(key) if outcome is not None else None
    if corrected is None:  # removed by retention meanwhile
        return outcome_response(404, f"Observation/{observation_id} is not known")
    return Response(corrected.encode(), media_type=FHIR_JSON)
