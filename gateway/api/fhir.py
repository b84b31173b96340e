"""FHIR R4 read API: ``/fhir/metadata``, ``/fhir/Observation`` search and read."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from fhir_mapper.resources import FHIR_JSON, capability_statement, searchset_bundle
from gateway import __version__
from gateway.api.errors import outcome_response
from gateway.api.search import encode_cursor, parse_observation_search
from gateway.runtime import Runtime

router = APIRouter(prefix="/fhir", tags=["FHIR"])


def runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def fhir_base(request: Request, rt: Runtime) -> str:
    configured = rt.settings.http.public_base_url
    base = configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
    return f"{base}/fhir"


@router.get("/metadata")
async def metadata(request: Request, rt: RuntimeDep) -> Response:
    return Response(dumps(capability_statement(__version__, fhir_base(request, rt))), media_type=FHIR_JSON)


@router.get("/Observation")
async def search_observations(request: Request, rt: RuntimeDep, prefer: Annotated[str | None, Header()] = None) -> Response:
    strict = prefer is not None and "handling=strict" in prefer.replace(" ", "")
    params = list(request.query_params.multi_items())
    parsed = parse_observation_search(params, rt.settings.api, strict=strict)
    query = parsed.query
    # One row more than the page tells whether a next page exists, without counting.
    rows = await rt.store.search_observations(dataclasses.replace(query, count=query.count + 1)) if query.count else []
    page, more = rows[: query.count], len(rows) > query.count
    base = fhir_base(request, rt)
    links = [("self", f"{base}/Observation?{urlencode(params)}")]
    if more:
        last = page[-1]
        next_params = [(k, v) for k, v in params if k != "_cursor"] + [("_cursor", encode_cursor(last.time, last.reading_key))]
        links.append(("next", f"{base}/Observation?{urlencode(next_params)}"))
    body = searchset_bundle(base, "Observation", [(str(r.reading_key), r.resource) for r in page], links, parsed.warnings)
    return Response(body, media_type=FHIR_JSON)


@router.get("/Observation/{observation_id}")
async def read_observation(observation_id: str, rt: RuntimeDep) -> Response:
    try:
        key = uuid.UUID(observation_id)
    except ValueError:
        return outcome_response(404, f"Observation/{observation_id} is not known")
    resource = await rt.store.get_observation(key)
    if resource is None:
        return outcome_response(404, f"Observation/{observation_id} is not known")
    return Response(resource.encode(), media_type=FHIR_JSON)
