"""Dashboard API: a patient's vitals as bucketed series, and exports streamed as NDJSON or CSV.

Bad parameters are 400s with an OperationOutcome (through the app's HTTPException handler).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response, StreamingResponse

from device_adapters.jsonwire import dumps
from fhir_mapper.catalogue import CATALOGUE
from gateway.api.access import CallerDep, ForbiddenError, HiddenError, patient_access, scope_kinds
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.auth.scopes import Interaction
from gateway.storage import ExportQuery, ExportRow, ObservationStore, VitalsBucket, VitalsQuery

router = APIRouter(prefix="/api/v1", tags=["vitals"], responses=ERROR_RESPONSES)

_PATIENT_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_BUCKET = re.compile(r"(?P<count>[1-9]\d{0,5})(?P<unit>[mhd])")
_BUCKET_UNITS = MappingProxyType({"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)})
DEFAULT_RANGE = timedelta(days=1)
NDJSON = "application/fhir+ndjson"
CSV_COLUMNS = ("time", "kind", "code", "value", "unit", "device", "reading_key", "status")
"""``status``: final, amended (the value is the corrected one) or entered-in-error (the value must not be used)."""


@dataclass(frozen=True, slots=True)
class ExportFormat:
    media_type: str
    head: bytes
    render: Callable[[Sequence[ExportRow]], bytes]


def _ndjson(rows: Sequence[ExportRow]) -> bytes:
    # Stored resources are single-line JSON (jsonb text and orjson output carry no newlines).
    return "".join(f"{row.resource}\n" for row in rows).encode()


def _csv(rows: Sequence[ExportRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        value = "" if row.value is None else str(row.value)
        device = f"Device/{row.device_resource_id}"
        writer.writerow([row.time.isoformat(), row.kind, row.code, value, row.unit, device, row.reading_key, row.status])
    return buffer.getvalue().encode()


_FORMATS = MappingProxyType(
    {
        name: export_format
        for export_format, names in (
            (ExportFormat(NDJSON, b"", _ndjson), ("ndjson", NDJSON, "application/ndjson")),
            (ExportFormat("text/csv; charset=utf-8", (",".join(CSV_COLUMNS) + "\n").encode(), _csv), ("csv", "text/csv")),
        )
        for name in names
    }
)


def _patient(patient_id: str) -> str:
    if not _PATIENT_ID.fullmatch(patient_id):
        raise HTTPException(400, f"{patient_id!r} is not a Patient id (1 to 64 letters, digits, '-' or '.')")
    return patient_id


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {text!r} is not an RFC 3339 time") from exc
    if value.tzinfo is None:
        raise HTTPException(400, f"{name}: {text!r} needs a UTC offset (Z or ±hh:mm)")
    return value


def parse_bucket(text: str) -> timedelta:
    match = _BUCKET.fullmatch(text)
    if match is None:
        raise HTTPException(400, f"bucket: {text!r} is not a width such as 5m, 1h or 1d")
    return int(match["count"]) * _BUCKET_UNITS[match["unit"]]


def vitals_query(
    patient_id: str, kind: str, start: datetime | None, end: datetime | None, bucket: str, *, max_buckets: int
) -> VitalsQuery:
    spec = CATALOGUE.get(kind)
    if spec is None:
        raise HTTPException(400, f"kind: {kind!r} is not a kind in the catalogue")
    if spec.compound:
        raise HTTPException(400, f"kind: {kind!r} is a panel of components, not one value: it has no series")
    width = parse_bucket(bucket)
    end = end or datetime.now(UTC)
    start = start or end - DEFAULT_RANGE
    if start >= end:
        raise HTTPException(400, f"from ({start.isoformat()}) must be before to ({end.isoformat()})")
    buckets = math.ceil((end - start) / width) + 1  # epoch-aligned buckets may straddle both ends
    if buckets > max_buckets:
        raise HTTPException(400, f"{buckets} buckets of {bucket} in that range: at most {max_buckets}, use a wider bucket")
    return VitalsQuery(patient_id, kind, start, end, width)


def _bucket_json(bucket: VitalsBucket) -> dict[str, object]:
    return {
        "start": bucket.start.isoformat(), "unit": bucket.unit, "count": bucket.count, "min": bucket.min, "max": bucket.max,
        "mean": bucket.mean, "last": bucket.last, "last_time": bucket.last_time.isoformat(),
    }  # fmt: skip


@router.get("/patients/{patient_id}/vitals")
async def vitals(
    patient_id: str,
    rt: RuntimeDep,
    principal: CallerDep,
    *,
    kind: Annotated[str, Query(max_length=64)],
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    bucket: Annotated[str, Query(max_length=16)] = "1h",
) -> Response:
    """Buckets (aligned to the Unix epoch, in UTC) of one kind with min, max, mean, count and the last value."""
    query = vitals_query(
        _patient(patient_id),
        kind,
        _instant("from", start),
        _instant("to", end),
        bucket,
        max_buckets=rt.settings.api.max_vitals_buckets,
    )
    access = await patient_access(rt, principal, "Observation", Interaction.SEARCH)
    allowed = (
        scope_kinds(access.queries_for(query.patient_id), rt.settings.api) if access.reaches(query.patient_id) else frozenset()
    )
    if allowed is not None and query.kind not in allowed:
        raise HiddenError(f"Patient/{query.patient_id} has no {query.kind} readings this token may read")
    series = await rt.store.vitals_series(query)
    body = {
        "patient": query.patient_id, "kind": query.kind, "from": query.start.isoformat(), "to": query.end.isoformat(),
        "bucket": bucket, "bucket_seconds": int(query.bucket.total_seconds()), "buckets": [_bucket_json(b) for b in series],
    }  # fmt: skip
    return Response(dumps(body), media_type="application/json")


async def _stream(
    store: ObservationStore, query: ExportQuery, page: list[ExportRow], export_format: ExportFormat
) -> AsyncIterator[bytes]:
    """Keyset pages, one at a time: memory holds one page whatever the export's size."""
    if export_format.head:
        yield export_format.head
    while True:
        if page:
            yield export_format.render(page)
        if len(page) < query.count:
            return
        query = dataclasses.replace(query, after=(page[-1].time, page[-1].reading_key))
        page = await store.export_page(query)


@router.get(
    "/patients/{patient_id}/export",
    response_class=StreamingResponse,
    responses={200: {"description": "the Observations, oldest first", "content": {NDJSON: {}, "text/csv": {}}}},
)
async def export(
    patient_id: str,
    rt: RuntimeDep,
    principal: CallerDep,
    *,
    output_format: Annotated[str, Query(alias="format", max_length=64)] = "ndjson",
    since: Annotated[str | None, Query(alias="_since")] = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> StreamingResponse:
    """The patient's Observations, oldest first: FHIR NDJSON (one resource a line) or CSV."""
    export_format = _FORMATS.get(output_format)
    if export_format is None:
        raise HTTPException(400, f"format: {output_format!r} is not ndjson ({NDJSON}) or csv")
    query = ExportQuery(
        _patient(patient_id), start=_instant("from", start), end=_instant("to", end), since=_instant("_since", since),
        count=rt.settings.api.export_page_rows,
    )  # fmt: skip
    if query.start is not None and query.end is not None and query.start >= query.end:
        raise HTTPException(400, "from must be before to")
    access = await patient_access(rt, principal, "Observation", Interaction.SEARCH)
    if not access.reaches(query.patient_id):
        raise HiddenError(f"Patient/{query.patient_id} is not known")
    if scope_kinds(access.queries_for(query.patient_id), rt.settings.api) is not None:
        # An export carries every kind; a token limited to some (category=vital-signs) uses search instead.
        raise ForbiddenError("this token's scopes cover only some readings: export needs unrestricted Observation access")
    # The first page is read before the response starts, so an unavailable store is still a 503 OperationOutcome.
    first = await rt.store.export_page(query)
    return StreamingResponse(_stream(rt.store, query, first, export_format), media_type=export_format.media_type)
