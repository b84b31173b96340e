"""FHIR R4 read API: ``/fhir/metadata``, Observation search, ``$lastn`` and read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from fhir_mapper.resources import FHIR_JSON, capability_statement
from gateway import __version__
from gateway.api.access import CallerDep, PatientAccess, patient_access, scope_kinds
from gateway.api.errors import ERROR_RESPONSES, FhirJsonResponse, outcome_response
from gateway.api.paging import searchset_response, strict_handling
from gateway.api.search import SearchError, encode_observation_cursor, parse_last_n, parse_observation_search
from gateway.api.search.capability import RESOURCES, SYSTEM_INTERACTIONS
from gateway.api.search.common import as_uuid
from gateway.auth.scopes import Interaction
from gateway.runtime import Runtime
from gateway.storage import ObservationQuery

router = APIRouter(prefix="/fhir", tags=["FHIR"], responses=ERROR_RESPONSES, default_response_class=FhirJsonResponse)


def runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


RuntimeDep = Annotated[Runtime, Depends(runtime)]
PreferHeader = Annotated[str | None, Header()]


def fhir_base(request: Request, rt: Runtime) -> str:
    configured = rt.settings.http.public_base_url
    base = configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
    return f"{base}/fhir"


@router.get("/metadata")
async def metadata(request: Request, rt: RuntimeDep) -> Response:
    statement = capability_statement(__version__, fhir_base(request, rt), RESOURCES, SYSTEM_INTERACTIONS)
    return Response(dumps(statement), media_type=FHIR_JSON)


@router.get("/Observation")
async def search_observations(request: Request, rt: RuntimeDep, principal: CallerDep, prefer: PreferHeader = None) -> Response:
    search = parse_observation_search(list(request.query_params.multi_items()), rt.settings.api, strict=strict_handling(prefer))
    access = await patient_access(rt, principal, "Observation", Interaction.SEARCH)
    query, base = _within(access, search.query, rt), fhir_base(request, rt)
    page: list[tuple[str, str]] = []
    next_cursor, total = None, None
    if query is None:  # another patient's record: found nothing, as for a patient without readings
        total = 0
    elif search.summary_count:
        total = await rt.store.count_observations(query)
    else:
        # One row more than the page tells whether a next page exists, without counting.
        rows = await rt.store.search_observations(dataclasses.replace(query, count=query.count + 1))
        page = [(str(row.reading_key), row.resource) for row in rows[: query.count]]
        if len(rows) > query.count:
            last = rows[query.count - 1]
            next_cursor = encode_observation_cursor(last.time, last.reading_key)
        if search.total == "accurate":
            total = await rt.store.count_observations(query)
        elif search.total == "estimate" and query.after is None and next_cursor is None:
            total = len(page)  # the first page holds everything: the total is free
    return searchset_response(
        f"{base}/Observation", "Observation", page, params=search.applied.params, next_cursor=next_cursor,
        warnings=search.applied.warnings, total=total, base=base,
    )  # fmt: skip


@router.get("/Observation/$lastn")
async def last_observations(request: Request, rt: RuntimeDep, principal: CallerDep, prefer: PreferHeader = None) -> Response:
    search = parse_last_n(list(request.query_params.multi_items()), rt.settings.api, strict=strict_handling(prefer))
    access = await patient_access(rt, principal, "Observation", Interaction.SEARCH)
    query = search.query
    kinds = (
        scope_kinds(access.queries_for(query.patient_id), rt.settings.api) if access.reaches(query.patient_id) else frozenset()
    )
    if kinds is not None:
        query = dataclasses.replace(query, kinds=query.kinds & kinds)
    rows = await rt.store.last_observations(query) if query.kinds else []
    base = fhir_base(request, rt)
    return searchset_response(
        f"{base}/Observation/$lastn", "Observation", [(str(row.reading_key), row.resource) for row in rows],
        params=search.applied.params, next_cursor=None, warnings=search.applied.warnings, total=len(rows), base=base,
    )  # fmt: skip


@router.get("/Observation/{observation_id}")
async def read_observation(observation_id: str, rt: RuntimeDep, principal: CallerDep) -> Response:
    access = await patient_access(rt, principal, "Observation", Interaction.READ)
    key = as_uuid(observation_id)
    resource = await rt.store.get_observation(key) if key is not None else None
    if resource is None or not access.allows(subject_of(document := orjson.loads(resource)), document):
        # Someone else's reading answers exactly like a missing one.
        return outcome_response(404, f"Observation/{observation_id} is not known")
    return Response(resource.encode(), media_type=FHIR_JSON)


def subject_of(resource: Mapping[str, Any]) -> str | None:
    """The patient id of a stored resource's ``subject`` (PulseBridge writes ``Patient/<id>``)."""
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, Mapping) else None
    return reference.removeprefix("Patient/") if isinstance(reference, str) and reference.startswith("Patient/") else None


def _within(access: PatientAccess, query: ObservationQuery, rt: Runtime) -> ObservationQuery | None:
    """The search narrowed to what the caller reaches; None when that is nothing.

    A search that names no patient is the caller's own record for a patient, everything for an
    administrator or a backend system, and a 400 for anyone who reaches several patients.
    """
    patient = query.patient_id
    if patient is None and not access.everyone:
        patient = access.only_patient()
        if patient is None:
            raise SearchError("patient (or subject) is required: this token reaches several patients")
        query = dataclasses.replace(query, patient_id=patient)
    if patient is not None and not access.reaches(patient):
        return None
    kinds = scope_kinds(access.queries_for(patient), rt.settings.api)
    if kinds is not None:
        query = dataclasses.replace(query, kinds=kinds if query.kinds is None else query.kinds & kinds)
    return query
