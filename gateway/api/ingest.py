"""HTTP ingest for devices that speak HTTP: ``POST /fhir/Observation``, ``POST /fhir``, ``POST /api/v1/ingest/senml``.

A posted body is one frame through the same pipeline as MQTT and Bluetooth (attribution by
device time, normalization, plausibility, identity, quarantine); the answer is sent only after
the transaction holding its readings or quarantine rows committed, so 201 means stored.

Checked before the body is read, cheapest first: a device token (its subject is the device id)
allowed to create Observations, the device's rate (429), the content type (415), a declared
length above the limit (413) and a registered device (403). The body is then read chunk by
chunk and refused with 413 the moment it passes ``ingest.max_payload_bytes``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from device_adapters.errors import PulseBridgeError, ReasonCode
from device_adapters.jsonwire import dumps
from device_adapters.readings import RawFrame
from edge_config import IngestSettings
from fhir_mapper.resources import FHIR_JSON, Issue, operation_outcome
from gateway.api.access import CallerDep, ForbiddenError
from gateway.api.errors import ERROR_RESPONSES, FhirJsonResponse, outcome_response
from gateway.api.fhir import RuntimeDep
from gateway.api.ratelimit import RateLimiter
from gateway.auth.scopes import Interaction
from gateway.auth.tokens import Principal, Role
from gateway.http_frames import SOURCE, HttpFormat, http_channel
from gateway.ingest_outcomes import FrameReport, ItemOutcome, ItemStatus, ReportingDelivery
from gateway.runtime import Runtime

_ALREADY_STORED: dict[int | str, dict[str, Any]] = {
    200: {"description": "already stored: the same reading key (conditional create)"}
}
router = APIRouter(tags=["ingest"], responses={**ERROR_RESPONSES, **_ALREADY_STORED}, default_response_class=FhirJsonResponse)

MEDIA_TYPES: Mapping[HttpFormat, frozenset[str]] = {
    HttpFormat.OBSERVATION: frozenset({"application/fhir+json", "application/json"}),
    HttpFormat.BUNDLE: frozenset({"application/fhir+json", "application/json"}),
    HttpFormat.SENML: frozenset({"application/senml+json", "application/json"}),
}
# The sender's mistake in the document itself is a 400; a valid document PulseBridge cannot
# store as a reading (type, unit, value, time, identity) is a 422.
_BAD_REQUEST = frozenset({ReasonCode.FHIR_VALIDATION, ReasonCode.MALFORMED_JSON})


class RefusedError(PulseBridgeError):
    """A post refused before it reached the pipeline; nothing is quarantined (the device is told)."""

    def __init__(self, status: int, diagnostics: str, code: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code
        self.headers = dict(headers or {})


def install_ingest(app: FastAPI, settings: IngestSettings) -> None:
    app.state.ingest_limiter = RateLimiter(settings.http_rate_per_second, settings.http_burst)
    app.include_router(router)


@router.post("/fhir/Observation", status_code=201)
async def create_observation(request: Request, rt: RuntimeDep, principal: CallerDep) -> Response:
    """Conditional create by reading key: 201 when new, 200 with the same id when already stored."""
    return await _ingest(request, rt, principal, HttpFormat.OBSERVATION)


@router.post("/fhir")
async def batch_or_transaction(request: Request, rt: RuntimeDep, principal: CallerDep) -> Response:
    return await _ingest(request, rt, principal, HttpFormat.BUNDLE)


@router.post("/api/v1/ingest/senml", status_code=201, response_class=JSONResponse)
async def ingest_senml(request: Request, rt: RuntimeDep, principal: CallerDep) -> Response:
    return await _ingest(request, rt, principal, HttpFormat.SENML)


async def _ingest(request: Request, rt: Runtime, principal: Principal, posted: HttpFormat) -> Response:
    device_id = _device(principal)
    try:
        limiter: RateLimiter = request.app.state.ingest_limiter
        await _admit(request, rt, limiter, device_id, posted)
        body = await _body(request, rt.settings.ingest.max_payload_bytes)
        report = await _store(rt, RawFrame(SOURCE, http_channel(device_id, posted), body, datetime.now(UTC)))
    except RefusedError as exc:
        response = outcome_response(exc.status, exc.diagnostics, code=exc.code)
        response.headers.update(exc.headers)
        return response
    outcomes = report.items
    whole = [outcome for outcome in outcomes if outcome.index is None]
    if whole:
        return _rejected(whole)
    if posted is HttpFormat.BUNDLE:
        return _bundle_response(report)
    if not outcomes:  # not expected: a decoded Observation or pack has at least one item
        return outcome_response(400, "the request holds no reading", code="invalid")
    if posted is HttpFormat.OBSERVATION:
        return await _created(rt, outcomes[0])
    return _senml_summary(outcomes)


def _device(principal: Principal) -> str:
    if principal.role is not Role.DEVICE:
        raise ForbiddenError(f"only devices post readings, and only as themselves; this is a {principal.role} token")
    if not any(scope.covers("Observation", Interaction.CREATE) for scope in principal.scopes):
        raise ForbiddenError("no scope of this token allows create on Observation")
    return principal.subject


async def _admit(request: Request, rt: Runtime, limiter: RateLimiter, device_id: str, posted: HttpFormat) -> None:
    wait = limiter.take(device_id)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise RefusedError(429, f"more than the allowed requests per second; retry in {seconds} s", "throttled",
                           {"Retry-After": str(seconds)})  # fmt: skip
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES[posted]:
        accepted = " or ".join(sorted(MEDIA_TYPES[posted]))
        raise RefusedError(415, f"Content-Type must be {accepted}, got {media_type or 'none'!r}", "not-supported")
    declared = request.headers.get("content-length", "")
    limit = rt.settings.ingest.max_payload_bytes
    if declared.isdigit() and int(declared) > limit:
        raise RefusedError(413, f"the body is {declared} octets, the limit is {limit}", "too-costly")
    if device_id not in await rt.store.registrations({device_id}):
        raise RefusedError(403, f"device {device_id!r} is not registered", "forbidden")


async def _body(request: Request, limit: int) -> bytes:
    """The body, read as it streams in and given up on as soon as it passes ``limit`` (never buffered whole)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RefusedError(413, f"the body passed the limit of {limit} octets", "too-costly")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(slots=True)
class _Waiter:
    """Resolved by the pipeline's ack, which runs only after the transaction committed."""

    done: asyncio.Future[FrameReport]
    outcome: FrameReport = field(default_factory=lambda: FrameReport(()))

    def report(self, outcome: FrameReport) -> None:
        self.outcome = outcome

    def ack(self) -> None:
        if not self.done.done():
            self.done.set_result(self.outcome)


async def _store(rt: Runtime, frame: RawFrame) -> FrameReport:
    waiter = _Waiter(asyncio.get_running_loop().create_future())
    try:
        async with asyncio.timeout(rt.settings.ingest.http_commit_timeout_seconds):
            await rt.pipeline.submit(ReportingDelivery(frame, waiter.ack, waiter.report))
            return await waiter.done
    except TimeoutError as exc:
        # It may still be stored later: posting it again is safe, the reading key keeps it once.
        raise RefusedError(503, "the readings were not stored in time; post them again", "transient") from exc


def _status(outcome: ItemOutcome) -> int:
    reason = outcome.rejection.reason if outcome.rejection is not None else None
    if reason == ReasonCode.OVERSIZE:
        return 413
    return 400 if reason in _BAD_REQUEST else 422


def _issue(outcome: ItemOutcome, *, numbered: bool) -> Issue:
    if outcome.rejection is None:
        return Issue("error", "processing", f"entry {outcome.index}: not stored, another entry of the transaction was rejected")
    where = f"entry {outcome.index}: " if numbered and outcome.index is not None else ""
    code = "invalid" if _status(outcome) == HTTPStatus.BAD_REQUEST else "processing"
    return Issue("error", code, f"{outcome.rejection.reason}: {where}{outcome.rejection.detail}")


def _rejected(rejected: Sequence[ItemOutcome], *, numbered: bool = False) -> Response:
    """One OperationOutcome for rejected items: 400 if any is malformed, else the first one's status."""
    status = 400 if any(_status(outcome) == HTTPStatus.BAD_REQUEST for outcome in rejected) else _status(rejected[0])
    return _fhir(status, operation_outcome([_issue(outcome, numbered=numbered) for outcome in rejected]))


async def _created(rt: Runtime, outcome: ItemOutcome) -> Response:
    if outcome.observation is None:
        return _rejected([outcome])
    key = outcome.observation.key
    stored = await rt.store.get_observation(outcome.observation.reading_key)
    body = stored.encode() if stored is not None else outcome.observation.resource
    status = 201 if outcome.status is ItemStatus.CREATED else 200
    return Response(body, status_code=status, media_type=FHIR_JSON, headers={"Location": f"/fhir/Observation/{key}"})


def _bundle_response(report: FrameReport) -> Response:
    outcomes = report.items
    rejected = [outcome for outcome in outcomes if outcome.rejection is not None]
    if report.atomic and rejected:
        # A transaction with a rejected entry stored nothing: the answer is the problem, not a Bundle.
        return _rejected(rejected, numbered=True)
    bundle: dict[str, object] = {"resourceType": "Bundle", "type": "transaction-response" if report.atomic else "batch-response"}
    if outcomes:  # FHIR JSON has no empty arrays
        bundle["entry"] = [_entry(outcome) for outcome in outcomes]
    return _fhir(200, bundle)


def _entry(outcome: ItemOutcome) -> dict[str, object]:
    if outcome.observation is not None:
        text = "201 Created" if outcome.status is ItemStatus.CREATED else "200 OK"
        return {"response": {"status": text, "location": f"Observation/{outcome.observation.key}"}}
    status = _status(outcome)
    return {
        "response": {
            "status": f"{status} {HTTPStatus(status).phrase}",
            "outcome": operation_outcome([_issue(outcome, numbered=True)]),
        }
    }


def _senml_summary(outcomes: Sequence[ItemOutcome]) -> Response:
    stored = sum(outcome.status is ItemStatus.CREATED for outcome in outcomes)
    summary = {
        "stored": stored,
        "duplicates": sum(outcome.status is ItemStatus.EXISTS for outcome in outcomes),
        "quarantined": [
            {"index": outcome.index, "reason": outcome.rejection.reason, "detail": outcome.rejection.detail}
            for outcome in outcomes
            if outcome.rejection is not None
        ],
    }
    return Response(dumps(summary), status_code=201 if stored else 200, media_type="application/json")


def _fhir(status: int, resource: Mapping[str, object]) -> Response:
    return Response(dumps(resource), status_code=status, media_type=FHIR_JSON)
