"""FHIR R4 read API: ``/fhir/metadata``, Observation search, ``$lastn`` and read."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from fhir_mapper.resources import FHIR_JSON, capability_statement
from gateway import __version__
from gateway.api.errors import outcome_response
from gateway.api.paging import searchset_response, strict_handling
from gateway.api.search import encode_observation_cursor, parse_last_n, parse_observation_search
from gateway.api.search.capability import RESOURCES
from gateway.api.search.common import as_uuid
from gateway.runtime import Runtime

router = APIRouter(prefix="/fhir", tags=["FHIR"])


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
    return Response(dumps(capability_statement(__version__, fhir_base(request, rt), RESOURCES)), media_type=FHIR_JSON)


@router.get("/Observation")
async def search_observations(request: Request, rt: RuntimeDep, prefer: PreferHeader = None) -> Response:
    search = parse_observation_search(list(request.query_params.multi_items()), rt.settings.api, strict=strict_handling(prefer))
    query, base = search.query, fhir_base(request, rt)
    page: list[tuple[str, str]] = []
    next_cursor, total = None, None
    if search.summary_count:
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
async def last_observations(request: Request, rt: RuntimeDep, prefer: PreferHeader = None) -> Response:
    search = parse_last_n(list(request.query_params.multi_items()), rt.settings.api, strict=strict_handling(prefer))
    rows = await rt.store.last_observations(search.query)
    base = fhir_base(request, rt)
    return searchset_response(
        f"{base}/Observation/$lastn", "Observation", [(str(row.reading_key), row.resource) for row in rows],
        params=search.applied.params, next_cursor=None, warnings=search.applied.warnings, total=len(rows), base=base,
    )  # fmt: skip


@router.get("/Observation/{observation_id}")
async def read_observation(observation_id: str, rt: RuntimeDep) -> Response:
    key = as_uuid(observation_id)
    if key is None:
        return outcome_response(404, f"Observation/{observation_id} is not known")
    resource = await rt.store.get_observation(key)
    if resource is None:
        return outcome_response(404, f"Observation/{observation_id} is not known")
    return Response(resource.encode(), media_type=FHIR_JSON)
