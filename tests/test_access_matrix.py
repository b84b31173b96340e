"""The authorization matrix: every endpoint x {own, other patient's, nonexistent} object x every identity.

Patients A and B; a practitioner whose care team has A; a caregiver A delegated to; an
administrator; a backend system; a device; and nobody (no token). Each answer is compared
with what the access table says (gateway/auth/policy.py): 100% must match. Someone else's
resource answers exactly like a missing one (404); a search for it finds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from fhir_mapper.observation import Attribution, map_reading
from gateway.auth.audit import verify_chain
from gateway.auth.tokens import Role
from gateway.storage import ObservationStore
from tests.gateway_support import app_of, bearer, running_gateway

T0 = datetime(2026, 11, 20, tzinfo=UTC)
DEVICES = {"pat-a": uuid.UUID(int=0xA), "pat-b": uuid.UUID(int=0xB)}
OBSERVATIONS: dict[str, str] = {}
MISSING = str(uuid.UUID(int=0xDEAD))
READ = "patient/Observation.rs patient/Patient.rs patient/Device.rs"
USER_READ = "user/Observation.rs user/Patient.rs user/Device.rs"

# identity -> (role, scopes, patient in context, the patients it reaches)
IDENTITIES: dict[str, tuple[Role, str, str | None, frozenset[str]]] = {
    "patient-a": (Role.PATIENT, READ, "pat-a", frozenset({"pat-a"})),
    "patient-b": (Role.PATIENT, READ, "pat-b", frozenset({"pat-b"})),
    "dr-1": (Role.PRACTITIONER, USER_READ, None, frozenset({"pat-a"})),
    "carer-1": (Role.CAREGIVER, USER_READ, None, frozenset({"pat-a"})),
    "admin": (Role.ADMIN, "user/*.cruds", None, frozenset({"pat-a", "pat-b", "nobody"})),
    "system": (Role.SYSTEM, "system/*.rs", None, frozenset({"pat-a", "pat-b", "nobody"})),
    "device": (Role.DEVICE, "system/*.cruds", None, frozenset()),
}
OPERATORS = frozenset({"admin", "system"})


@pytest.fixture
async def gateway(timescale_url: str, timescale_store: ObservationStore, broker_port: int) -> AsyncIterator[httpx.AsyncClient]:
    for patient in ("pat-a", "pat-b"):
        await timescale_store.add_patient(patient, None, None)
        device = await timescale_store.add_device(f"watch-{patient}", "watch", None)
        await timescale_store.assign_device(f"watch-{patient}", patient, None)
        DEVICES[patient] = device.resource_id
        reading = Reading(f"watch-{patient}", "heart_rate", T0, quantity=Quantity(Decimal(70), "/min"))
        mapped = map_reading(reading, Attribution(patient, device.resource_id, f"watch-{patient}"), T0, source="mqtt")
        await timescale_store.write_batch([mapped], [])
        OBSERVATIONS[patient] = mapped.key
    for account, role in (("dr-1", "practitioner"), ("carer-1", "caregiver")):
        await timescale_store.add_account(account, role, None, None)
    await timescale_store.add_care_team("team-1", "Cardiology")
    await timescale_store.add_care_team_member("team-1", "dr-1")
    await timescale_store.add_care_team_patient("team-1", "pat-a")
    await timescale_store.delegate("pat-a", "carer-1")
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url), mqtt=MqttSettings(port=broker_port, client_id="matrix")
    )
    async with running_gateway(settings) as http:
        yield http


def _object(target: str) -> str:
    return {"own": "pat-a", "other": "pat-b", "nonexistent": "nobody"}[target]


# endpoint -> (request for a patient, kind): "read" answers 200/404; "search" answers entries or none.
ENDPOINTS: dict[str, tuple[Callable[[str], tuple[str, dict[str, str]]], str]] = {
    "Observation read": (lambda p: (f"/fhir/Observation/{OBSERVATIONS.get(p, MISSING)}", {}), "read"),
    "Observation search": (lambda p: ("/fhir/Observation", {"patient": p}), "search"),
    "Observation search subject": (lambda p: ("/fhir/Observation", {"subject": f"Patient/{p}"}), "search"),
    "$lastn": (lambda p: ("/fhir/Observation/$lastn", {"patient": p}), "search"),
    "Patient read": (lambda p: (f"/fhir/Patient/{p}", {}), "read"),
    "Patient search": (lambda p: ("/fhir/Patient", {"_id": p}), "search"),
    "Device read": (lambda p: (f"/fhir/Device/{DEVICES.get(p, MISSING)}", {}), "read"),
    "Device search": (lambda p: ("/fhir/Device", {"patient": p}), "search"),
    "vitals": (lambda p: (f"/api/v1/patients/{p}/vitals", {"kind": "heart_rate", "from": "2026-11-19T00:00:00Z"}), "read"),
    "export": (lambda p: (f"/api/v1/patients/{p}/export", {}), "read"),
    "dashboard summary": (lambda p: (f"/api/v1/dashboard/patients/{p}", {}), "read"),
}


Answer = int | tuple[int, bool]
"""A status, or for a search (200, whether it found anything)."""


def _expected(identity: str | None, endpoint: str, patient: str) -> Answer:
    if identity is None:
        return 401
    _, _, _, reached = IDENTITIES[identity]
    if not reached:
        return 403  # a device token reads nothing: no scope applies to its role
    kind = ENDPOINTS[endpoint][1]
    exists = patient != "nobody"
    if endpoint in {"vitals", "export"} and patient in reached:
        return 200  # a patient the caller may see, with or without readings
    if kind == "read":
        return 200 if exists and patient in reached else 404
    return (200, exists and patient in reached)


async def _answer(http: httpx.AsyncClient, identity: str | None, endpoint: str, patient: str) -> Answer:
    headers = {"Authorization": ""}
    if identity is not None:
        role, scope, context, _ = IDENTITIES[identity]
        headers = bearer(app_of(http), role, scope, context, subject=identity)
    path, params = ENDPOINTS[endpoint][0](patient)
    response = await http.get(path, params=params, headers=headers)
    if response.status_code != 200 or ENDPOINTS[endpoint][1] == "read" or endpoint in {"vitals", "export"}:
        return response.status_code
    return (200, bool(response.json().get("entry")))


async def test_every_endpoint_object_and_identity_matches_the_access_table(gateway: httpx.AsyncClient) -> None:
    expected, actual = {}, {}
    for identity in [None, *IDENTITIES]:
        for endpoint in ENDPOINTS:
            for target in ("own", "other", "nonexistent"):
                patient = _object(target)
                expected[identity, endpoint, target] = _expected(identity, endpoint, patient)
                actual[identity, endpoint, target] = await _answer(gateway, identity, endpoint, patient)
    mismatches = {key: (actual[key], want) for key, want in expected.items() if actual[key] != want}
    assert not mismatches, f"{len(mismatches)} of {len(expected)} differ (got, expected): {mismatches}"
    assert len(expected) == 8 * len(ENDPOINTS) * 3


async def test_operations_are_for_operators_only(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    assert (await gateway.get("/api/v1/quarantine", headers={"Authorization": ""})).status_code == 401
    for identity, (role, scope, context, _) in IDENTITIES.items():
        response = await gateway.get("/api/v1/quarantine", headers=bearer(app, role, scope, context, subject=identity))
        assert response.status_code == (200 if identity in OPERATORS else 403), identity
        if response.status_code == 403:
            assert response.json()["issue"][0]["code"] == "forbidden"


async def test_a_scope_query_narrows_what_a_token_reads(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    vitals_only = bearer(app, Role.PATIENT, "patient/Observation.rs?category=vital-signs", "pat-a")
    laboratory_only = bearer(app, Role.PATIENT, "patient/Observation.rs?category=laboratory", "pat-a")
    own = f"/fhir/Observation/{OBSERVATIONS['pat-a']}"
    assert (await gateway.get(own, headers=vitals_only)).status_code == 200
    assert (await gateway.get(own, headers=laboratory_only)).status_code == 404
    assert (await gateway.get("/fhir/Observation", headers=vitals_only)).json()["entry"]  # no patient: the token's own
    assert "entry" not in (await gateway.get("/fhir/Observation", headers=laboratory_only)).json()
    assert (await gateway.get("/api/v1/patients/pat-a/export", headers=vitals_only)).status_code == 403


async def test_tokens_are_checked_before_anything_else(gateway: httpx.AsyncClient) -> None:
    for header in ("", "Bearer", "Basic YWRtaW46YWRtaW4=", "Bearer not-a-token"):
        response = await gateway.get("/fhir/Observation", params={"patient": "pat-a"}, headers={"Authorization": header})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["issue"][0]["code"] == "login"
    expired = app_of(gateway).state.runtime.auth.local.issue(
        "admin", Role.ADMIN, "user/*.cruds", now=datetime.now(UTC).timestamp() - 7200, lifetime=timedelta(minutes=60)
    )
    response = await gateway.get("/fhir/Observation", headers={"Authorization": f"Bearer {expired}"})
    assert (response.status_code, response.json()["issue"][0]["diagnostics"]) == (401, "the token has expired")
    for nul in ("/api/v1/quarantine?reason=%00", "/fhir/Observation?patient=a%00b", "/fhir/Patient/a%00b"):
        assert (await gateway.get(nul)).status_code == 400  # refused before PostgreSQL (or the audit trail) sees it
    for public in ("/fhir/metadata", "/healthz", "/.well-known/jwks.json"):
        assert (await gateway.get(public, headers={"Authorization": ""})).status_code == 200


async def test_a_search_without_a_patient_is_the_only_one_reached_or_a_400(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    practitioner = bearer(app, Role.PRACTITIONER, USER_READ, subject="dr-1")
    alone = (await gateway.get("/fhir/Observation", headers=practitioner)).json()
    assert {entry["resource"]["subject"]["reference"] for entry in alone["entry"]} == {"Patient/pat-a"}
    await app.state.runtime.store.add_care_team_patient("team-1", "pat-b")
    response = await gateway.get("/fhir/Observation", headers=practitioner)
    assert response.status_code == 400
    assert "patient" in response.json()["issue"][0]["diagnostics"]
    both = await gateway.get("/fhir/Observation", params={"patient": "pat-b"}, headers=practitioner)
    assert both.json()["entry"]


async def test_every_request_allowed_or_denied_leaves_one_audit_event(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    store = app.state.runtime.store
    before = len(await store.audit_chain(0, 100_000))
    patient_a = bearer(app, Role.PATIENT, READ, "pat-a", subject="pat-a")
    for _ in range(20):
        assert (await gateway.get("/fhir/Observation", params={"patient": "pat-a"}, headers=patient_a)).status_code == 200
    for _ in range(5):
        assert (await gateway.get(f"/fhir/Observation/{OBSERVATIONS['pat-b']}", headers=patient_a)).status_code == 404
        assert (await gateway.get("/api/v1/quarantine", headers=patient_a)).status_code == 403
    assert (await gateway.get("/fhir/metadata")).status_code == 200  # discovery is not audited
    rows = await store.audit_chain(0, 100_000)
    assert len(rows) - before == 30
    assert verify_chain(row for _, row in rows) is None
    new = [row.record for _, row in rows[before:]]
    assert {(r.agent, r.outcome.value) for r in new} == {("Patient/pat-a", "0"), ("Patient/pat-a", "4")}
    assert sum(r.outcome.value == "4" for r in new) == 10
    assert all(r.patient_id == "pat-a" for r in new[:20])
    events = (await gateway.get("/fhir/AuditEvent", params={"patient": "pat-a", "_count": "5"})).json()
    assert len(events["entry"]) == 5
    assert events["entry"][0]["resource"]["resourceType"] == "AuditEvent"
    assert (await gateway.get("/fhir/AuditEvent", headers=patient_a)).status_code == 403
