"""The audit trail of the API: one BALP-shaped AuditEvent per request, denials included.

Every request to ``/fhir`` and ``/api/v1`` (discovery and health aside) is recorded after it is
answered: who (the token's subject and role, or ``anonymous``), what (the resource or the
search as asked), for which patient where the request names one, and the outcome (success,
denied: 401/403/404, error: 5xx). The record is written before the response leaves, so a
request the trail lost was never answered. ``GET /fhir/AuditEvent`` is for administrators.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from fhir_mapper.devices import gateway_device_id
from gateway.api.access import CallerDep, require_admin
from gateway.api.errors import ERROR_RESPONSES, FhirJsonResponse
from gateway.api.fhir import RuntimeDep, fhir_base
from gateway.api.paging import searchset_response
from gateway.auth.audit import AuditAction, AuditOutcome, AuditRecord, audit_event
from gateway.auth.tokens import Principal, Role
from gateway.runtime import Runtime

router = APIRouter(prefix="/fhir", tags=["FHIR"], responses=ERROR_RESPONSES, default_response_class=FhirJsonResponse)

UNAUDITED = frozenset({"/fhir/metadata"})
_AGENT_TYPES: Mapping[Role, str] = {
    Role.PATIENT: "Patient",
    Role.CAREGIVER: "RelatedPerson",
    Role.PRACTITIONER: "Practitioner",
    Role.ADMIN: "Practitioner",
    Role.DEVICE: "Device",
    Role.SYSTEM: "Client",
}
# The route's endpoint name says what was done (reads and searches are told apart by the route).
_ACTIONS: Mapping[str, AuditAction] = {
    "read_observation": AuditAction.READ,
    "read_patient": AuditAction.READ,
    "read_device": AuditAction.READ,
    "search_observations": AuditAction.SEARCH,
    "last_observations": AuditAction.SEARCH,
    "search_patients": AuditAction.SEARCH,
    "search_devices": AuditAction.SEARCH,
    "search_audit_events": AuditAction.SEARCH,
    "vitals": AuditAction.SEARCH,
    "export": AuditAction.EXPORT,
    "list_quarantine": AuditAction.SEARCH,
    "show_quarantine": AuditAction.READ,
    "replay_quarantine": AuditAction.UPDATE,
    "create_pairing_code": AuditAction.PAIR,
    "redeem_pairing_code": AuditAction.PAIR,
    "unpair_device": AuditAction.UNPAIR,
    "list_inbox": AuditAction.SEARCH,
    "claim_reading": AuditAction.UPDATE,
    "create_observation": AuditAction.CREATE,
    "batch_or_transaction": AuditAction.CREATE,
    "ingest_senml": AuditAction.CREATE,
    "sign_in": AuditAction.LOGIN,
    "sign_out": AuditAction.LOGIN,
    "search_alerts": AuditAction.SEARCH,
    "search_flags": AuditAction.SEARCH,
    "read_flag": AuditAction.READ,
    "read_alert_rules": AuditAction.READ,
    "list_consents": AuditAction.SEARCH,
    "set_consent": AuditAction.UPDATE,
    "correct_observation": AuditAction.UPDATE,
}


def audited(path: str) -> bool:
    return path.startswith(("/fhir/", "/api/v1/")) and path not in UNAUDITED


def agent_of(principal: Principal | None) -> str:
    return "anonymous" if principal is None else f"{_AGENT_TYPES[principal.role]}/{principal.subject}"


def outcome_of(status: int) -> AuditOutcome:
    if status >= 500:  # noqa: PLR2004 - HTTP status classes
        return AuditOutcome.ERROR
    return AuditOutcome.DENIED if status >= 400 else AuditOutcome.SUCCESS  # noqa: PLR2004 - HTTP status classes


def record_of(request: Request, status: int, now: datetime) -> AuditRecord:
    """What one answered request leaves in the trail: ids and codes only, never a value or a token."""
    endpoint = request.scope.get("endpoint")
    name = getattr(endpoint, "__name__", "")
    params = request.query_params
    patient = (
        request.path_params.get("patient_id")
        or getattr(request.state, "audit_patient", None)  # a route that found the patient (a correction's reading)
        or params.get("patient")
        or params.get("subject")
    )
    if patient is not None:
        patient = patient.removeprefix("Patient/")
    entity = request.url.path.removeprefix("/fhir/")
    if request.url.query:
        entity = f"{entity}?{request.url.query}"
    return AuditRecord(
        recorded_at=now,
        action=_ACTIONS.get(name, AuditAction.READ if request.method == "GET" else AuditAction.UPDATE),
        outcome=outcome_of(status),
        agent=agent_of(getattr(request.state, "principal", None)),
        patient_id=patient,
        entity=entity[:1000],
        detail={"status": str(status), "method": request.method},
    )


def install_audit_trail(app: FastAPI) -> None:
    @app.middleware("http")
    async def audit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if audited(request.url.path):
            runtime: Runtime = request.app.state.runtime
            await runtime.store.append_audit([record_of(request, response.status_code, datetime.now(UTC))])
        return response


@router.get("/AuditEvent")
async def search_audit_events(
    request: Request,
    rt: RuntimeDep,
    principal: CallerDep,
    patient: Annotated[str | None, Query(max_length=64)] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
) -> Response:
    """The newest audit events, optionally of one patient; administrators and backend systems only."""
    require_admin(principal)
    records = await rt.store.search_audit(patient.removeprefix("Patient/") if patient else None, count)
    base = fhir_base(request, rt)
    observer = gateway_device_id(rt.settings.gateway_name)
    page = [(str(record.id), dumps(audit_event(record, observer)).decode()) for record in records]
    params = [("patient", patient)] if patient else []
    return searchset_response(
        f"{base}/AuditEvent", "AuditEvent", page, params=params, next_cursor=None, warnings=(), total=None, base=base
    )
