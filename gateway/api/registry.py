"""FHIR R4 Patient and Device read and search, from the registry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from fhir_mapper.devices import DeviceDescription, device_resource
from fhir_mapper.patients import patient_resource
from fhir_mapper.resources import FHIR_JSON
from gateway.api.access import CallerDep, patient_access
from gateway.api.errors import ERROR_RESPONSES, FhirJsonResponse, outcome_response
from gateway.api.fhir import PreferHeader, RuntimeDep, fhir_base
from gateway.api.paging import searchset_response, strict_handling
from gateway.api.search import parse_device_search, parse_patient_search
from gateway.api.search.common import FHIR_ID, as_uuid, encode_cursor
from gateway.auth.scopes import Interaction
from gateway.storage import DeviceEntry, DeviceQuery, PatientQuery, PatientRecord

router = APIRouter(prefix="/fhir", tags=["FHIR"], responses=ERROR_RESPONSES, default_response_class=FhirJsonResponse)


def _patient_json(patient: PatientRecord, identifiers: dict[str, list[tuple[str, str]]]) -> str:
    return dumps(patient_resource(patient.id, patient.name, patient.mrn, identifiers.get(patient.id, ()))).decode()


def _device_json(entry: DeviceEntry) -> str:
    device, information = entry.device, entry.information
    description = DeviceDescription(
        device.resource_id, device.device_id, device.display_name, device.kind,
        manufacturer=information.get("manufacturer"), model=information.get("model"),
        serial_number=information.get("serial_number"), firmware=information.get("firmware"), patient_id=entry.patient_id,
    )  # fmt: skip
    return dumps(device_resource(description)).decode()


@router.get("/Patient")
async def search_patients(request: Request, rt: RuntimeDep, principal: CallerDep, prefer: PreferHeader = None) -> Response:
    search = parse_patient_search(list(request.query_params.multi_items()), rt.settings.api, strict=strict_handling(prefer))
    access = await patient_access(rt, principal, "Patient", Interaction.SEARCH)
    query = search.query
    ids = query.ids
    if not access.everyone:  # only the patients the caller reaches can be found
        reachable = frozenset(patient for way in access.ways for patient in way.patients.ids)
        ids = reachable if ids is None else ids & reachable
    rows = (
        await rt.store.search_patients(PatientQuery(ids, query.mrns, query.name, query.count + 1, query.after))
        if ids is None or ids
        else []
    )
    page, more = rows[: query.count], len(rows) > query.count
    identifiers = await rt.store.identifiers_of([patient.id for patient in page])
    base = fhir_base(request, rt)
    return searchset_response(
        f"{base}/Patient", "Patient", [(p.id, _patient_json(p, identifiers)) for p in page], params=search.applied.params,
        next_cursor=encode_cursor(page[-1].id) if more else None, warnings=search.applied.warnings,
        total=len(page) if query.after is None and not more else None, base=base,
    )  # fmt: skip


@router.get("/Patient/{patient_id}")
async def read_patient(patient_id: str, rt: RuntimeDep, principal: CallerDep) -> Response:
    access = await patient_access(rt, principal, "Patient", Interaction.READ)
    found = (
        await rt.store.search_patients(PatientQuery(ids=frozenset({patient_id}), count=1))
        if FHIR_ID.fullmatch(patient_id) and access.reaches(patient_id)
        else []
    )
    if not found:
        return outcome_response(404, f"Patient/{patient_id} is not known")
    identifiers = await rt.store.identifiers_of([patient_id])
    return Response(_patient_json(found[0], identifiers).encode(), media_type=FHIR_JSON)


@router.get("/Device")
async def search_devices(request: Request, rt: RuntimeDep, principal: CallerDep, prefer: PreferHeader = None) -> Response:
    search = parse_device_search(list(request.query_params.multi_items()), rt.settings.api, strict=strict_handling(prefer))
    access = await patient_access(rt, principal, "Device", Interaction.SEARCH)
    query = search.query
    rows = await rt.store.search_devices(
        DeviceQuery(query.resource_ids, query.device_ids, query.patient_id, query.count + 1, query.after)
    )
    page, more = rows[: query.count], len(rows) > query.count
    # A device is in its current patient's compartment; one lent to nobody only admins see.
    page = [entry for entry in page if access.reaches_compartment(entry.patient_id)]
    base = fhir_base(request, rt)
    return searchset_response(
        f"{base}/Device", "Device", [(str(d.device.resource_id), _device_json(d)) for d in page], params=search.applied.params,
        next_cursor=encode_cursor(page[-1].device.device_id) if more else None, warnings=search.applied.warnings,
        total=len(page) if query.after is None and not more else None, base=base,
    )  # fmt: skip


@router.get("/Device/{device_id}")
async def read_device(device_id: str, rt: RuntimeDep, principal: CallerDep) -> Response:
    access = await patient_access(rt, principal, "Device", Interaction.READ)
    key = as_uuid(device_id)
    found = await rt.store.search_devices(DeviceQuery(resource_ids=frozenset({key}), count=1)) if key is not None else []
    if not found or not access.reaches_compartment(found[0].patient_id):
        return outcome_response(404, f"Device/{device_id} is not known")
    return Response(_device_json(found[0]).encode(), media_type=FHIR_JSON)
