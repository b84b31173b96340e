"""Corrections through the API with real tokens: who may correct, what read, search, $lastn and vitals show, what is queued."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from gateway.auth.audit import AuditAction
from gateway.storage import ObservationQuery, ObservationStore
from tests.consent_support import gateway_with_destinations, headers, ingest, queued, runtime, seed

LEASE = timedelta(minutes=5)


@pytest.fixture
async def gateway(timescale_url: str, timescale_store: ObservationStore, broker_port: int) -> AsyncIterator[httpx.AsyncClient]:
    await seed(timescale_store)
    async for http in gateway_with_destinations(timescale_url, broker_port, "corrections-api"):
        await ingest(
            http, "pat-a",
            {"type": "heart_rate", "value": 64, "unit": "/min", "time": "2026-11-22T08:00:00Z"},
            {"type": "heart_rate", "value": 188, "unit": "/min", "time": "2026-11-22T08:10:00Z"},
            {"type": "body_temperature", "value": 38.2, "unit": "Cel", "time": "2026-11-22T08:20:00Z"},
        )  # fmt: skip
        await ingest(http, "pat-b", {"type": "heart_rate", "value": 70, "unit": "/min", "time": "2026-11-22T08:00:00Z"})
        yield http


async def _key(http: httpx.AsyncClient, patient: str, kind_value: object) -> str:
    rows = await runtime(http).store.search_observations(ObservationQuery(patient_id=patient, count=100))
    for row in rows:
        resource = orjson.loads(row.resource)
        if resource.get("valueQuantity", {}).get("value") == kind_value:
            return str(row.reading_key)
    raise AssertionError(f"no reading of {patient} with value {kind_value}")


async def _correct(
    http: httpx.AsyncClient, key: str, body: object, identity: str | None = "dr-1", **kwargs: Any
) -> httpx.Response:
    return await http.post(f"/api/v1/observations/{key}/correction", json=body, headers=headers(http, identity, **kwargs))


async def test_who_may_correct(gateway: httpx.AsyncClient) -> None:
    own, others = await _key(gateway, "pat-a", 64), await _key(gateway, "pat-b", 70)
    body = {"action": "entered-in-error", "reason": "test"}
    assert (await _correct(gateway, own, body, None)).status_code == 401
    for identity in ("pat-a", "carer-1", "system", "device"):
        refused = await _correct(gateway, own, body, identity)
        assert refused.status_code == 403, identity
        assert refused.json()["issue"][0]["code"] == "forbidden"
    # A practitioner reaches their care team's patients only; someone else's reading is not known to them.
    assert (await _correct(gateway, others, body, "dr-1")).status_code == 404
    assert (await _correct(gateway, own, body, "dr-1", scope="user/Observation.rs")).status_code == 403  # no update scope
    assert (await _correct(gateway, str(uuid.uuid4()), body, "admin")).status_code == 404
    assert (await _correct(gateway, "not-a-uuid", body, "admin")).status_code == 404
    assert (await _correct(gateway, own, body, "dr-1")).status_code == 200
    assert (await _correct(gateway, others, body, "admin")).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"action": "delete", "reason": "x"}, 400, "action"),
        ({"action": "amend", "reason": "x"}, 400, "value"),
        ({"action": "amend", "reason": "x", "value": "72"}, 400, "number"),
        ({"action": "amend", "reason": "", "value": 72}, 400, "reason"),
        ({"action": "entered-in-error"}, 400, "reason"),
        ({"action": "entered-in-error", "reason": "x", "value": 1}, 400, "no value"),
        ({"action": "amend", "reason": "x", "value": 72, "colour": "red"}, 400, "unknown"),
        ({"action": "amend", "reason": "x", "value": 72, "unit": "kg"}, 400, "cannot express"),
        ({"action": "amend", "reason": "x", "value": 720}, 422, "plausible"),
        ([1], 400, "object"),
    ],
)
async def test_bad_corrections_are_operation_outcomes(gateway: httpx.AsyncClient, body: object, status: int, words: str) -> None:
    key = await _key(gateway, "pat-a", 188)
    answer = await _correct(gateway, key, body)
    assert answer.status_code == status, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert words in answer.json()["issue"][0]["diagnostics"]
    assert await queued(gateway) == {("ehr-a", "pending"): 4, ("ehr-b", "pending"): 1}  # nothing was queued


async def test_an_amendment_is_read_searched_and_sent_as_an_update_where_the_reading_went(gateway: httpx.AsyncClient) -> None:
    key = await _key(gateway, "pat-a", 38.2)
    raw = b'{"action": "amend", "value": 98.60, "unit": "[degF]", "reason": "thermometer set to Fahrenheit"}'
    answer = await gateway.post(
        f"/api/v1/observations/{key}/correction", content=raw,
        headers={**headers(gateway, "dr-1"), "Content-Type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    corrected = answer.json()
    assert corrected["status"] == "amended"
    assert re.search(rb'"value": ?37\.00[,}]', answer.content)  # 98.60 °F has four significant digits: the mapper keeps them
    assert corrected["valueQuantity"]["extension"][0]["valueQuantity"] == {"value": 98.6, "unit": "[degF]"}
    assert corrected["note"][0]["authorString"] == "Practitioner/dr-1"

    read = await gateway.get(f"/fhir/Observation/{key}")
    assert read.json() == corrected
    found = (await gateway.get("/fhir/Observation", params={"patient": "pat-a", "code": "8310-5"})).json()
    assert [entry["resource"] for entry in found["entry"]] == [corrected]
    since = corrected["meta"]["lastUpdated"]
    touched = (await gateway.get("/fhir/Observation", params={"patient": "pat-a", "_lastUpdated": f"ge{since}"})).json()
    assert [entry["resource"]["id"] for entry in touched["entry"]] == [key]

    # ehr-a had the reading (an update is queued); ehr-b takes pat-b only; ehr-r needs a consent pat-a never gave.
    assert await queued(gateway) == {("ehr-a", "pending"): 5, ("ehr-b", "pending"): 1}
    store = runtime(gateway).store
    claimed = await store.claim_outbox("ehr-a", 100, datetime.now(UTC) + timedelta(seconds=1), LEASE, consent="implied")
    updates = [item for item in claimed if item.action == "update"]
    assert [str(item.reading_key) for item in updates] == [key]
    assert '"amended"' in updates[0].resource

    events = await store.search_audit("pat-a", 50)
    assert any(e.action is AuditAction.UPDATE and (e.entity or "").endswith(f"{key}/correction") for e in events)


async def test_lastn_and_vitals_leave_out_readings_entered_in_error_and_use_amended_values(gateway: httpx.AsyncClient) -> None:
    first, spike = await _key(gateway, "pat-a", 64), await _key(gateway, "pat-a", 188)
    vitals = {"kind": "heart_rate", "from": "2026-11-22T08:00:00Z", "to": "2026-11-22T09:00:00Z"}

    def series(body: dict[str, Any]) -> list[tuple[int, float, float]]:
        return [(bucket["count"], bucket["max"], bucket["last"]) for bucket in body["buckets"]]

    assert series((await gateway.get("/api/v1/patients/pat-a/vitals", params=vitals)).json()) == [(2, 188.0, 188.0)]
    assert (await _correct(gateway, spike, {"action": "entered-in-error", "reason": "watch on a running child"})).is_success
    assert series((await gateway.get("/api/v1/patients/pat-a/vitals", params=vitals)).json()) == [(1, 64.0, 64.0)]
    lastn = (await gateway.get("/fhir/Observation/$lastn", params={"patient": "pat-a", "code": "8867-4"})).json()
    assert [entry["resource"]["id"] for entry in lastn["entry"]] == [first]

    assert (await _correct(gateway, first, {"action": "amend", "value": 66, "reason": "recount"})).is_success
    assert series((await gateway.get("/api/v1/patients/pat-a/vitals", params=vitals)).json()) == [(1, 66.0, 66.0)]
    lastn = (await gateway.get("/fhir/Observation/$lastn", params={"patient": "pat-a", "code": "8867-4"})).json()
    assert [entry["resource"]["valueQuantity"]["value"] for entry in lastn["entry"]] == [66]
    again = await _correct(gateway, spike, {"action": "amend", "value": 90, "reason": "no"})
    assert again.status_code == 409
    assert again.json()["issue"][0]["code"] == "conflict"
    csv = (await gateway.get("/api/v1/patients/pat-a/export", params={"format": "csv"})).text.splitlines()
    assert csv[0].endswith(",status")
    assert [line.rsplit(",", 1)[1] for line in csv[1:]] == ["amended", "entered-in-error", "final"]
