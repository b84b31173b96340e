"""Alerts for care teams: list, acknowledge, snooze, per-patient rules; and FHIR Flags.

- ``GET /api/v1/alerts?patient=&status=`` — newest first; ``status`` is a comma-separated list
  of ``open``, ``acknowledged``, ``snoozed``, ``resolved`` (default: all).
- ``POST /api/v1/alerts/{id}/acknowledge`` — someone is on it; a rise in severity opens it again.
- ``POST /api/v1/alerts/{id}/snooze`` ``{"until": "<RFC 3339 with offset>"}`` — quiet until then
  (at most 7 days ahead); the sweep opens it again when the time comes, if it has not cleared.
- ``GET / PUT / DELETE /api/v1/patients/{id}/alert-rules`` — the patient's own rules (a whole
  rule set, as in the ``alerts.defaults`` settings) replace the defaults; DELETE returns to them.
- ``GET /fhir/Flag?patient=`` and ``GET /fhir/Flag/{id}`` — the same alerts as FHIR R4 Flags.

Who: practitioners of the patient's care teams and administrators read, acknowledge, snooze and
edit rules (``Flag`` scopes: ``.rs`` to read, ``.u`` to change); a patient reads their own alerts
and Flags. Other roles are refused (403); another patient's alert is answered as missing (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict

from device_adapters.jsonwire import dumps
from edge_config.alert_settings import AlertRuleSet
from fhir_mapper.resources import FHIR_JSON
from gateway.alerts.engine import parse_rules
from gateway.alerts.flags import alert_json, flag_resource
from gateway.alerts.rules import RuleError, check_rules
from gateway.api.access import CallerDep, ConflictError, ForbiddenError, HiddenError, PatientAccess, RefusedError, patient_access
from gateway.api.errors import ERROR_RESPONSES, FhirJsonResponse
from gateway.api.fhir import RuntimeDep, fhir_base
from gateway.api.paging import searchset_response
from gateway.auth.scopes import Interaction
from gateway.auth.tokens import Principal, Role
from gateway.runtime import Runtime
from gateway.storage import PatientQuery
from gateway.storage.alerts import AlertQuery, AlertRecord, AlertStatus

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=ERROR_RESPONSES)
fhir_router = APIRouter(prefix="/fhir", tags=["FHIR"], responses=ERROR_RESPONSES, default_response_class=FhirJsonResponse)

READERS = frozenset({Role.PATIENT, Role.PRACTITIONER, Role.ADMIN, Role.SYSTEM})
CARERS = frozenset({Role.PRACTITIONER, Role.ADMIN, Role.SYSTEM})
STATUSES: frozenset[str] = frozenset({"open", "acknowledged", "snoozed", "resolved"})
MAX_SNOOZE = timedelta(days=7)
PatientId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="a FHIR id")]
AlertId = Annotated[uuid.UUID, Path()]
Count = Annotated[int, Query(ge=1, le=1000)]


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime


async def _access(rt: Runtime, principal: Principal, interaction: Interaction) -> PatientAccess:
    """The caller's ways to alerts; scope queries on Flag are not understood, so they allow nothing."""
    allowed = CARERS if interaction is Interaction.UPDATE else READERS
    if principal.role not in allowed:
        raise ForbiddenError(f"the {principal.role} role may not {'change' if allowed is CARERS else 'read'} alerts")
    access = await patient_access(rt, principal, "Flag", interaction)
    ways = tuple(way for way in access.ways if not way.query)
    if not ways:
        raise ForbiddenError("no scope of this token allows alerts without a query")
    return PatientAccess(ways)


def _query(access: PatientAccess, patient: str | None, statuses: frozenset[AlertStatus] | None, count: int) -> AlertQuery:
    if patient is not None:
        # Another patient's alerts: found nothing, as for a patient without alerts.
        return AlertQuery(frozenset({patient}) if access.reaches(patient) else frozenset(), statuses, count)
    if access.everyone:
        return AlertQuery(None, statuses, count)
    ids = {patient_id for way in access.ways for patient_id in way.patients.ids}
    return AlertQuery(frozenset(ids), statuses, count)


def _statuses(text: str | None) -> frozenset[AlertStatus] | None:
    if text is None:
        return None
    wanted = {value.strip() for value in text.split(",")}
    unknown = sorted(wanted - STATUSES)
    if unknown:
        raise RefusedError(f"status: {', '.join(unknown)} is not one of {', '.join(sorted(STATUSES))}")
    return cast("frozenset[AlertStatus]", frozenset(wanted))


async def _reachable_alert(rt: Runtime, access: PatientAccess, alert_id: uuid.UUID) -> AlertRecord:
    record = await rt.store.alerts.get_alert(alert_id)
    if record is None or not access.reaches(record.patient_id):
        raise HiddenError(f"no alert {alert_id}")
    return record


def _json(body: object, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


@router.get("/alerts")
async def search_alerts(
    rt: RuntimeDep,
    principal: CallerDep,
    patient: Annotated[str | None, Query(max_length=72)] = None,
    status: Annotated[str | None, Query(max_length=64)] = None,
    limit: Count = 100,
) -> Response:
    access = await _access(rt, principal, Interaction.SEARCH)
    query = _query(access, patient.removeprefix("Patient/") if patient else None, _statuses(status), limit)
    return _json([alert_json(record) for record in await rt.store.alerts.list_alerts(query)])


async def _change(rt: Runtime, principal: Principal, alert_id: uuid.UUID, until: datetime | None) -> Response:
    access = await _access(rt, principal, Interaction.UPDATE)
    record = await _reachable_alert(rt, access, alert_id)
    now = datetime.now(UTC)
    if record.status != "resolved":
        if until is None:
            changed = await rt.store.alerts.acknowledge_alert(alert_id, principal.subject, now)
        else:
            changed = await rt.store.alerts.snooze_alert(alert_id, until, principal.subject, now)
        if changed is not None:
            rt.alerts.engine.announce(changed)
            return _json(alert_json(changed))
    raise ConflictError(f"alert {alert_id} is resolved")


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(alert_id: AlertId, rt: RuntimeDep, principal: CallerDep) -> Response:
    return await _change(rt, principal, alert_id, None)


@router.post("/alerts/{alert_id}/snooze")
async def snooze_alert(alert_id: AlertId, snooze: SnoozeRequest, rt: RuntimeDep, principal: CallerDep) -> Response:
    now = datetime.now(UTC)
    if not now < snooze.until <= now + MAX_SNOOZE:
        raise RefusedError(f"until must be in the future and at most {MAX_SNOOZE.days} days ahead")
    return await _change(rt, principal, alert_id, snooze.until)


async def _rules_access(rt: Runtime, principal: Principal, patient_id: str, interaction: Interaction) -> None:
    if principal.role not in CARERS:
        raise ForbiddenError(f"the {principal.role} role may not use alert rules")
    access = await _access(rt, principal, interaction)
    if not access.reaches(patient_id) or not await rt.store.search_patients(PatientQuery(ids=frozenset({patient_id}))):
        raise HiddenError(f"no Patient/{patient_id}")


def _rules_json(patient_id: str, rules: AlertRuleSet, source: str, by: str | None, at: datetime | None) -> Mapping[str, object]:
    return {
        "patient_id": patient_id,
        "source": source,
        "updated_by": by,
        "updated_at": None if at is None else at.astimezone(UTC).isoformat(),
        "rules": rules.model_dump(mode="json"),
    }


@router.get("/patients/{patient_id}/alert-rules")
async def read_alert_rules(patient_id: PatientId, rt: RuntimeDep, principal: CallerDep) -> Response:
    await _rules_access(rt, principal, patient_id, Interaction.READ)
    record = await rt.store.alerts.alert_rules(patient_id)
    if record is None:
        return _json(_rules_json(patient_id, rt.settings.alerts.defaults, "defaults", None, None))
    return _json(_rules_json(patient_id, parse_rules(record.rules), "patient", record.updated_by, record.updated_at))


@router.put("/patients/{patient_id}/alert-rules")
async def replace_alert_rules(patient_id: PatientId, rules: AlertRuleSet, rt: RuntimeDep, principal: CallerDep) -> Response:
    await _rules_access(rt, principal, patient_id, Interaction.UPDATE)
    try:
        check_rules(rules)
    except RuleError as exc:
        raise RefusedError(str(exc)) from exc
    now = datetime.now(UTC)
    await rt.store.alerts.set_alert_rules(patient_id, rules.model_dump_json(), principal.subject, now)
    rt.alerts.engine.forget_rules(patient_id)
    return _json(_rules_json(patient_id, rules, "patient", principal.subject, now))


@router.delete("/patients/{patient_id}/alert-rules")
async def reset_alert_rules(patient_id: PatientId, rt: RuntimeDep, principal: CallerDep) -> Response:
    await _rules_access(rt, principal, patient_id, Interaction.UPDATE)
    await rt.store.alerts.set_alert_rules(patient_id, None, principal.subject, datetime.now(UTC))
    rt.alerts.engine.forget_rules(patient_id)
    return _json(_rules_json(patient_id, rt.settings.alerts.defaults, "defaults", None, None))


@fhir_router.get("/Flag")
async def search_flags(
    request: Request,
    rt: RuntimeDep,
    principal: CallerDep,
    patient: Annotated[str | None, Query(max_length=72)] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
) -> Response:
    access = await _access(rt, principal, Interaction.SEARCH)
    query = _query(access, patient.removeprefix("Patient/") if patient else None, None, count)
    base = fhir_base(request, rt)
    page = [(str(record.id), dumps(flag_resource(record)).decode()) for record in await rt.store.alerts.list_alerts(query)]
    params = [("patient", patient)] if patient else []
    return searchset_response(f"{base}/Flag", "Flag", page, params=params, next_cursor=None, warnings=(), total=None, base=base)


@fhir_router.get("/Flag/{flag_id}")
async def read_flag(flag_id: str, rt: RuntimeDep, principal: CallerDep) -> Response:
    access = await _access(rt, principal, Interaction.READ)
    try:
        alert_id = uuid.UUID(flag_id)
    except ValueError as exc:
        raise HiddenError(f"no Flag/{flag_id}") from exc
    record = await _reachable_alert(rt, access, alert_id)
    return Response(dumps(flag_resource(record)), media_type=FHIR_JSON)
