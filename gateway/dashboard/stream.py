"""Live updates for a patient's page: ``GET /api/v1/patients/{id}/stream`` (Server-Sent Events).

Readings arrive as ``observation`` events once their batch committed, alerts as ``alert``
events, and ``gap`` when this stream fell behind the bus and lost some (the page reloads). The
caller must reach the patient's Observations (someone else's patient is a 404, like a missing
one); alert events need Flag read access as well. A token whose scopes allow only some kinds
hears only those. The stream ends after ``dashboard.stream_seconds``: EventSource reconnects by
itself, and each reconnection is checked (and audited) anew, so a session that expired or lost
access stops receiving within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from device_adapters.jsonwire import dumps
from gateway.api.access import CallerDep, ForbiddenError, HiddenError, patient_access, scope_kinds
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.api.search.common import FHIR_ID
from gateway.auth.scopes import Interaction
from gateway.events import AlertEvent, Delivered, EventBus, Gap, ObservationEvent
from gateway.storage import PatientQuery

router = APIRouter(prefix="/api/v1", tags=["dashboard"], responses=ERROR_RESPONSES)

RECONNECT_MILLISECONDS = 2000


def sse(event: Delivered) -> bytes:
    """One event in the text/event-stream format (the data is one line of JSON)."""
    if isinstance(event, Gap):
        return b"event: gap\ndata: " + dumps({"lost": event.lost}) + b"\n\n"
    if isinstance(event, ObservationEvent):
        body = {
            "patient_id": event.patient_id, "kind": event.kind, "reading_key": event.reading_key,
            "time": event.time.isoformat(), "value": event.value, "unit": event.unit, "device_id": event.device_id,
            "components": dict(event.components),
        }  # fmt: skip
        return f"event: observation\nid: {event.reading_key}\ndata: ".encode() + dumps(body) + b"\n\n"
    body = {
        "alert_id": event.alert_id, "patient_id": event.patient_id, "status": event.status, "rule": event.rule,
        "kind": event.kind, "severity": event.severity, "changed_at": event.changed_at.isoformat(), "summary": event.summary,
    }  # fmt: skip
    return b"event: alert\ndata: " + dumps(body) + b"\n\n"


async def _events(
    bus: EventBus, patient_id: str, kinds: frozenset[str] | None, *, alerts: bool, seconds: float, heartbeat: float
) -> AsyncIterator[bytes]:
    deadline = time.monotonic() + seconds
    async with bus.subscribe({patient_id}) as subscription:
        yield f"retry: {RECONNECT_MILLISECONDS}\n: connected\n\n".encode()
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(anext(subscription), timeout=min(heartbeat, left))
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            except StopAsyncIteration:  # the gateway is shutting down
                return
            if isinstance(event, ObservationEvent) and kinds is not None and event.kind not in kinds:
                continue
            if isinstance(event, AlertEvent) and not alerts:
                continue
            yield sse(event)


@router.get(
    "/patients/{patient_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"description": "Server-Sent Events: observation, alert, gap", "content": {"text/event-stream": {}}}},
)
async def stream(patient_id: str, rt: RuntimeDep, principal: CallerDep) -> StreamingResponse:
    access = await patient_access(rt, principal, "Observation", Interaction.SEARCH)
    known = (
        FHIR_ID.fullmatch(patient_id)
        and access.reaches(patient_id)
        and await rt.store.search_patients(PatientQuery(ids=frozenset({patient_id}), count=1))
    )
    if not known:  # someone else's patient, or nobody's: no stream is opened for either
        raise HiddenError(f"Patient/{patient_id} is not known")
    kinds = scope_kinds(access.queries_for(patient_id), rt.settings.api)
    alerts = False
    with contextlib.suppress(ForbiddenError):
        alerts = (await patient_access(rt, principal, "Flag", Interaction.READ)).reaches(patient_id)
    settings = rt.settings.dashboard
    body = _events(
        rt.events, patient_id, kinds, alerts=alerts, seconds=settings.stream_seconds, heartbeat=settings.stream_heartbeat_seconds
    )
    # No buffering by proxies (nginx honours X-Accel-Buffering), no caching of a live stream.
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
