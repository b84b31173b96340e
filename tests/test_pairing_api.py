"""Pairing through the API: codes made by a patient, redeemed once by a device, never guessed, revoked at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from gateway.auth.audit import AuditAction
from gateway.auth.pairing import PairingGrant, code_digest, display, new_code
from gateway.auth.tokens import Role
from gateway.storage import ObservationStore
from tests.fhir_checks import check_fhir_response_async
from tests.gateway_support import app_of, bearer, running_gateway

OWN_DEVICES = "patient/Device.cruds patient/Observation.rs"


@pytest.fixture
async def gateway(timescale_url: str, timescale_store: ObservationStore, broker_port: int) -> AsyncIterator[httpx.AsyncClient]:
    for patient in ("pat-a", "pat-b"):
        await timescale_store.add_patient(patient, None, None)
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url), mqtt=MqttSettings(port=broker_port, client_id="pairing")
    )
    async with running_gateway(settings) as http:
        yield http


def _from(app: FastAPI, address: str) -> httpx.AsyncClient:
    """A client whose requests come from ``address`` (the throttle keys on it)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://gw",
        event_hooks={"response": [check_fhir_response_async]},
    )


async def _code(http: httpx.AsyncClient, patient: str = "pat-a") -> str:
    response = await http.post(
        f"/api/v1/patients/{patient}/pairing-codes",
        headers=bearer(app_of(http), Role.PATIENT, OWN_DEVICES, patient, subject=patient),
    )
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


async def test_a_patient_pairs_a_device_which_then_writes_as_itself(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/api/v1/patients/pat-a/pairing-codes",
        json={"device_kind": "cuff"},
        headers=bearer(app_of(gateway), Role.PATIENT, OWN_DEVICES, "pat-a", subject="pat-a"),
    )
    assert response.status_code == 201
    body = response.json()
    code = body["code"]
    assert len(code) == 9
    assert code[4] == "-"
    assert body["qr_svg"].startswith("<?xml")
    assert "<svg" in body["qr_svg"]
    assert datetime.fromisoformat(body["expires_at"]) - datetime.now(UTC) <= timedelta(minutes=10)

    paired = await gateway.post("/api/v1/pairing/redeem", json={"code": code.lower().replace("-", " "), "device_id": "cuff-7"})
    assert paired.status_code == 201, paired.text
    token = paired.json()["token"]
    registration = (await app_of(gateway).state.runtime.store.registrations({"cuff-7"}))["cuff-7"]
    assert registration.patient_at(datetime.now(UTC)) == "pat-a"
    assert registration.device.kind == "cuff"
    # The device is authenticated (403: devices read nothing), a wrong secret is not (401).
    device = {"Authorization": f"Bearer {token}"}
    assert (await gateway.get("/fhir/Observation", params={"patient": "pat-a"}, headers=device)).status_code == 403
    forged = {"Authorization": f"Bearer {token[:-4]}AAAA"}
    assert (await gateway.get("/fhir/Observation", params={"patient": "pat-a"}, headers=forged)).status_code == 401
    credentials = await app_of(gateway).state.runtime.store.device_credentials("cuff-7")
    assert [credential.secret_hash for credential in credentials] != [token]
    assert token.split(".")[-1] not in credentials[0].secret_hash

    again = await gateway.post("/api/v1/pairing/redeem", json={"code": code, "device_id": "cuff-8"})
    assert again.status_code == 400  # single use
    assert again.json()["issue"][0]["code"] == "invalid"


async def test_who_may_make_a_code(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    other = await gateway.post("/api/v1/patients/pat-b/pairing-codes", headers=bearer(app, Role.PATIENT, OWN_DEVICES, "pat-a"))
    assert other.status_code == 404  # another patient: as if unknown
    nobody = await gateway.post("/api/v1/patients/nobody/pairing-codes")  # the admin client
    assert nobody.status_code == 404
    read_only = await gateway.post(
        "/api/v1/patients/pat-a/pairing-codes", headers=bearer(app, Role.PATIENT, "patient/Device.rs", "pat-a")
    )
    assert read_only.status_code == 403
    assert (await gateway.post("/api/v1/patients/pat-a/pairing-codes", headers={"Authorization": ""})).status_code == 401
    assert (await gateway.post("/api/v1/patients/pat-a/pairing-codes")).status_code == 201  # the administrator


async def test_expired_codes_and_taken_devices_are_refused(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    store, key = app.state.runtime.store, app.state.runtime.auth.pairing_key
    stale = new_code()
    past = datetime.now(UTC) - timedelta(minutes=20)
    await store.add_pairing_code(
        code_digest(stale, key), PairingGrant("pat-a", "Patient/pat-a", past, past + timedelta(minutes=10))
    )
    expired = await gateway.post("/api/v1/pairing/redeem", json={"code": display(stale), "device_id": "scale-1"})
    assert expired.status_code == 400

    assert (
        await gateway.post("/api/v1/pairing/redeem", json={"code": await _code(gateway, "pat-a"), "device_id": "scale-1"})
    ).status_code == 201
    hijack = await gateway.post("/api/v1/pairing/redeem", json={"code": await _code(gateway, "pat-b"), "device_id": "scale-1"})
    assert hijack.status_code == 409
    registration = (await store.registrations({"scale-1"}))["scale-1"]
    assert registration.patient_at(datetime.now(UTC)) == "pat-a"
    for bad in ({"code": "x", "device_id": "a/b"}, {"code": "BCDF-GHJK"}, {"code": "BCDF-GHJK", "device_id": "d", "extra": 1}):
        assert (await gateway.post("/api/v1/pairing/redeem", json=bad)).status_code == 400


async def test_two_thousand_guesses_from_ten_addresses_pair_nothing(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    real = await _code(gateway)
    attempts: dict[int, int] = {}
    clients = [_from(app, f"203.0.113.{n}") for n in range(10)]
    try:
        for guess in range(2000):
            code = new_code()
            if code == real.replace("-", ""):
                continue
            response = await clients[guess % 10].post(
                "/api/v1/pairing/redeem", json={"code": code, "device_id": f"intruder-{guess}"}
            )
            attempts[response.status_code] = attempts.get(response.status_code, 0) + 1
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) > 0
    finally:
        for client in clients:
            await client.aclose()
    assert attempts.get(201, 0) == 0
    assert attempts[400] == 50  # five tries per address in ten minutes, then 429
    assert attempts[429] == 2000 - 50
    # The patient's own device, from its own address, still pairs.
    async with _from(app, "198.51.100.20") as device:
        assert (await device.post("/api/v1/pairing/redeem", json={"code": real, "device_id": "watch-1"})).status_code == 201
    audit = [row.record for _, row in await app.state.runtime.store.audit_chain(0, 10_000)]
    assert sum(record.action is AuditAction.PAIR and record.outcome.value == "4" for record in audit) == 2000


async def test_unpairing_revokes_the_token_and_ends_the_attribution_at_once(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    token = (await gateway.post("/api/v1/pairing/redeem", json={"code": await _code(gateway), "device_id": "oxi-1"})).json()[
        "token"
    ]
    device = {"Authorization": f"Bearer {token}"}
    assert (await gateway.get("/fhir/Observation", params={"patient": "pat-a"}, headers=device)).status_code == 403
    other = bearer(app, Role.PATIENT, OWN_DEVICES, "pat-b", subject="pat-b")
    assert (await gateway.delete("/api/v1/devices/oxi-1/pairing", headers=other)).status_code == 404
    own = bearer(app, Role.PATIENT, OWN_DEVICES, "pat-a", subject="pat-a")
    response = await gateway.delete("/api/v1/devices/oxi-1/pairing", headers=own)
    assert response.json() == {"device_id": "oxi-1", "credentials_revoked": 1, "assignment_ended": True}
    assert (await gateway.get("/fhir/Observation", params={"patient": "pat-a"}, headers=device)).status_code == 401
    registration = (await app.state.runtime.store.registrations({"oxi-1"}))["oxi-1"]
    assert registration.patient_at(datetime.now(UTC) + timedelta(seconds=1)) is None
    assert registration.patient_at(datetime.now(UTC) - timedelta(minutes=1)) == "pat-a"  # readings before stay hers
