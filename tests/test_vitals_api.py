"""The dashboard API: vitals series, NDJSON and CSV exports, and 400 OperationOutcomes for bad parameters."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from device_adapters.readings import Quantity, Reading
from edge_config import ApiSettings, DatabaseSettings, GatewaySettings, MqttSettings
from fhir_mapper.observation import Attribution, map_reading
from gateway.storage import open_store
from tests.conftest import truncate
from tests.gateway_support import running_gateway

T0 = datetime(2026, 11, 20, tzinfo=UTC)
DEVICE = uuid.UUID(int=42)


@pytest.fixture
async def settings(timescale_url: str, broker_port: int) -> GatewaySettings:
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    try:
        attribution = Attribution("pat-v", DEVICE, "watch-v")
        batch = [
            map_reading(
                Reading("watch-v", "heart_rate", T0 + timedelta(minutes=10 * i), quantity=Quantity(Decimal(60 + i), "/min")),
                attribution,
                T0 + timedelta(days=1 if i < 20 else 2),
                source="mqtt",
            )
            for i in range(25)
        ]
        await store.write_batch(batch, [])
    finally:
        await store.close()
    return GatewaySettings(
        database=DatabaseSettings(url=timescale_url),
        mqtt=MqttSettings(port=broker_port, client_id="vitals-api-test"),
        api=ApiSettings(max_vitals_buckets=100, export_page_rows=10),
    )


async def test_vitals_series_by_hour(settings: GatewaySettings) -> None:
    async with running_gateway(settings) as http:
        response = await http.get(
            "/api/v1/patients/pat-v/vitals", params={"kind": "heart_rate", "from": T0.isoformat(), "to": "2026-11-20T05:00:00Z"}
        )
    assert response.status_code == 200
    body = response.json()
    assert (body["kind"], body["bucket"], body["bucket_seconds"]) == ("heart_rate", "1h", 3600)
    first, *_, last = body["buckets"]
    assert first == {"start": "2026-11-20T00:00:00+00:00", "unit": "/min", "count": 6, "min": 60.0, "max": 65.0, "mean": 62.5,
                     "last": 65.0, "last_time": "2026-11-20T00:50:00+00:00"}  # fmt: skip
    assert len(body["buckets"]) == 5
    assert (last["start"], last["count"], last["last"]) == ("2026-11-20T04:00:00+00:00", 1, 84.0)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"kind": "heart_rat"}, "not a kind"),
        ({"kind": "blood_pressure"}, "components"),
        ({"kind": "heart_rate", "bucket": "1w"}, "bucket"),
        ({"kind": "heart_rate", "bucket": "0h"}, "bucket"),
        ({"kind": "heart_rate", "from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "before"),
        ({"kind": "heart_rate", "from": "2026-11-20T00:00:00", "to": "2026-11-21T00:00:00Z"}, "UTC offset"),
        ({"kind": "heart_rate", "from": "yesterday"}, "RFC 3339"),
        ({"kind": "heart_rate", "from": "2026-01-01T00:00:00Z", "to": "2026-11-21T00:00:00Z", "bucket": "1h"}, "at most 100"),
        ({}, "kind"),
    ],
)
async def test_bad_vitals_parameters_are_operation_outcomes(
    settings: GatewaySettings, params: dict[str, str], words: str
) -> None:
    async with running_gateway(settings) as http:
        response = await http.get("/api/v1/patients/pat-v/vitals", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"]


async def test_export_ndjson_and_csv_stream_every_page(settings: GatewaySettings) -> None:
    async with running_gateway(settings) as http:
        ndjson = await http.get("/api/v1/patients/pat-v/export")
        table = await http.get("/api/v1/patients/pat-v/export", params={"format": "csv", "from": "2026-11-20T01:00:00Z"})
        since = await http.get("/api/v1/patients/pat-v/export", params={"_since": (T0 + timedelta(days=2)).isoformat()})
        other = await http.get("/api/v1/patients/nobody/export", params={"format": "text/csv"})
        bad = await http.get("/api/v1/patients/pat-v/export", params={"format": "xml"})
        bad_patient = await http.get("/api/v1/patients/no%20one/export")

    assert ndjson.status_code == 200
    assert ndjson.headers["content-type"] == "application/fhir+ndjson"
    resources = [orjson.loads(line) for line in ndjson.text.splitlines()]
    assert len(resources) == 25  # three pages of 10
    assert {r["resourceType"] for r in resources} == {"Observation"}
    assert [r["effectiveDateTime"] for r in resources] == sorted(r["effectiveDateTime"] for r in resources)

    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == 19
    assert list(rows[0]) == ["time", "kind", "code", "value", "unit", "device", "reading_key", "status"]
    assert rows[0] == {"time": "2026-11-20T01:00:00+00:00", "kind": "heart_rate", "code": "8867-4", "value": "66", "unit": "/min",
                       "device": f"Device/{DEVICE}", "reading_key": rows[0]["reading_key"], "status": "final"}  # fmt: skip

    assert len(since.text.splitlines()) == 5
    assert other.text == "time,kind,code,value,unit,device,reading_key,status\n"
    for response in (bad, bad_patient):
        assert response.status_code == 400
        assert response.json()["resourceType"] == "OperationOutcome"
