"""The dashboard's API in the real app: sign-in to a cookie session, summaries, the live stream, the pages."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import jwt
import pytest

from device_adapters.readings import Quantity, Reading
from edge_config import DashboardSettings, DatabaseSettings, GatewaySettings, MqttSettings
from fhir_mapper.observation import Attribution, map_reading
from gateway.auth.audit import AuditAction, AuditOutcome
from gateway.auth.passwords import DUMMY_HASH, PasswordError, hash_password, verify_password
from gateway.auth.session import SESSION_COOKIE
from gateway.auth.tokens import Role
from gateway.events import AlertEvent, ObservationEvent
from gateway.storage import ObservationStore
from tests.gateway_support import app_of, bearer, running_gateway

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account's
CSRF = {"X-PulseBridge-CSRF": "1"}
WATCH = uuid.UUID(int=7)


def test_passwords_verify_only_themselves_and_follow_the_policy() -> None:
    stored = hash_password(PASSWORD, log2_n=10)
    assert stored.startswith("scrypt$10$8$1$")
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert hash_password(PASSWORD, log2_n=10) != stored  # salted
    for malformed in ("", "scrypt$10$8$1$AAAA", "bcrypt$10$8$1$AAAA$AAAA", "scrypt$40$8$1$AAAA$AAAA", DUMMY_HASH):
        assert not verify_password(PASSWORD, malformed)
    with pytest.raises(PasswordError, match="at least 12"):
        hash_password("short")


async def _seed(store: ObservationStore) -> None:
    for patient, name in (("pat-a", "Ada"), ("pat-b", "Bob"), ("pat-c", "Cy")):
        await store.add_patient(patient, name, None)
    await store.add_account("dr-a", "practitioner", "Dr A", None)
    await store.add_account("acc-a", "patient", "Ada", "pat-a")
    await store.add_account("robot", "system", None, None)
    await store.add_care_team("team", "Team")
    await store.add_care_team_member("team", "dr-a")
    for patient in ("pat-a", "pat-b"):
        await store.add_care_team_patient("team", patient)
    password_hash = hash_password(PASSWORD, log2_n=10)
    for account in ("dr-a", "acc-a", "robot"):
        await store.set_account_password(account, password_hash)
    await store.add_device("watch-a", "watch", "Smart watch")
    await store.assign_device("watch-a", "pat-a", None)
    now = datetime.now(UTC)
    attribution = Attribution("pat-a", (await store.registrations({"watch-a"}))["watch-a"].device.resource_id, "watch-a")
    readings = [
        Reading("watch-a", "heart_rate", now - timedelta(days=1), quantity=Quantity(Decimal(70), "/min")),
        Reading("watch-a", "heart_rate", now - timedelta(minutes=5), quantity=Quantity(Decimal(131), "/min")),
        Reading("watch-a", "spo2", now - timedelta(minutes=5), quantity=Quantity(Decimal(97), "%")),
        Reading("watch-a", "battery_level", now - timedelta(minutes=5), quantity=Quantity(Decimal(18), "%")),
    ]
    await store.write_batch([map_reading(reading, attribution, now, source="mqtt") for reading in readings], [])


@pytest.fixture
async def gateway(timescale_url: str, timescale_store: ObservationStore, broker_port: int) -> AsyncIterator[httpx.AsyncClient]:
    await _seed(timescale_store)
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url),
        mqtt=MqttSettings(port=broker_port, client_id="dashboard-api"),
        dashboard=DashboardSettings(stream_seconds=5, stream_heartbeat_seconds=0.2),
    )
    async with running_gateway(settings) as http:
        http.headers.pop("Authorization")
        yield http


async def _sign_in(http: httpx.AsyncClient, account: str = "dr-a", password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/session", json={"account": account, "password": password})


async def test_signing_in_sets_a_short_lived_httponly_strict_cookie(gateway: httpx.AsyncClient) -> None:
    response = await _sign_in(gateway)
    assert response.status_code == 200, response.text
    assert response.json() == {"account": "dr-a", "role": "practitioner", "patient_id": None, "display_name": "Dr A"}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Max-Age" not in cookie  # a browser session: gone when the browser closes
    claims = jwt.decode(gateway.cookies[SESSION_COOKIE], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert (claims["sub"], claims["pulsebridge_role"]) == ("dr-a", "practitioner")
    who = await gateway.get("/api/v1/session")
    assert who.json()["account"] == "dr-a"
    # The bearer header path still works, and wins over the cookie.
    headers = bearer(app_of(gateway), Role.PATIENT, "patient/Patient.rs", "pat-c", subject="pat-c")
    assert (await gateway.get("/api/v1/session", headers=headers)).json()["account"] == "pat-c"


async def test_wrong_unknown_and_backend_accounts_get_one_answer_then_are_throttled(gateway: httpx.AsyncClient) -> None:
    answers = [
        await _sign_in(gateway, "dr-a", "wrong password!"),
        await _sign_in(gateway, "nobody", PASSWORD),
        await _sign_in(gateway, "robot", PASSWORD),  # backend systems have no dashboard
    ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.json()["issue"][0]["diagnostics"] == "the account or the password is wrong"
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    for _ in range(4):
        assert (await _sign_in(gateway, "dr-a", "still not it!")).status_code == 401
    throttled = await _sign_in(gateway)  # five failures for dr-a: even the right password waits
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    bad = await gateway.post("/api/v1/session", json={"account": "dr-a", "password": PASSWORD, "role": "admin"})
    assert bad.status_code == 400  # no extra fields
    assert bad.json()["resourceType"] == "OperationOutcome"


async def test_sign_ins_are_in_the_audit_trail(gateway: httpx.AsyncClient, timescale_store: ObservationStore) -> None:
    await _sign_in(gateway, "dr-a", "wrong password!")
    await _sign_in(gateway)
    records = [record for record in await timescale_store.search_audit(None, 10) if record.entity == "/api/v1/session"]
    assert [(r.action, r.outcome, r.agent) for r in reversed(records)] == [
        (AuditAction.LOGIN, AuditOutcome.DENIED, "anonymous"),
        (AuditAction.LOGIN, AuditOutcome.SUCCESS, "Practitioner/dr-a"),
    ]


async def test_changes_through_the_cookie_need_the_csrf_header_and_this_origin(gateway: httpx.AsyncClient) -> None:
    await _sign_in(gateway)
    url = "/api/v1/patients/pat-a/pairing-codes"
    refused = await gateway.post(url, json={})
    assert refused.status_code == 403
    assert "x-pulsebridge-csrf" in refused.json()["issue"][0]["diagnostics"]
    assert (await gateway.post(url, json={}, headers={**CSRF, "Origin": "http://evil.example"})).status_code == 403
    made = await gateway.post(url, json={}, headers={**CSRF, "Origin": "http://gw"})
    assert made.status_code == 201, made.text
    assert made.json()["qr_svg"].startswith("<?xml")


async def test_the_session_renews_while_used_and_ends_when_idle_or_signed_out(gateway: httpx.AsyncClient) -> None:
    local = app_of(gateway).state.runtime.auth.local
    scope = "user/Observation.rs user/Patient.rs user/Device.cruds user/Flag.rus"
    two_minutes_old = local.issue("dr-a", Role.PRACTITIONER, scope, lifetime=timedelta(minutes=15), now=time.time() - 120)
    gateway.cookies.set(SESSION_COOKIE, two_minutes_old, domain="gw.local")
    used = await gateway.get("/api/v1/dashboard/patients")
    assert used.status_code == 200
    renewed = gateway.cookies[SESSION_COOKIE]
    assert renewed != two_minutes_old
    assert jwt.decode(renewed, options={"verify_signature": False})["iat"] >= time.time() - 5

    idle = local.issue("dr-a", Role.PRACTITIONER, scope, lifetime=timedelta(minutes=15), now=time.time() - 16 * 60)
    gateway.cookies.set(SESSION_COOKIE, idle, domain="gw.local")
    expired = await gateway.get("/api/v1/dashboard/patients")
    assert expired.status_code == 401
    assert expired.json()["issue"][0]["diagnostics"] == "the token has expired"

    await _sign_in(gateway)
    signed_out = await gateway.delete("/api/v1/session")
    assert signed_out.status_code == 204
    assert SESSION_COOKIE not in gateway.cookies
    assert (await gateway.get("/api/v1/session")).status_code == 401


async def test_the_patient_list_has_latest_vitals_ranges_devices_battery_and_adherence(gateway: httpx.AsyncClient) -> None:
    await _sign_in(gateway)
    patients = (await gateway.get("/api/v1/dashboard/patients")).json()
    assert [patient["id"] for patient in patients] == ["pat-a", "pat-b"]  # the care team's, not pat-c
    ada = patients[0]
    latest = {vital["kind"]: vital for vital in ada["latest"]}
    assert set(latest) == {"heart_rate", "spo2"}  # battery is shown with the device, not as a vital
    assert (latest["heart_rate"]["value"], latest["heart_rate"]["unit"], latest["heart_rate"]["out_of_range"]) == (
        131,
        "/min",
        True,
    )
    assert latest["spo2"]["out_of_range"] is False
    [watch] = ada["devices"]
    assert (watch["device_id"], watch["display_name"], watch["battery"]) == ("watch-a", "Smart watch", 18.0)
    assert datetime.now(UTC) - datetime.fromisoformat(watch["last_reading"]) < timedelta(minutes=6)
    yesterday_too = 2 if (datetime.now(UTC) - timedelta(days=1)).date() != datetime.now(UTC).date() else 1
    assert ada["adherence"] == {"days": yesterday_too, "window_days": 30}
    assert patients[1] == {"id": "pat-b", "name": "Bob", "latest": [], "devices": [], "adherence": {"days": 0, "window_days": 30}}


async def test_a_patient_reaches_only_their_own_summary_and_stream(gateway: httpx.AsyncClient) -> None:
    await _sign_in(gateway, "acc-a")
    assert [patient["id"] for patient in (await gateway.get("/api/v1/dashboard/patients")).json()] == ["pat-a"]
    assert (await gateway.get("/api/v1/dashboard/patients/pat-a")).status_code == 200
    for path in ("/api/v1/dashboard/patients/pat-b", "/api/v1/dashboard/patients/nobody", "/api/v1/patients/pat-b/stream"):
        response = await gateway.get(path)
        assert response.status_code == 404, path
        assert response.json()["resourceType"] == "OperationOutcome"
    # and pairs a device of their own
    assert (await gateway.post("/api/v1/patients/pat-a/pairing-codes", json={}, headers=CSRF)).status_code == 201
    assert (await gateway.post("/api/v1/patients/pat-b/pairing-codes", json={}, headers=CSRF)).status_code == 404


async def test_the_stream_refuses_before_it_opens(gateway: httpx.AsyncClient) -> None:
    app = app_of(gateway)
    assert (await gateway.get("/api/v1/patients/pat-a/stream")).status_code == 401
    device = bearer(app, Role.DEVICE, "system/Observation.c", subject="watch-a")
    assert (await gateway.get("/api/v1/patients/pat-a/stream", headers=device)).status_code == 403
    doctor = bearer(app, Role.PRACTITIONER, "user/Observation.rs", subject="dr-a")
    for patient in ("pat-c", "nobody", "bad%20id"):  # outside the care team, missing, malformed: alike
        assert (await gateway.get(f"/api/v1/patients/{patient}/stream", headers=doctor)).status_code == 404
    admin = bearer(app)
    assert (await gateway.get("/api/v1/patients/nobody/stream", headers=admin)).status_code == 404


async def test_the_stream_carries_the_patients_readings_and_alerts_only(gateway: httpx.AsyncClient) -> None:
    await _sign_in(gateway)
    bus = app_of(gateway).state.runtime.events
    now = datetime.now(UTC)
    others = bus.subscribers  # the alert engine listens too

    async def publish() -> None:
        while bus.subscribers == others:
            await asyncio.sleep(0.01)
        bus.publish(ObservationEvent("pat-b", "heart_rate", "k-other", now, Decimal(99), "/min"))
        bus.publish(ObservationEvent("pat-a", "heart_rate", "k-1", now, Decimal("72.0"), "/min", "watch-a"))
        bus.publish(AlertEvent("al-1", "pat-a", "open", "high-heart-rate", "heart_rate", "high", now, "heart rate 150"))

    publishing = asyncio.create_task(publish())
    # The in-process transport hands over the body when the stream ends (stream_seconds=5).
    response = await gateway.get("/api/v1/patients/pat-a/stream")
    await publishing
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text
    assert text.startswith("retry: 2000\n")
    assert "k-other" not in text
    assert (
        "event: observation\nid: k-1\ndata: "
        '{"patient_id":"pat-a","kind":"heart_rate","reading_key":"k-1","time":"' + now.isoformat() + '",'
        '"value":72.0,"unit":"/min","device_id":"watch-a","components":{}}\n\n'
    ) in text
    assert 'event: alert\ndata: {"alert_id":"al-1","patient_id":"pat-a","status":"open"' in text
    assert ": keep-alive\n\n" in text
    assert bus.subscribers == others  # the stream let go of its subscription


async def test_the_pages_are_served_with_a_strict_content_security_policy(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/dashboard")).headers["location"] == "/dashboard/"
    page = await gateway.get("/dashboard/")
    assert page.status_code == 200
    assert '<main id="main"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    script = await gateway.get("/dashboard/static/common.js")
    assert script.status_code == 200
    assert "X-PulseBridge-CSRF" in script.text
    assert (await gateway.get("/dashboard/static/vendor/uPlot.iife.min.js")).status_code == 200
    assert (await gateway.get("/dashboard/static/../../app.py")).status_code == 404


def test_set_password_command(timescale_url: str, timescale_store: ObservationStore) -> None:
    env = {"PULSEBRIDGE_DATABASE__URL": timescale_url}

    def run(*args: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "account", *args, "--password-stdin"],
            input=f"{password}\n", env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    subprocess.run([sys.executable, "-m", "gateway", "account", "add", "cli-dr", "--role", "practitioner"],
                   env={**os.environ, **env}, capture_output=True, timeout=60, check=True)  # fmt: skip
    done = run("set-password", "cli-dr", password=PASSWORD)
    assert (done.returncode, done.stdout) == (0, "cli-dr\tpassword set\n"), done.stderr
    short = run("set-password", "cli-dr", password="short")  # noqa: S106 - the mistake under test
    assert short.returncode != 0
    assert "at least 12 characters" in short.stderr
    missing = run("set-password", "nobody", password=PASSWORD)
    assert missing.returncode != 0
    assert "no account 'nobody'" in missing.stderr
