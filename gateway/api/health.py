"""``/healthz`` (database, broker, ingest counters), ``/metrics`` and the public signing key: no token needed."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from device_adapters.errors import StorageError
from device_adapters.jsonwire import dumps
from gateway.api.fhir import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={503: {"description": "a part is down (the same body says which)"}})
async def healthz(rt: RuntimeDep) -> Response:
    try:
        await rt.store.ping()
        database: dict[str, object] = {"status": "up"}
    except StorageError as exc:
        database = {"status": "down", "error": str(exc)}
    broker: dict[str, object] = {"status": "up" if rt.source.connected else "down"}
    if not rt.source.connected and rt.source.last_error:
        broker["error"] = rt.source.last_error
    stopped = rt.stopped_tasks()
    healthy = database["status"] == "up" and broker["status"] == "up" and not stopped
    body = {
        "status": "pass" if healthy else "fail",
        "database": database,
        "broker": broker,
        "ingest": {
            "status": "stopped" if stopped else "running",
            **dataclasses.asdict(rt.pipeline.stats),
            "queue_depth": rt.pipeline.queue_depth,
        },
    }
    return Response(dumps(body), status_code=200 if healthy else 503, media_type="application/json")


@router.get("/.well-known/jwks.json", include_in_schema=False)
async def jwks(rt: RuntimeDep) -> Response:
    """The public key of the tokens this gateway issues, for services that verify them."""
    return Response(dumps(rt.auth.local.jwks()), media_type="application/json")


@router.get("/metrics", include_in_schema=False)
async def metrics(rt: RuntimeDep) -> Response:
    return Response(generate_latest(rt.pipeline.metrics.registry), media_type=CONTENT_TYPE_LATEST)
