"""Consent per patient and EHR destination: whether a patient's readings are pushed there.

- ``GET /api/v1/patients/{patient_id}/consents`` — every configured destination with its rule
  (``implied``: pushed unless revoked; ``required``: pushed only once granted), the decision in
  force (``granted``, ``revoked`` or none), whether readings go there, and who decided when;
  ``?history=true`` adds every change, oldest first.
- ``PUT /api/v1/patients/{patient_id}/consents/{destination}`` ``{"status": "granted"|"revoked"}``
  — records the decision (a history row is kept); the same decision again changes nothing.
  A revocation stops every later push, including readings already queued: they end as dead
  letters (``consent: …``) when a worker reaches them.

The decision is the patient's: the patient themself, a caregiver they delegated to, and an
administrator may read and change it, with a token whose scopes allow ``Consent`` (``rs`` to
read, ``u`` to change) for that patient. Any other role is refused (403); a patient the caller
does not reach answers like an unknown one (404), and so does an unknown destination.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from device_adapters.jsonwire import dumps
from edge_config import DestinationSettings
from gateway.api.access import CallerDep, ForbiddenError, HiddenError, patient_access
from gateway.api.audit_trail import agent_of
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.auth.scopes import Interaction
from gateway.auth.tokens import Principal, Role
from gateway.runtime import Runtime
from gateway.storage import PatientQuery
from gateway.storage.consent import ConsentRecord, allows

router = APIRouter(prefix="/api/v1", tags=["consent"], responses=ERROR_RESPONSES)

CONSENT_ROLES = frozenset({Role.PATIENT, Role.CAREGIVER, Role.ADMIN})


class ConsentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["granted", "revoked"]


async def _check_patient(rt: Runtime, principal: Principal, patient_id: str, interaction: Interaction) -> None:
    if principal.role not in CONSENT_ROLES:
        raise ForbiddenError(
            f"the {principal.role} role may not use this operation: consent is the patient's, "
            "their delegated caregiver's or an administrator's to decide"
        )
    access = await patient_access(rt, principal, "Consent", interaction)
    known = access.reaches(patient_id) and await rt.store.search_patients(PatientQuery(ids=frozenset({patient_id}), count=1))
    if not known:
        raise HiddenError(f"Patient/{patient_id} is not known")


def destination_named(rt: Runtime, name: str) -> DestinationSettings:
    found = next((destination for destination in rt.settings.destinations if destination.name == name), None)
    if found is None:
        raise HiddenError(f"no EHR destination {name!r} is configured")
    return found


def consent_json(destination: DestinationSettings, record: ConsentRecord | None) -> dict[str, object]:
    status = None if record is None else record.status
    return {
        "destination": destination.name,
        "consent": destination.consent,
        "status": status,
        "allowed": allows(status, destination.consent),
        "recorded_by": None if record is None else record.recorded_by,
        "recorded_at": None if record is None else record.recorded_at.isoformat(),
    }


def _history_json(record: ConsentRecord) -> dict[str, object]:
    return {"destination": record.destination, "status": record.status, "recorded_by": record.recorded_by,
            "recorded_at": record.recorded_at.isoformat()}  # fmt: skip


def _json(body: object) -> Response:
    return Response(dumps(body), media_type="application/json")


@router.get("/patients/{patient_id}/consents")
async def list_consents(
    patient_id: str, rt: RuntimeDep, principal: CallerDep, *, history: Annotated[bool, Query()] = False
) -> Response:
    """The patient's consent for each configured EHR destination."""
    await _check_patient(rt, principal, patient_id, Interaction.SEARCH)
    decided = {record.destination: record for record in await rt.store.consents(patient_id)}
    body: dict[str, object] = {
        "patient": patient_id,
        "consents": [consent_json(destination, decided.get(destination.name)) for destination in rt.settings.destinations],
    }
    if history:
        body["history"] = [_history_json(record) for record in await rt.store.consent_history(patient_id)]
    return _json(body)


@router.put("/patients/{patient_id}/consents/{destination}")
async def set_consent(
    patient_id: str, destination: str, decision: ConsentRequest, rt: RuntimeDep, principal: CallerDep
) -> Response:
    """Grant or revoke the patient's consent to push their readings to one destination."""
    await _check_patient(rt, principal, patient_id, Interaction.UPDATE)
    settings = destination_named(rt, destination)
    record = await rt.store.set_consent(patient_id, settings.name, decision.status, agent_of(principal), datetime.now(UTC))
    return _json(consent_json(settings, record))
