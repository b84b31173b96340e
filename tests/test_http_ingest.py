"""HTTP ingest on TimescaleDB: devices post FHIR Observations, Bundles and SenML through the pipeline.

The official FHIR R4 vital-sign examples are stored once each (201, then 200 with the same id)
and found by search; broken input is answered with a 4xx OperationOutcome and quarantined; the
body limit, content type, rate limit and device-only access are enforced before the pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from edge_config import DatabaseSettings, GatewaySettings, IngestSettings, MqttSettings
from gateway.auth.tokens import Role
from gateway.storage import open_store
from tests.conftest import truncate
from tests.gateway_support import app_of, bearer, running_gateway, stored_counts

EXAMPLES = Path(__file__).resolve().parent.parent / ".cache" / "fhir-r4-examples"
VITALS = (
    "heart-rate", "blood-pressure", "body-temperature", "satO2", "example", "respiratory-rate", "body-height", "bmi",
)  # fmt: skip
FHIR = {"Content-Type": "application/fhir+json"}
DEVICES = {"dev-1": "example", "dev-f001": "f001", "dev-other": "other"}


def _example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((EXAMPLES / f"Observation-{name}.json").read_bytes())
    return document


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "POST", "url": "Observation"}}


async def _register(url: str) -> None:
    await truncate(url)
    store = await open_store(DatabaseSettings(url=url))
    try:
        for device, patient in DEVICES.items():
            await store.add_patient(patient, None, None)
            await store.add_device(device, "hub", None)
            await store.assign_device(device, patient, None)
        await store.add_device("dev-unassigned", "hub", None)
    finally:
        await store.close()


async def _quarantine(url: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch("SELECT source, device_id, reason, payload, item_index FROM quarantine ORDER BY id")
    finally:
        await connection.close()


def _settings(url: str, port: int, ingest: IngestSettings | None = None) -> GatewaySettings:
    return GatewaySettings(
        database=DatabaseSettings(url=url),
        mqtt=MqttSettings(port=port, client_id="http-ingest"),
        ingest=ingest or IngestSettings(),
    )


@pytest.fixture
async def gateway(timescale_url: str, broker_port: int) -> AsyncIterator[httpx.AsyncClient]:
    await _register(timescale_url)
    async with running_gateway(_settings(timescale_url, broker_port)) as http:
        yield http


def _as(http: httpx.AsyncClient, device: str = "dev-1") -> dict[str, str]:
    return {**bearer(app_of(http), Role.DEVICE, "system/Observation.c", subject=device), **FHIR}


async def test_the_official_vital_sign_examples_are_stored_once_and_found(gateway: httpx.AsyncClient, timescale_url: str) -> None:
    posted = [(name, "dev-1") for name in VITALS] + [("f001", "dev-f001")]
    ids = {}
    for name, device in posted:
        first = await gateway.post("/fhir/Observation", content=orjson.dumps(_example(name)), headers=_as(gateway, device))
        assert first.status_code == 201, (name, first.text)
        again = await gateway.post("/fhir/Observation", content=orjson.dumps(_example(name)), headers=_as(gateway, device))
        assert again.status_code == 200, (name, again.text)
        assert first.headers["Location"] == again.headers["Location"] == f"/fhir/Observation/{first.json()['id']}"
        assert again.json()["id"] == first.json()["id"]
        ids[name] = first.json()["id"]
    assert await stored_counts(timescale_url) == (9, 9)
    for patient, names in (("example", VITALS), ("f001", ("f001",))):
        found = (await gateway.get(f"/fhir/Observation?patient={patient}")).json()
        assert sorted(entry["resource"]["id"] for entry in found["entry"]) == sorted(ids[name] for name in names)
    assert await _quarantine(timescale_url) == []


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (orjson.dumps(_example("blood-pressure-cancel")), 422, "malformed_frame"),
        (orjson.dumps(_example("bloodgroup")), 422, "unsupported_type"),
        (orjson.dumps({**_example("heart-rate"), "valueQuantity": {"value": 400, "system": "http://unitsofmeasure.org", "code": "/min"}}),
         422, "implausible_value"),
        (orjson.dumps({**_example("heart-rate"), "valueQuantity": {"value": 44, "unit": "furlongs"}}), 422, "unit_unknown"),
        (orjson.dumps({**_example("heart-rate"), "valueQuantity": "44 beats/minute"}), 400, "fhir_validation"),
        (orjson.dumps({"resourceType": "Patient", "id": "example"}), 400, "fhir_validation"),
        (b'{"resourceType": "Observation",', 400, "malformed_json"),
    ],
)  # fmt: skip
async def test_broken_input_is_answered_with_an_outcome_and_quarantined(
    gateway: httpx.AsyncClient, timescale_url: str, body: bytes, status: int, reason: str
) -> None:
    response = await gateway.post("/fhir/Observation", content=body, headers=_as(gateway))
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"].startswith(reason)
    rows = await _quarantine(timescale_url)
    assert [(row["source"], row["device_id"], row["reason"], row["payload"]) for row in rows] == [("http", "dev-1", reason, body)]
    assert await stored_counts(timescale_url) == (0, 0)


async def test_an_observation_about_another_patient_is_refused_and_stores_nothing(
    gateway: httpx.AsyncClient, timescale_url: str
) -> None:
    claimed = {**_example("heart-rate"), "subject": {"reference": "Patient/other"}}
    response = await gateway.post("/fhir/Observation", content=orjson.dumps(claimed), headers=_as(gateway))
    assert response.status_code == 422
    assert response.json()["issue"][0]["diagnostics"].startswith("identity_mismatch")
    assert [row["reason"] for row in await _quarantine(timescale_url)] == ["identity_mismatch"]
    for patient in ("example", "other"):
        assert "entry" not in (await gateway.get(f"/fhir/Observation?patient={patient}")).json()
    assert await stored_counts(timescale_url) == (0, 0)


async def test_only_registered_devices_post_and_only_as_devices(gateway: httpx.AsyncClient, timescale_url: str) -> None:
    body = orjson.dumps(_example("heart-rate"))
    patient = bearer(app_of(gateway), Role.PATIENT, "patient/Observation.cruds", "example", subject="example")
    for headers in (patient, {}):  # the second: the client's own administrator token
        response = await gateway.post("/fhir/Observation", content=body, headers={**headers, **FHIR})
        assert response.status_code == 403, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    read_only = bearer(app_of(gateway), Role.DEVICE, "system/Observation.rs", subject="dev-1")
    assert (await gateway.post("/fhir/Observation", content=body, headers={**read_only, **FHIR})).status_code == 403
    assert (await gateway.post("/fhir/Observation", content=body, headers=_as(gateway, "dev-unknown"))).status_code == 403
    unassigned = await gateway.post("/fhir/Observation", content=body, headers=_as(gateway, "dev-unassigned"))
    assert unassigned.status_code == 422
    assert unassigned.json()["issue"][0]["diagnostics"].startswith("unpaired_device")
    assert await stored_counts(timescale_url) == (0, 0)


async def test_wrong_content_type_and_oversize_bodies_are_refused_before_the_pipeline(
    gateway: httpx.AsyncClient, timescale_url: str
) -> None:
    headers = _as(gateway)
    text = await gateway.post("/fhir/Observation", content=orjson.dumps(_example("heart-rate")),
                              headers={**headers, "Content-Type": "text/plain"})  # fmt: skip
    assert text.status_code == 415
    sent: list[int] = []

    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            sent.append(1)
            yield b" " * 16_384

    # 100 MB offered as a stream: refused once the limit (64 KiB) is passed, the rest never read.
    streamed = await gateway.post("/fhir/Observation", content=chunks(6400), headers=headers)
    assert streamed.status_code == 413
    assert streamed.json()["issue"][0]["code"] == "too-costly"
    assert len(sent) <= 6
    sent.clear()
    declared = await gateway.post("/fhir/Observation", content=chunks(6400), headers={**headers, "Content-Length": "104857600"})
    assert declared.status_code == 413
    assert sent == []
    assert await _quarantine(timescale_url) == []


async def test_a_device_beyond_its_rate_is_told_when_to_come_back(timescale_url: str, broker_port: int) -> None:
    await _register(timescale_url)
    ingest = IngestSettings(http_rate_per_second=0.1, http_burst=3)
    async with running_gateway(_settings(timescale_url, broker_port, ingest)) as http:
        body = orjson.dumps(_example("heart-rate"))
        statuses = [(await http.post("/fhir/Observation", content=body, headers=_as(http))).status_code for _ in range(3)]
        assert statuses == [201, 200, 200]
        throttled = await http.post("/fhir/Observation", content=body, headers=_as(http))
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["Retry-After"]) <= 10
        assert (await http.post("/fhir/Observation", content=body, headers=_as(http, "dev-f001"))).status_code != 429


async def test_a_batch_stores_its_good_entries_and_a_transaction_all_or_nothing(
    gateway: httpx.AsyncClient, timescale_url: str
) -> None:
    broken = {**_example("satO2"), "valueQuantity": "95 %"}
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [_entry(_example("heart-rate")), _entry(broken),
                                                                  _entry(_example("bmi"))]}  # fmt: skip
    response = await gateway.post("/fhir", content=orjson.dumps(batch), headers=_as(gateway))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "batch-response"
    assert [entry["response"]["status"] for entry in answer["entry"]] == ["201 Created", "400 Bad Request", "201 Created"]
    assert answer["entry"][1]["response"]["outcome"]["issue"][0]["diagnostics"].startswith("fhir_validation")
    assert await stored_counts(timescale_url) == (2, 2)

    cancelled = _example("blood-pressure-cancel")
    transaction = {"resourceType": "Bundle", "type": "transaction",
                   "entry": [_entry(_example("blood-pressure")), _entry(_example("respiratory-rate")), _entry(cancelled)]}  # fmt: skip
    refused = await gateway.post("/fhir", content=orjson.dumps(transaction), headers=_as(gateway))
    assert refused.status_code == 422, refused.text
    assert refused.json()["issue"][0]["diagnostics"].startswith("malformed_frame: entry 2")
    assert await stored_counts(timescale_url) == (2, 2)
    assert [(row["reason"], row["item_index"]) for row in await _quarantine(timescale_url)] == [
        ("fhir_validation", 1),
        ("malformed_frame", 2),
    ]

    only_bad = {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(cancelled)]}
    assert (await gateway.post("/fhir", content=orjson.dumps(only_bad), headers=_as(gateway))).status_code == 422
    empty = await gateway.post("/fhir", content=orjson.dumps({"resourceType": "Bundle", "type": "batch"}), headers=_as(gateway))
    assert empty.json() == {"resourceType": "Bundle", "type": "batch-response"}

    transaction["entry"] = [*transaction["entry"][:2], _entry(_example("heart-rate"))]
    accepted = await gateway.post("/fhir", content=orjson.dumps(transaction), headers=_as(gateway))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["type"] == "transaction-response"
    assert [entry["response"]["status"] for entry in accepted.json()["entry"]] == ["201 Created", "201 Created", "200 OK"]
    assert await stored_counts(timescale_url) == (4, 4)


async def test_a_senml_pack_is_stored(gateway: httpx.AsyncClient, timescale_url: str) -> None:
    pack = [
        {"bn": "dev-1:", "bt": 1795338600, "n": "heart_rate", "u": "beat/min", "v": 61},
        {"n": "heart_rate", "u": "beat/min", "v": 62, "t": 60},
        {"n": "heart_rate", "u": "beat/min", "v": 900, "t": 120},
    ]
    headers = {**_as(gateway), "Content-Type": "application/senml+json"}
    response = await gateway.post("/api/v1/ingest/senml", content=orjson.dumps(pack), headers=headers)
    assert response.status_code == 201, response.text
    summary = response.json()
    assert (summary["stored"], summary["duplicates"]) == (2, 0)
    assert [(item["index"], item["reason"]) for item in summary["quarantined"]] == [(2, "implausible_value")]
    again = await gateway.post("/api/v1/ingest/senml", content=orjson.dumps(pack), headers=headers)
    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 2)
    assert await stored_counts(timescale_url) == (2, 2)


async def test_the_capability_statement_declares_create_batch_and_transaction(gateway: httpx.AsyncClient) -> None:
    rest = (await gateway.get("/fhir/metadata")).json()["rest"][0]
    observation = next(resource for resource in rest["resource"] if resource["type"] == "Observation")
    assert {"code": "create"} in observation["interaction"]
    assert rest["interaction"] == [{"code": "batch"}, {"code": "transaction"}]


async def test_a_post_not_committed_in_time_is_answered_503(timescale_url: str, broker_port: int) -> None:
    await _register(timescale_url)
    async with running_gateway(_settings(timescale_url, broker_port, IngestSettings(http_commit_timeout_seconds=0.3))) as http:
        runtime = app_of(http).state.runtime
        pipeline = next(task for task in runtime.tasks if task.get_name() == "ingest-pipeline")
        pipeline.cancel()  # nothing commits any more: the post must not claim it was stored
        response = await http.post("/fhir/Observation", content=orjson.dumps(_example("heart-rate")), headers=_as(http))
        assert response.status_code == 503
        assert response.json()["issue"][0]["code"] == "transient"
    assert await stored_counts(timescale_url) == (0, 0)
