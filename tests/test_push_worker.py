"""Outbox senders against a real FHIR receiver and the real TimescaleDB: exactly once, whatever the EHR does."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client import CollectorRegistry

from device_adapters.errors import ConfigError
from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings, GatewaySettings
from edge_config.destinations import DestinationSettings, PatientMatchSettings
from fhir_mapper.identity import IDENTIFIER_SYSTEM, identifier_value
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from gateway.push.client import Capabilities, FhirDestinationClient
from gateway.push.entries import PushEntry, bundle, for_destination
from gateway.push.metrics import PushMetrics
from gateway.push.setup import client_destination
from gateway.push.worker import DestinationPusher, DestinationUnusable, bundle_type_for
from gateway.storage import ObservationStore, open_store
from gateway.storage.outbox import OutboxEntry
from tests.fhir_receiver import Fault, FhirReceiver, SmartClient

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
MRN = "urn:oid:2.16.840.1.113883.19.5"
DEVICE = uuid.UUID("5f0c6c1e-3d0b-4d36-9a55-2f3b0f7f8c01")
GATEWAY = uuid.UUID("0b3f2a4e-8d9c-4e1f-a2b3-c4d5e6f70819")


def readings(count: int, patients: Sequence[str] = ("pat-a",)) -> list[MappedObservation]:
    mapped = []
    for n in range(count):
        patient = patients[n % len(patients)]
        reading = Reading("cuff-1", "heart_rate", T0 + timedelta(seconds=n), quantity=Quantity(Decimal(50 + n % 60), "/min"))
        mapped.append(map_reading(reading, Attribution(patient, DEVICE, "cuff-1"), T0 + timedelta(days=1), source="mqtt"))
    return mapped


def destination(receiver: FhirReceiver, **overrides: Any) -> DestinationSettings:
    fields: dict[str, Any] = {
        "name": "ehr",
        "base_url": receiver.base_url,
        "patient": PatientMatchSettings(identifier_system=MRN),
        "batch_size": 50,
        "timeout_seconds": 5,
        "retry_base_seconds": 0.05,
        "retry_cap_seconds": 0.5,
        "breaker_cool_down_seconds": 0.5,
        "poll_seconds": 0.05,
    }
    return DestinationSettings(**(fields | overrides))


async def queue(store: ObservationStore, observations: Sequence[MappedObservation], name: str = "ehr") -> None:
    for start in range(0, len(observations), 1000):
        chunk = observations[start : start + 1000]
        await store.write_batch(chunk, [], [OutboxEntry(o.key, o.time, name, o.patient_id) for o in chunk])


async def register(store: ObservationStore, receiver: FhirReceiver, patients: Sequence[str]) -> None:
    for patient in patients:
        await store.add_patient(patient, None, None)
        await store.add_patient_identifier(patient, MRN, f"MRN-{patient}")
        receiver.patients[(MRN, f"MRN-{patient}")] = [f"ehr-{patient}"]


@contextlib.asynccontextmanager
async def pushing(
    settings: DestinationSettings, store: ObservationStore, registry: CollectorRegistry | None = None
) -> AsyncIterator[DestinationPusher]:
    async with FhirDestinationClient(client_destination(settings)) as client:
        pusher = DestinationPusher(settings, store, client, PushMetrics(registry or CollectorRegistry()))
        task = asyncio.create_task(pusher.run())
        try:
            yield pusher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def drained(store: ObservationStore, timeout: float) -> dict[str, int]:
    """Outbox rows by status once none is pending (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        counts: dict[str, int] = {c.status: c.count for c in await store.outbox_status()}
        if not counts.get("pending") or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


def keys(observations: Sequence[MappedObservation]) -> set[tuple[str, str]]:
    return {(IDENTIFIER_SYSTEM, identifier_value(o.key)) for o in observations}


def test_a_stored_observation_is_addressed_to_the_ehr() -> None:
    stored = {
        "resourceType": "Observation",
        "id": "8d4c…",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/heartrate"], "lastUpdated": "2026-11-30T08:00:00Z"},
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
                       "valueReference": {"reference": f"Device/{GATEWAY}"}}],
        "status": "final",
        "subject": {"reference": "Patient/pat-a"},
        "device": {"reference": f"Device/{DEVICE}", "display": "cuff-1"},
    }  # fmt: skip
    assert for_destination(stored, "Patient/ehr-77") == {
        "resourceType": "Observation",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/heartrate"]},
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
                       "valueReference": {"type": "Device", "identifier": {"system": IDENTIFIER_SYSTEM, "value": f"urn:uuid:{GATEWAY}"}}}],
        "status": "final",
        "subject": {"reference": "Patient/ehr-77"},
        "device": {"type": "Device", "identifier": {"system": IDENTIFIER_SYSTEM, "value": f"urn:uuid:{DEVICE}"}, "display": "cuff-1"},
    }  # fmt: skip
    assert for_destination({"subject": {"reference": "Patient/pat-a"}}, None) == {"subject": {"reference": "Patient/pat-a"}}
    key = "2f1c0e7a-0000-5000-8000-000000000001"
    document = orjson.loads(bundle([PushEntry(key, {}), PushEntry(key, {}, "PUT")], "batch"))
    condition = f"identifier=urn%3Aietf%3Arfc%3A3986|urn%3Auuid%3A{key}"
    assert [entry["request"] for entry in document["entry"]] == [
        {"method": "POST", "url": "Observation", "ifNoneExist": condition},
        {"method": "PUT", "url": f"Observation?{condition}"},
    ]


@pytest.mark.parametrize(
    ("overrides", "capabilities", "expected"),
    [
        ({}, Capabilities("4.0.1", transaction=True, batch=True, conditional_create=True), "batch"),
        ({}, Capabilities("4.0.1", transaction=True, batch=False, conditional_create=True), "transaction"),
        ({"bundle": "transaction"}, Capabilities("4.0.1", transaction=True, batch=True, conditional_create=True), "transaction"),
        (
            {"patient": PatientMatchSettings(match="conditional_reference", identifier_system=MRN)},
            Capabilities("4.0.1", transaction=True, batch=True, conditional_create=True),
            "transaction",
        ),
        ({}, Capabilities("4.0.1", transaction=True, batch=True, conditional_create=False), "no conditional create"),
        ({"bundle": "batch"}, Capabilities("4.0.1", transaction=True, batch=False, conditional_create=True), "batch Bundles"),
        ({}, Capabilities("4.0.1", transaction=False, batch=False, conditional_create=True), "neither"),
    ],
)
def test_the_bundle_type_follows_what_the_ehr_offers(
    overrides: dict[str, Any], capabilities: Capabilities, expected: str
) -> None:
    settings = DestinationSettings(name="ehr", base_url="https://ehr.example/fhir", **overrides)
    if expected in {"batch", "transaction"}:
        assert bundle_type_for(settings, capabilities) == expected
    else:
        with pytest.raises(DestinationUnusable, match=expected):
            bundle_type_for(settings, capabilities)


async def test_ten_thousand_readings_arrive_once_despite_lost_answers_and_two_gateways(
    timescale_store: ObservationStore, timescale_url: str
) -> None:
    patients = [f"pat-{n}" for n in range(10)]
    observations = readings(10_000, patients)
    async with FhirReceiver(lose_every=10) as receiver:
        await register(timescale_store, receiver, patients)
        await queue(timescale_store, observations)
        # A few answers come after the client gave up: the EHR committed, the gateway retries.
        receiver.fail_next(3, Fault("delay", seconds=2.5))
        other_gateway = await open_store(DatabaseSettings(url=timescale_url))
        settings = destination(receiver, workers=2, timeout_seconds=2)
        try:
            async with pushing(settings, timescale_store), pushing(settings, other_gateway):
                counts = await drained(timescale_store, timeout=240)
        finally:
            await other_gateway.close()
        assert counts == {"done": 10_000}
        assert set(receiver.observations) == keys(observations)
        assert len(receiver.observations) == 10_000
        assert len(receiver.write_times) > 200  # 200 Bundles at least, the lost ones again
        subjects = {stored["subject"]["reference"] for stored in receiver.observations.values()}
        assert subjects == {f"Patient/ehr-{patient}" for patient in patients}
        assert receiver.patient_searches == 2 * len(patients)  # once per gateway, then cached


async def test_retry_after_is_honoured_in_seconds_and_as_an_http_date(timescale_store: ObservationStore) -> None:
    async with FhirReceiver() as receiver:
        await register(timescale_store, receiver, ["pat-a"])
        await queue(timescale_store, readings(3))
        receiver.fail_next(1, Fault("throttle", retry_after="2"))
        until = datetime.now(UTC) + timedelta(seconds=4)
        receiver.fail_next(1, Fault("unavailable", retry_after=format_datetime(until, usegmt=True)))
        wall_minus_monotonic = time.time() - time.monotonic()
        async with pushing(destination(receiver), timescale_store):
            assert await drained(timescale_store, timeout=30) == {"done": 3}
    first, second, third = receiver.write_times[:3]
    assert second - first >= 2 - 0.1
    assert third + wall_minus_monotonic >= until.replace(microsecond=0).timestamp() - 0.1
    assert len(receiver.write_times) == 3  # nothing went between


async def test_refusals_are_dead_letters_after_one_attempt_with_the_ehrs_reason(
    timescale_store: ObservationStore, timescale_url: str
) -> None:
    good, invalid, mismatched = readings(3)
    async with FhirReceiver() as receiver:
        await register(timescale_store, receiver, ["pat-a"])
        await queue(timescale_store, [good, invalid, mismatched])
        connection = await asyncpg.connect(timescale_url)
        try:
            await connection.execute(
                "UPDATE observations SET resource = jsonb_set(resource, '{valueQuantity,value}', '\"seventy\"') WHERE reading_key = $1",
                uuid.UUID(invalid.key),
            )
            await connection.execute(
                "UPDATE observations SET resource = jsonb_set(resource, '{identifier,0,value}', '\"urn:uuid:other\"') "
                "WHERE reading_key = $1",
                uuid.UUID(mismatched.key),
            )
        finally:
            await connection.close()
        async with pushing(destination(receiver), timescale_store):
            counts = await drained(timescale_store, timeout=30)
    assert counts == {"done": 1, "dead": 2}
    assert len(receiver.write_times) == 1
    dead = {letter.reading_key: letter for letter in await timescale_store.dead_letters(None, 0, 10)}
    assert {key: (d.attempts, d.http_status) for key, d in dead.items()} == {
        uuid.UUID(invalid.key): (1, 422),
        uuid.UUID(mismatched.key): (1, 400),
    }
    refusal = orjson.loads(dead[uuid.UUID(invalid.key)].operation_outcome or "null")
    assert refusal["resourceType"] == "OperationOutcome"
    assert "422" in (dead[uuid.UUID(invalid.key)].error or "")


async def test_an_unknown_or_ambiguous_patient_is_a_dead_letter_and_never_guessed(timescale_store: ObservationStore) -> None:
    async with FhirReceiver() as receiver:
        await register(timescale_store, receiver, ["pat-a", "pat-b"])
        receiver.patients[(MRN, "MRN-pat-b")] = ["ehr-1", "ehr-2"]
        await timescale_store.add_patient("pat-c", None, None)  # no MRN at all
        del receiver.patients[(MRN, "MRN-pat-a")]
        await queue(timescale_store, readings(3, ["pat-a", "pat-b", "pat-c"]))
        async with pushing(destination(receiver), timescale_store):
            assert await drained(timescale_store, timeout=30) == {"dead": 3}
        errors = sorted(letter.error or "" for letter in await timescale_store.dead_letters("ehr", 0, 10))
        assert errors == [
            f"2 Patients in the EHR with this patient's identifier in {MRN}",
            f"no Patient in the EHR with this patient's identifier in {MRN}",
            f"patient has no identifier in {MRN}",
        ]
        assert receiver.observations == {}
        receiver.patients[(MRN, "MRN-pat-a")] = ["ehr-a"]  # fixed in the EHR: a replay delivers
        assert await timescale_store.replay_dead_letters(None, "ehr", datetime.now(UTC)) == 3
        async with pushing(destination(receiver), timescale_store):
            assert await drained(timescale_store, timeout=30) == {"dead": 2, "done": 1}
        assert [o["subject"] for o in receiver.observations.values()] == [{"reference": "Patient/ehr-a"}]


@pytest.mark.parametrize("match", ["conditional_reference", "stored_id"])
async def test_patients_are_named_by_conditional_reference_or_stored_id(timescale_store: ObservationStore, match: str) -> None:
    async with FhirReceiver() as receiver:
        await register(timescale_store, receiver, ["pat-a"])
        if match == "stored_id":
            await timescale_store.add_patient_identifier("pat-a", "urn:ehr:patient-id", "ehr-pat-a")
        system = MRN if match == "conditional_reference" else "urn:ehr:patient-id"
        settings = destination(receiver, patient=PatientMatchSettings(match=match, identifier_system=system))
        await queue(timescale_store, readings(4))
        async with pushing(settings, timescale_store) as pusher:
            assert await drained(timescale_store, timeout=30) == {"done": 4}
            assert pusher.bundle_type == ("transaction" if match == "conditional_reference" else "batch")
        expected = "Patient/ehr-pat-a"
        assert {o["subject"]["reference"] for o in receiver.observations.values()} == {expected}
        assert receiver.patient_searches == 0


async def test_a_rejected_token_costs_exactly_one_refresh(timescale_store: ObservationStore, tmp_path: Path) -> None:
    async with FhirReceiver(require_auth=True) as receiver:
        receiver.secret_clients["pulsebridge"] = "s3cret"
        await register(timescale_store, receiver, ["pat-a"])
        secret = tmp_path / "secret"
        secret.write_text("s3cret\n")
        auth = {
            "type": "client_credentials",
            "token_url": receiver.token_url,
            "client_id": "pulsebridge",
            "client_secret_file": secret,
        }
        settings = destination(receiver, auth=auth)
        await queue(timescale_store, readings(2))
        async with pushing(settings, timescale_store):
            assert await drained(timescale_store, timeout=30) == {"done": 2}
            assert receiver.token_requests == 1
            receiver.revoke_tokens()  # the EHR forgets the token before it expires
            await queue(timescale_store, readings(4)[2:])
            assert await drained(timescale_store, timeout=30) == {"done": 4}
        assert receiver.token_requests == 2
        assert len(receiver.observations) == 4


async def test_a_patient_search_that_fails_is_retried_not_dead_lettered(timescale_store: ObservationStore) -> None:
    async with FhirReceiver(patient_search_failures=3) as receiver:
        await register(timescale_store, receiver, ["pat-a"])
        await queue(timescale_store, readings(2))
        async with pushing(destination(receiver), timescale_store):
            assert await drained(timescale_store, timeout=30) == {"done": 2}
        assert receiver.patient_searches == 4  # three 503s, then the match
        assert len(receiver.observations) == 2


async def test_smart_backend_services_from_the_settings_signs_each_token_request(
    timescale_store: ObservationStore, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    key_file = tmp_path / "backend.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    async with FhirReceiver(require_auth=True) as receiver:
        receiver.smart_clients["pb-backend"] = SmartClient("pb-backend", "key-2026", key.public_key(), "ES384")
        await register(timescale_store, receiver, ["pat-a"])
        auth = {"type": "smart_backend_services", "token_url": receiver.token_url, "client_id": "pb-backend",
                "private_key_file": key_file, "kid": "key-2026", "algorithm": "ES384"}  # fmt: skip
        await queue(timescale_store, readings(3))
        async with pushing(destination(receiver, auth=auth), timescale_store):
            assert await drained(timescale_store, timeout=30) == {"done": 3}
    [recorded] = receiver.assertions
    assert recorded.problems == ()
    assert (recorded.header["alg"], recorded.header["kid"]) == ("ES384", "key-2026")
    assert recorded.claims["aud"] == receiver.token_url
    assert recorded.claims["iss"] == recorded.claims["sub"] == "pb-backend"
    assert 0 < recorded.claims["exp"] - recorded.claims["iat"] <= 300
    assert uuid.UUID(recorded.claims["jti"])


def test_a_destination_whose_secret_cannot_be_read_fails_at_start_with_its_name(tmp_path: Path) -> None:
    rsa_file = tmp_path / "rsa.pem"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_file.write_bytes(
        rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    smart = {"type": "smart_backend_services", "token_url": "https://ehr.example/token", "client_id": "pb", "kid": "k"}
    cases = [
        ({"type": "bearer", "token_file": tmp_path / "missing"}, "destinations\\[ehr\\].auth: cannot read .*missing"),
        ({**smart, "private_key_file": rsa_file, "algorithm": "ES384"}, "ES384 needs a P-384 EC private key"),
    ]
    for auth, message in cases:
        settings = DestinationSettings(name="ehr", base_url="https://ehr.example/fhir", auth=auth)
        with pytest.raises(ConfigError, match=message):
            client_destination(settings)


def test_destination_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="each name may appear once"):
        GatewaySettings(
            destinations=[{"name": "ehr", "base_url": "https://a.example"}, {"name": "ehr", "base_url": "https://b.example"}]
        )
    with pytest.raises(ValueError, match="conditional_reference needs transaction"):
        DestinationSettings(
            name="ehr",
            base_url="https://a.example",
            bundle="batch",
            patient={"match": "conditional_reference", "identifier_system": MRN},
        )
    with pytest.raises(ValueError, match="retry_base_seconds must not exceed"):
        DestinationSettings(name="ehr", base_url="https://a.example", retry_base_seconds=10, retry_cap_seconds=5)
