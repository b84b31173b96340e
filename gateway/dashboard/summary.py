"""The dashboard's patient summaries: latest vitals, devices, battery and adherence.

- ``GET /api/v1/dashboard/patients`` — every patient the caller reaches (a patient: their own).
- ``GET /api/v1/dashboard/patients/{id}`` — one; someone else's is a 404, like a missing one.

Latest vitals come from the ``$lastn`` index probes (the kinds the token's scopes allow), each
marked ``out_of_range`` when the device flagged it or when it is beyond a threshold of the
patient's alert rules (their own, or the ``alerts.defaults``): the page highlights exactly what
the alert engine watches, from one source. A kind without a threshold is never highlighted.
Adherence is the remote-monitoring programmes' measure: distinct days with at least one
reading in the last ``dashboard.adherence_days`` (30) days.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from edge_config.alert_settings import AlertRuleSet, ThresholdSettings
from fhir_mapper.catalogue import CATALOGUE
from gateway.alerts.engine import parse_rules
from gateway.api.access import CallerDep, HiddenError, PatientAccess, patient_access, scope_kinds
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.api.search.common import FHIR_ID
from gateway.auth.scopes import Interaction
from gateway.auth.tokens import Principal
from gateway.runtime import Runtime
from gateway.storage import DeviceQuery, LastNQuery, PatientQuery, PatientRecord
from gateway.storage.dashboard_port import BATTERY_KIND, ActivityQuery

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], responses=ERROR_RESPONSES)

KIND_BY_CODING = MappingProxyType({(spec.codings[-1].system, spec.codings[-1].code): name for name, spec in CATALOGUE.items()})
"""Each kind's most specific coding (MDC, or ours) names it; LOINC alone does not (heart and pulse rate share one)."""
FLAGGED = frozenset({"H", "HH", "L", "LL", "A", "AA", "HU", "LU"})
MAX_PATIENTS = 500


def kind_of(resource: Mapping[str, Any]) -> str | None:
    for coding in resource.get("code", {}).get("coding", []):
        kind = KIND_BY_CODING.get((coding.get("system"), coding.get("code")))
        if kind is not None:
            return kind
    return None


def _flagged(resource: Mapping[str, Any]) -> bool:
    return any(
        coding.get("code") in FLAGGED for entry in resource.get("interpretation", []) for coding in entry.get("coding", [])
    )


def _outside(threshold: ThresholdSettings | None, value: object) -> bool:
    if threshold is None or not isinstance(value, int | float):
        return False
    number = Decimal(str(value))
    lows = [bound for bound in (threshold.low, threshold.critical_low) if bound is not None]
    highs = [bound for bound in (threshold.high, threshold.critical_high) if bound is not None]
    return any(number < bound for bound in lows) or any(number > bound for bound in highs)


def _quantity(name: str, quantity: Mapping[str, Any], rules: AlertRuleSet) -> tuple[dict[str, object], bool]:
    value = quantity.get("value")
    outside = _outside(rules.thresholds.get(name), value)
    return {"value": value, "unit": str(quantity.get("code", "")), "display_unit": quantity.get("unit")}, outside


def vital_json(resource: Mapping[str, Any], rules: AlertRuleSet) -> dict[str, object] | None:
    """One latest reading as the page shows it; None for one of no catalogued kind."""
    kind = kind_of(resource)
    if kind is None:
        return None
    body: dict[str, object] = {"kind": kind, "text": CATALOGUE[kind].text, "time": resource.get("effectiveDateTime")}
    if body["time"] is None:
        body["time"] = resource.get("effectivePeriod", {}).get("end")
    out = _flagged(resource)
    if "valueQuantity" in resource:
        quantity, outside = _quantity(kind, resource["valueQuantity"], rules)
        body |= quantity
        out = out or outside
    components: dict[str, object] = {}
    for component in resource.get("component", []):
        name = next((spec.name for spec in CATALOGUE[kind].components if spec.codings[0].code in
                     {coding.get("code") for coding in component.get("code", {}).get("coding", [])}), None)  # fmt: skip
        if name is not None and "valueQuantity" in component:
            quantity, outside = _quantity(f"{kind}.{name}", component["valueQuantity"], rules)
            components[name] = quantity["value"]
            body["unit"], body["display_unit"] = quantity["unit"], quantity["display_unit"]
            out = out or outside
    if components:
        body["components"] = components
    body["out_of_range"] = out
    return body


async def _summary(rt: Runtime, patient: PatientRecord, observations: PatientAccess, devices: PatientAccess) -> dict[str, object]:
    now = datetime.now(UTC)
    kinds = (
        scope_kinds(observations.queries_for(patient.id), rt.settings.api) if observations.reaches(patient.id) else frozenset()
    )
    wanted = frozenset(CATALOGUE) if kinds is None else kinds
    latest = await rt.store.last_observations(LastNQuery(patient.id, wanted)) if wanted else []
    own_rules = await rt.store.alerts.alert_rules(patient.id) if latest else None
    rules = parse_rules(own_rules.rules) if own_rules is not None else rt.settings.alerts.defaults
    vitals = [
        vital for row in latest if (vital := vital_json(orjson.loads(row.resource), rules)) and vital["kind"] != BATTERY_KIND
    ]
    # Whole UTC days: today and the 29 before it, so a 30-day window never counts 31 days.
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=rt.settings.dashboard.adherence_days - 1)
    reached = observations.reaches(patient.id) and kinds is None  # adherence and batteries read every kind
    activity = await rt.store.patient_activity(ActivityQuery(patient.id, since)) if reached else None
    by_device = {entry.device_resource_id: entry for entry in activity.devices} if activity else {}
    registered = (
        await rt.store.search_devices(DeviceQuery(patient_id=patient.id, count=100)) if devices.reaches(patient.id) else []
    )
    device_list = []
    for entry in registered:
        seen = by_device.get(entry.device.resource_id)
        device_list.append({
            "device_id": entry.device.device_id, "resource_id": str(entry.device.resource_id), "kind": entry.device.kind,
            "display_name": entry.device.display_name,
            "last_reading": seen.last_reading.isoformat() if seen else None,
            "battery": seen.battery if seen else None,
            "battery_time": seen.battery_time.isoformat() if seen and seen.battery_time else None,
        })  # fmt: skip
    adherence = {"days": activity.days_with_data, "window_days": rt.settings.dashboard.adherence_days} if activity else None
    return {"id": patient.id, "name": patient.name, "latest": vitals, "devices": device_list, "adherence": adherence}


async def _accesses(rt: Runtime, principal: Principal) -> tuple[PatientAccess, PatientAccess, PatientAccess]:
    return (
        await patient_access(rt, principal, "Patient", Interaction.SEARCH),
        await patient_access(rt, principal, "Observation", Interaction.SEARCH),
        await patient_access(rt, principal, "Device", Interaction.SEARCH),
    )


@router.get("/patients")
async def list_patients(
    rt: RuntimeDep, principal: CallerDep, count: Annotated[int, Query(ge=1, le=MAX_PATIENTS)] = 100
) -> Response:
    patients, observations, devices = await _accesses(rt, principal)
    ids = None if patients.everyone else frozenset(p for way in patients.ways for p in way.patients.ids)
    rows = await rt.store.search_patients(PatientQuery(ids=ids, count=count)) if ids is None or ids else []
    body = [await _summary(rt, patient, observations, devices) for patient in rows]
    return Response(dumps(body), media_type="application/json")


@router.get("/patients/{patient_id}")
async def show_patient(patient_id: str, rt: RuntimeDep, principal: CallerDep) -> Response:
    patients, observations, devices = await _accesses(rt, principal)
    found = (
        await rt.store.search_patients(PatientQuery(ids=frozenset({patient_id}), count=1))
        if FHIR_ID.fullmatch(patient_id) and patients.reaches(patient_id)
        else []
    )
    if not found:
        raise HiddenError(f"Patient/{patient_id} is not known")
    return Response(dumps(await _summary(rt, found[0], observations, devices)), media_type="application/json")
