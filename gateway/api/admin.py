"""Operations API: the quarantine inbox and replays, for administrators and backend systems."""

from __future__ import annotations

import base64
import dataclasses
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from gateway.api.access import CallerDep, require_admin
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.quarantine import replay
from gateway.storage import QuarantineRow

RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a quarantine row id")]
"""A row id the database can hold: anything else is a 400, not a database error."""

router = APIRouter(prefix="/api/v1", tags=["operations"], responses=ERROR_RESPONSES)


def quarantine_json(row: QuarantineRow) -> dict[str, object]:
    body = {field.name: getattr(row, field.name) for field in dataclasses.fields(row) if field.name != "payload"}
    try:
        body["payload"], body["payload_encoding"] = row.payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body["payload"], body["payload_encoding"] = base64.b64encode(row.payload).decode(), "base64"
    body["first_seen"], body["last_seen"] = row.first_seen.isoformat(), row.last_seen.isoformat()
    return body


@router.get("/quarantine")
async def list_quarantine(
    rt: RuntimeDep,
    principal: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    reason: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    require_admin(principal)
    rows = await rt.store.list_quarantine(limit, reason)
    return Response(dumps([quarantine_json(row) for row in rows]), media_type="application/json")


@router.get("/quarantine/{row_id}")
async def show_quarantine(row_id: RowId, rt: RuntimeDep, principal: CallerDep) -> Response:
    require_admin(principal)
    row = await rt.store.get_quarantine(row_id)
    if row is None:
        raise HTTPException(404, f"no quarantine row {row_id}")
    return Response(dumps(quarantine_json(row)), media_type="application/json")


@router.post("/quarantine/{row_id}/replay")
async def replay_quarantine(row_id: RowId, rt: RuntimeDep, principal: CallerDep) -> Response:
    require_admin(principal)
    row = await rt.store.get_quarantine(row_id)
    if row is None:
        raise HTTPException(404, f"no quarantine row {row_id}")
    outcome = await replay(rt.store, rt.pipeline, row)
    return Response(dumps(dataclasses.asdict(outcome)), media_type="application/json")
