"""Consent through the API with real tokens: who may read and decide, and what a decision does to the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.auth.audit import AuditAction
from gateway.storage import ObservationStore
from gateway.storage.consent import REVOKED_ERROR
from tests.consent_support import IDENTITIES, gateway_with_destinations, headers, ingest, queued, runtime, seed

LEASE = timedelta(minutes=5)


@pytest.fixture
async def gateway(timescale_url: str, timescale_store: ObservationStore, broker_port: int) -> AsyncIterator[httpx.AsyncClient]:
    await seed(timescale_store)
    async for http in gateway_with_destinations(timescale_url, broker_port, "consent-api"):
        yield http


def _reading(minute: int) -> dict[str, object]:
    return {"type": "heart_rate", "value": 60 + minute, "unit": "/min", "time": f"2026-11-22T08:{minute:02d}:00Z"}


def _expected(identity: str | None, patient: str) -> int:
    if identity is None:
        return 401
    if identity in {"dr-1", "system", "device"}:
        return 403  # consent is not theirs to read or decide
    reached = {"pat-a": {"pat-a"}, "carer-1": {"pat-a"}, "admin": {"pat-a", "pat-b"}}[identity]
    return 200 if patient in reached else 404


async def test_who_may_read_and_decide_a_patients_consent(gateway: httpx.AsyncClient) -> None:
    mismatches = {}
    for identity in [None, *IDENTITIES]:
        for patient in ("pat-a", "pat-b", "nobody"):
            want = _expected(identity, patient)
            got = (await gateway.get(f"/api/v1/patients/{patient}/consents", headers=headers(gateway, identity))).status_code
            put = await gateway.put(
                f"/api/v1/patients/{patient}/consents/ehr-a", json={"status": "granted"}, headers=headers(gateway, identity)
            )
            if (got, put.status_code) != (want, want):
                mismatches[identity, patient] = (got, put.status_code, want)
            if put.status_code != 200:
                assert put.headers["content-type"].startswith("application/fhir+json")  # an OperationOutcome
    assert not mismatches, mismatches


async def test_a_token_without_consent_scopes_is_refused(gateway: httpx.AsyncClient) -> None:
    reader = headers(gateway, "pat-a", "patient/Observation.rs patient/Consent.rs")
    assert (await gateway.get("/api/v1/patients/pat-a/consents", headers=reader)).status_code == 200
    refused = await gateway.put("/api/v1/patients/pat-a/consents/ehr-a", json={"status": "revoked"}, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"
    nothing = headers(gateway, "pat-a", "patient/Observation.rs")
    assert (await gateway.get("/api/v1/patients/pat-a/consents", headers=nothing)).status_code == 403


async def test_unknown_destinations_and_bad_bodies(gateway: httpx.AsyncClient) -> None:
    own = headers(gateway, "pat-a")
    unknown = await gateway.put("/api/v1/patients/pat-a/consents/ehr-z", json={"status": "granted"}, headers=own)
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"
    assert "ehr-z" in unknown.json()["issue"][0]["diagnostics"]
    bodies: list[object] = [{"status": "maybe"}, {}, {"status": "granted", "extra": 1}, []]
    for body in bodies:
        assert (await gateway.put("/api/v1/patients/pat-a/consents/ehr-a", json=body, headers=own)).status_code == 400


async def test_the_patient_revokes_then_grants_and_the_list_and_history_say_so(gateway: httpx.AsyncClient) -> None:
    own, carer = headers(gateway, "pat-a"), headers(gateway, "carer-1")
    listed = (await gateway.get("/api/v1/patients/pat-a/consents", headers=own)).json()
    assert listed == {
        "patient": "pat-a",
        "consents": [
            {"destination": "ehr-a", "consent": "implied", "status": None, "allowed": True, "recorded_by": None,
             "recorded_at": None},
            {"destination": "ehr-b", "consent": "implied", "status": None, "allowed": True, "recorded_by": None,
             "recorded_at": None},
            {"destination": "ehr-r", "consent": "required", "status": None, "allowed": False, "recorded_by": None,
             "recorded_at": None},
        ],
    }  # fmt: skip
    revoked = await gateway.put("/api/v1/patients/pat-a/consents/ehr-a", json={"status": "revoked"}, headers=own)
    assert revoked.status_code == 200
    assert (revoked.json()["status"], revoked.json()["allowed"], revoked.json()["recorded_by"]) == (
        "revoked", False, "Patient/pat-a"
    )  # fmt: skip
    granted = await gateway.put("/api/v1/patients/pat-a/consents/ehr-r", json={"status": "granted"}, headers=carer)
    assert (granted.json()["allowed"], granted.json()["recorded_by"]) == (True, "RelatedPerson/carer-1")
    again = await gateway.put("/api/v1/patients/pat-a/consents/ehr-r", json={"status": "granted"}, headers=own)
    assert again.json() == granted.json()  # the decision in force is kept as it was

    body = (await gateway.get("/api/v1/patients/pat-a/consents", params={"history": "true"}, headers=own)).json()
    assert [(c["destination"], c["status"], c["allowed"]) for c in body["consents"]] == [
        ("ehr-a", "revoked", False), ("ehr-b", None, True), ("ehr-r", "granted", True),
    ]  # fmt: skip
    assert [(h["destination"], h["status"], h["recorded_by"]) for h in body["history"]] == [
        ("ehr-a", "revoked", "Patient/pat-a"), ("ehr-r", "granted", "RelatedPerson/carer-1"),
    ]  # fmt: skip
    events = await runtime(gateway).store.search_audit("pat-a", 10)
    assert {(event.action, event.agent) for event in events} >= {
        (AuditAction.UPDATE, "Patient/pat-a"), (AuditAction.UPDATE, "RelatedPerson/carer-1"),
        (AuditAction.SEARCH, "Patient/pat-a"),
    }  # fmt: skip


async def test_consent_decides_what_is_queued_and_a_revocation_stops_rows_already_pending(gateway: httpx.AsyncClient) -> None:
    own = headers(gateway, "pat-a")
    await ingest(gateway, "pat-a", _reading(0), _reading(1))
    await ingest(gateway, "pat-b", _reading(0))
    # implied ehr-a takes both patients; ehr-b only pat-b; required ehr-r nobody yet.
    assert await queued(gateway) == {("ehr-a", "pending"): 3, ("ehr-b", "pending"): 1}

    assert (await gateway.put("/api/v1/patients/pat-a/consents/ehr-r", json={"status": "granted"}, headers=own)).is_success
    await ingest(gateway, "pat-a", _reading(2))
    assert await queued(gateway) == {("ehr-a", "pending"): 4, ("ehr-b", "pending"): 1, ("ehr-r", "pending"): 1}

    assert (await gateway.put("/api/v1/patients/pat-a/consents/ehr-a", json={"status": "revoked"}, headers=own)).is_success
    await ingest(gateway, "pat-a", _reading(3))  # not queued for ehr-a any more
    store, now = runtime(gateway).store, datetime.now(UTC) + timedelta(seconds=1)
    claimed = await store.claim_outbox("ehr-a", 100, now, LEASE, consent="implied")
    assert [item.resource.count('"Patient/pat-b"') for item in claimed] == [1]  # pat-a's three pending rows were not handed out
    assert await queued(gateway) == {
        ("ehr-a", "dead"): 3, ("ehr-a", "pending"): 1, ("ehr-b", "pending"): 1, ("ehr-r", "pending"): 2,
    }  # fmt: skip
    assert {letter.error for letter in await store.dead_letters("ehr-a", 0, 10)} == {REVOKED_ERROR}
