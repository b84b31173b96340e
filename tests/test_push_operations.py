"""Operating the EHR push: the gateway pushes from its lifespan; dead letters are listed and replayed (API and CLI)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from edge_config.destinations import DestinationSettings, PatientMatchSettings
from fhir_mapper.observation import MappedObservation
from gateway.auth.tokens import Role
from gateway.storage import ObservationStore
from gateway.storage.outbox import OutboxOutcome
from tests.fhir_receiver import FhirReceiver
from tests.gateway_support import app_of, bearer, running_gateway
from tests.services import cli
from tests.test_push_worker import MRN, queue, readings, register


def settings_for(url: str, broker_port: int, receiver: FhirReceiver) -> GatewaySettings:
    ehr = DestinationSettings(
        name="ehr",
        base_url=receiver.base_url,
        patient=PatientMatchSettings(identifier_system=MRN),
        retry_base_seconds=0.05,
        retry_cap_seconds=0.5,
        poll_seconds=0.05,
    )
    return GatewaySettings(
        database=DatabaseSettings(url=url), mqtt=MqttSettings(port=broker_port, client_id="push-ops-gateway"), destinations=[ehr]
    )


def metric(text: str, name: str, destination: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"destination": destination, **labels}:
                return sample.value
    raise AssertionError(f"no {name} for {destination} {labels}")


async def settled(http: httpx.AsyncClient, timeout: float = 20) -> set[tuple[str, int]]:
    """(status, count) of the outbox through the API, once nothing is pending."""
    deadline = time.monotonic() + timeout
    while True:
        rows = {(row["status"], row["count"]) for row in (await http.get("/api/v1/outbox")).json()}
        if not any(status == "pending" for status, _ in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def store_resources(url: str, resources: dict[str, bytes]) -> None:
    """Overwrite stored Observations by reading key (what a bad mapping, then its fix, would leave)."""
    connection = await asyncpg.connect(url)
    try:
        for key, resource in resources.items():
            await connection.execute(
                "UPDATE observations SET resource = $2::jsonb WHERE reading_key = $1", uuid.UUID(key), resource.decode()
            )
    finally:
        await connection.close()


def spoiled(observation: MappedObservation) -> bytes:
    resource = orjson.loads(observation.resource)
    resource["valueQuantity"]["value"] = "x"
    return orjson.dumps(resource)


async def test_the_gateway_pushes_and_dead_letters_are_listed_and_replayed(
    timescale_store: ObservationStore, timescale_url: str, broker_port: int
) -> None:
    observations = readings(6)
    async with FhirReceiver() as receiver:
        await register(timescale_store, receiver, ["pat-a"])
        await queue(timescale_store, observations)
        await store_resources(timescale_url, {o.key: spoiled(o) for o in observations[:2]})
        async with running_gateway(settings_for(timescale_url, broker_port, receiver)) as http:
            status = await settled(http)
            assert status == {("done", 4), ("dead", 2)}
            assert len(receiver.observations) == 4
            letters = (await http.get("/api/v1/outbox/dead-letters", params={"destination": "ehr"})).json()
            assert [(letter["http_status"], letter["attempts"]) for letter in letters] == [(422, 1), (422, 1)]
            assert letters[0]["operation_outcome"]["resourceType"] == "OperationOutcome"
            assert {letter["observation"] for letter in letters} == {f"Observation/{o.key}" for o in observations[:2]}

            app = app_of(http)
            patient = bearer(app, Role.PATIENT, "patient/Observation.rs", "pat-a")
            assert (await http.get("/api/v1/outbox/dead-letters", headers=patient)).status_code == 403
            assert (await http.post(f"/api/v1/outbox/dead-letters/{letters[0]['id']}/replay", headers=patient)).status_code == 403
            assert (await http.post("/api/v1/outbox/dead-letters/999999/replay")).status_code == 404
            assert (await http.get("/api/v1/outbox/dead-letters", params={"destination": "Bad Name"})).status_code == 400

            metrics = (await http.get("/metrics")).text
            assert metric(metrics, "pulsebridge_push_outcomes_total", "ehr", outcome="done") == 4
            assert metric(metrics, "pulsebridge_push_outcomes_total", "ehr", outcome="dead") == 2
            assert metric(metrics, "pulsebridge_push_destination_ready", "ehr") == 1

            # The cause is fixed at the source (here: the stored rows), then one replay delivers both.
            await store_resources(timescale_url, {o.key: bytes(o.resource) for o in observations[:2]})
            replayed = await http.post(f"/api/v1/outbox/dead-letters/{letters[0]['id']}/replay")
            assert (replayed.status_code, replayed.json()) == (200, {"replayed": 1})
            assert (await http.post("/api/v1/outbox/dead-letters/replay", params={"destination": "ehr"})).json() == {
                "replayed": 1
            }
            assert await settled(http) == {("done", 6)}
            assert len(receiver.observations) == 6
            assert (await http.get("/api/v1/outbox/dead-letters")).json() == []


async def test_dead_letters_on_the_command_line(timescale_store: ObservationStore, timescale_url: str) -> None:
    env = {"PULSEBRIDGE_DATABASE__URL": timescale_url}
    observations = readings(2)
    await queue(timescale_store, observations)
    claimed = await timescale_store.claim_outbox(
        "ehr", 10, datetime.now(UTC) + timedelta(seconds=1), timedelta(minutes=1), consent="implied"
    )
    refusal = orjson.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}).decode()
    await timescale_store.finish_outbox(
        [(item.id, OutboxOutcome("dead", "422: unknown code", None, 422, refusal)) for item in claimed], datetime.now(UTC)
    )
    listed = await asyncio.to_thread(cli, env, "outbox", "dead-letters", "--destination", "ehr")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t")[1:3] == ["ehr", str(claimed[0].reading_key)]
    assert lines[0].endswith("attempts 1\t422\t422: unknown code")
    neither = await asyncio.to_thread(cli, env, "outbox", "replay")
    assert neither.returncode != 0
    assert "name dead-letter row ids, or --all" in neither.stderr
    one = await asyncio.to_thread(cli, env, "outbox", "replay", str(claimed[0].id), "999999")
    assert one.stdout.splitlines() == [
        "1 of the rows named are not dead letters (already replayed, or unknown)",
        "queued again: 1",
    ]
    rest = await asyncio.to_thread(cli, env, "outbox", "replay", "--all", "--destination", "ehr")
    assert rest.stdout == "queued again: 1\n"
    status = await asyncio.to_thread(cli, env, "outbox", "status")
    assert status.stdout.startswith("ehr\tpending\t2, oldest due ")
    assert ", oldest queued " in status.stdout


async def test_a_correction_reaches_the_ehr_as_a_conditional_update(
    timescale_store: ObservationStore, timescale_url: str, broker_port: int
) -> None:
    observations = readings(3)
    async with FhirReceiver() as receiver:
        await register(timescale_store, receiver, ["pat-a"])
        await queue(timescale_store, observations)
        async with running_gateway(settings_for(timescale_url, broker_port, receiver)) as http:
            assert await settled(http) == {("done", 3)}
            wrong, amended = observations[0], observations[1]
            marked = await http.post(
                f"/api/v1/observations/{wrong.key}/correction",
                json={"action": "entered-in-error", "reason": "cuff on the wrong arm"},
            )
            assert marked.status_code == 200, marked.text
            changed = await http.post(
                f"/api/v1/observations/{amended.key}/correction", json={"action": "amend", "value": 64, "reason": "typed 46"}
            )
            assert changed.status_code == 200, changed.text
            assert await settled(http) == {("done", 5)}
    held = {key[1].removeprefix("urn:uuid:"): resource for key, resource in receiver.observations.items()}
    assert len(held) == receiver.creates == 3  # updated in place, nothing created twice
    assert held[wrong.key]["status"] == "entered-in-error"
    assert (held[amended.key]["status"], held[amended.key]["valueQuantity"]["value"]) == ("amended", 64)
    assert held[observations[2].key]["status"] == "final"
    assert held[amended.key]["subject"] == {"reference": "Patient/ehr-pat-a"}
    assert [method for method, _, _ in receiver.handled].count("PUT") == 2
