"""The whole path on real services: mosquitto_pub -> Mosquitto -> gateway process -> TimescaleDB -> FHIR API."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from fhir_mapper.validation import validate_resource
from tests.conftest import truncate
from tests.fhir_checks import checking_client
from tests.services import GatewayProcess, cli, mosquitto

PATIENT = "e2e-patient"


class Stack:
    def __init__(self, gateway: GatewayProcess, broker_port: int, env: dict[str, str]) -> None:
        self.gateway, self.broker_port, self.env = gateway, broker_port, env
        self.http = checking_client(gateway.base_url, timeout=10, token=gateway.token())

    def publish(self, device_id: str, payload: str | bytes, *, payload_format: str = "readings") -> None:
        """Publish with the real ``mosquitto_pub`` client, QoS 1."""
        data = payload if isinstance(payload, bytes) else payload.encode()
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker_port), "-q", "1", "-t",
             f"pulsebridge/v1/devices/{device_id}/{payload_format}", "-s"],
            input=data, check=True, timeout=10,
        )  # fmt: skip

    def fhir(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/fhir/{path}", params=params)

    def wait_for_observations(self, want: int, timeout: float, **params: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            bundle = self.fhir("Observation", **params).json()
            entries = [entry["resource"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"]
            if len(entries) >= want or time.monotonic() > deadline:
                return entries
            time.sleep(0.02)

    def quarantine(self) -> list[str]:
        result = cli(self.env, "quarantine", "list", "--limit", "100")
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()


@pytest.fixture(scope="module")
def stack(timescale_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("e2e")
    with ThreadPoolExecutor(1) as worker:
        worker.submit(asyncio.run, truncate(timescale_url)).result()
    with mosquitto(folder) as broker_port:
        env = {
            "PULSEBRIDGE_DATABASE__URL": timescale_url,
            "PULSEBRIDGE_MQTT__PORT": str(broker_port),
            "PULSEBRIDGE_MQTT__CLIENT_ID": "e2e-gateway",
        }
        for args in (
            ("patients", "add", "--id", PATIENT, "--name", "Test Patient", "--mrn", "E2E-1"),
            ("devices", "add", "watch-e2e", "--kind", "watch"),
            ("devices", "assign", "watch-e2e", PATIENT),
            ("devices", "add", "cuff-e2e", "--kind", "cuff"),
            ("devices", "assign", "cuff-e2e", PATIENT),
        ):
            result = cli(env, *args)
            assert result.returncode == 0, result.stderr
        gateway = GatewayProcess(folder, env)
        gateway.start()
        try:
            gateway.wait_healthy()
            running = Stack(gateway, broker_port, env)
            yield running
            running.http.close()
        finally:
            gateway.stop()


def test_published_reading_is_served_within_a_second(stack: Stack) -> None:
    stack.publish("watch-e2e", '{"type": "heart_rate", "value": 71, "unit": "bpm", "time": "2026-11-22T08:00:00+01:00"}')
    assert stack.wait_for_observations(1, 10, patient=PATIENT, date="2026-11-22T08:00:00+01:00")  # warm
    started = time.monotonic()
    stack.publish("watch-e2e", '{"type": "heart_rate", "value": 72, "unit": "/min", "time": "2026-11-22T10:00:00+01:00"}')
    (observation,) = stack.wait_for_observations(1, 1.0, patient=PATIENT, date="2026-11-22T10:00:00+01:00")
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"took {elapsed:.3f} s"
    assert observation["effectiveDateTime"] == "2026-11-22T10:00:00+01:00"
    assert observation["valueQuantity"] == {
        "value": 72,
        "unit": "beats/minute",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert observation["subject"] == {"reference": f"Patient/{PATIENT}"}
    validate_resource(observation)
    read = stack.fhir(f"Observation/{observation['id']}")
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("application/fhir+json")
    assert read.json() == observation


def test_unknown_device_lands_in_quarantine_and_the_stream_goes_on(stack: Stack) -> None:
    stack.publish("stranger-1", '{"type": "heart_rate", "value": 80, "unit": "/min", "time": "2026-11-22T11:00:00Z"}')
    stack.publish("watch-e2e", b"{not json")
    stack.publish("watch-e2e", '{"type": "mood", "value": 3, "unit": "%", "time": "2026-11-22T11:00:00Z"}')
    stack.publish("watch-e2e", '{"type": "spo2", "value": 97, "unit": "furlongs", "time": "2026-11-22T11:00:00Z"}')
    stack.publish("watch-e2e", '{"type": "spo2", "value": 97, "unit": "%", "time": "2026-11-22T11:00:01Z"}')
    assert stack.wait_for_observations(1, 10, patient=PATIENT, code="2708-6")
    rows = stack.quarantine()
    reasons = {line.split("\t")[1] for line in rows}
    assert {"unknown_device", "malformed_json", "unsupported_type", "unit_unknown"} <= reasons
    unknown = next(line for line in rows if line.split("\t")[1] == "unknown_device")
    assert "stranger-1" in unknown
    assert unknown.split("\t")[4] == "x1"  # acknowledged once: not redelivered in a loop


def test_blood_pressure_panel_and_search_parameters(stack: Stack) -> None:
    stack.publish(
        "cuff-e2e",
        '[{"type": "blood_pressure", "components": {"systolic": 118, "diastolic": 76, "mean": 90}, "unit": "mmHg",'
        ' "time": "2026-11-20T07:30:00-05:00"}, {"type": "pulse_rate", "value": 66, "unit": "/min", "time": "2026-11-20T07:30:00-05:00"}]',
    )
    (panel,) = stack.wait_for_observations(1, 10, patient=f"Patient/{PATIENT}", code="http://loinc.org|85354-9")
    assert [c["code"]["coding"][0]["code"] for c in panel["component"]] == ["8480-6", "8462-4", "8478-0"]
    validate_resource(panel)
    by_mdc = stack.wait_for_observations(1, 10, patient=PATIENT, code="urn:iso:std:iso:11073:10101|149514")
    assert [o["code"]["coding"][1]["code"] for o in by_mdc] == ["149514"]
    window = stack.fhir("Observation", patient=PATIENT, date=["ge2026-11-20T12:00:00Z", "le2026-11-20T12:30:00Z"]).json()
    assert {e["resource"]["id"] for e in window["entry"]} == {panel["id"], by_mdc[0]["id"]}
    assert stack.fhir("Observation", patient=PATIENT, date="lt2026-11-20").json().get("entry", []) == []


def test_every_returned_bundle_and_observation_validates(stack: Stack) -> None:
    bundle = stack.fhir("Observation", patient=PATIENT, _count=2).json()
    validate_resource(bundle)
    seen = 0
    while True:
        for entry in bundle["entry"]:
            validate_resource(entry["resource"])
            seen += 1
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        bundle = stack.http.get(following[0]).json()
    assert seen >= 4


def test_metadata_health_and_errors(stack: Stack) -> None:
    metadata = stack.fhir("metadata")
    assert metadata.status_code == 200
    assert metadata.json()["fhirVersion"] == "4.0.1"
    validate_resource(metadata.json())
    health = stack.http.get("/healthz").json()
    assert health["database"]["status"] == "up"
    assert health["broker"]["status"] == "up"
    assert health["ingest"]["stored"] >= 1

    missing = stack.fhir("Observation/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    bad_date = stack.fhir("Observation", date="ge2026-99")
    assert bad_date.status_code == 400
    assert bad_date.json()["issue"][0]["code"] == "invalid"
    strict = stack.http.get("/fhir/Observation", params={"colour": "red"}, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    lenient = stack.fhir("Observation", colour="red").json()
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"
    validate_resource(orjson.loads(bad_date.content))


def test_prometheus_metrics_count_ingest(stack: Stack) -> None:
    stack.publish("ghost-device", '{"type": "heart_rate", "value": 80, "unit": "/min", "time": "2026-11-22T11:30:00Z"}')
    stack.publish("watch-e2e", '{"type": "heart_rate", "value": 81, "unit": "/min", "time": "2026-11-22T11:31:00Z"}')
    assert stack.wait_for_observations(1, 10, patient=PATIENT, date="2026-11-22T11:31:00Z")
    deadline = time.monotonic() + 10
    while True:
        text = stack.http.get("/metrics").text
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        if samples.get('pulsebridge_quarantined_total{reason="unknown_device"}', 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert samples['pulsebridge_frames_received_total{source="mqtt"}'] >= 2
    assert samples["pulsebridge_readings_stored_total"] >= 1
    assert samples['pulsebridge_quarantined_total{reason="unknown_device"}'] >= 1
    assert samples["pulsebridge_ingest_latency_seconds_count"] >= 2
    assert samples["pulsebridge_unacknowledged_in_flight"] == 0
    assert "pulsebridge_ingest_queue_depth" in samples


def test_quarantine_api_replays_after_the_device_is_registered(stack: Stack) -> None:
    stack.publish("late-e2e", '{"type": "heart_rate", "value": 66, "unit": "/min", "time": "2026-11-22T12:00:00Z"}')
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while not rows and time.monotonic() < deadline:
        rows = [
            r
            for r in stack.http.get("/api/v1/quarantine", params={"reason": "unknown_device"}).json()
            if r["device_id"] == "late-e2e"
        ]
        time.sleep(0.05)
    (row,) = rows
    assert row["payload_encoding"] == "utf-8"
    assert stack.http.get(f"/api/v1/quarantine/{row['id']}").json()["channel"] == "pulsebridge/v1/devices/late-e2e/readings"
    for args in (("devices", "add", "late-e2e"), ("devices", "assign", "late-e2e", PATIENT)):
        assert cli(stack.env, *args).returncode == 0
    outcome = stack.http.post(f"/api/v1/quarantine/{row['id']}/replay").json()
    assert (outcome["stored"], outcome["resolved"]) == (1, True)
    assert stack.http.get(f"/api/v1/quarantine/{row['id']}").status_code == 404
    assert stack.http.post("/api/v1/quarantine/999999/replay").status_code == 404
    assert stack.fhir("Observation", patient=PATIENT, date="2026-11-22T12:00:00Z").json()["entry"]


def test_senml_packs_on_the_senml_topic(stack: Stack) -> None:
    pack = (
        '[{"bn": "urn:dev:ow:watch-e2e:", "bt": 1795338600, "bu": "beat/min", "n": "heart_rate", "v": 70},'
        ' {"n": "spo2", "u": "/", "v": 0.97, "t": 1}, {"n": "temperature", "u": "Cel", "v": 36.8, "t": 2}]'
    )
    stack.publish("watch-e2e", pack, payload_format="senml")
    found = stack.wait_for_observations(3, 10, patient=PATIENT, date=["ge2026-11-22T09:10:00Z", "le2026-11-22T09:10:02Z"])
    values = sorted((o["code"]["coding"][0]["code"], o["valueQuantity"]["value"], o["valueQuantity"]["code"]) for o in found)
    assert values == [("2708-6", 97, "%"), ("8310-5", 36.8, "Cel"), ("8867-4", 70, "/min")]
