"""Alerts end to end: MQTT readings → engine → alert, live on the bus, signed webhooks, API, FHIR Flags, access."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from edge_config.alert_settings import AlertRuleSet, AlertSettings, News2RuleSettings, ThresholdSettings, WebhookSettings
from gateway.alerts.webhook import WebhookSender, sign, verify
from gateway.auth.tokens import Role
from gateway.events import AlertEvent, Delivered, ObservationEvent
from gateway.runtime import Runtime
from gateway.storage.alerts import AlertKey, AlertRecord
from tests.conftest import truncate
from tests.gateway_support import app_of, bearer, running_gateway
from tests.webhook_receiver import WebhookReceiver, webhook_receiver

SECRET = b"a-webhook-secret-of-some-length"
RULES = AlertRuleSet(
    thresholds={"heart_rate": ThresholdSettings(high=Decimal(110), critical_high=Decimal(130))},
    device_silence_seconds=None,
    news2=News2RuleSettings(enabled=False),
)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: last saw {result!r}")
        await asyncio.sleep(0.05)


def _settings(url: str, broker_port: int, tmp_path: Path, receiver: WebhookReceiver) -> GatewaySettings:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_bytes(SECRET + b"\n")
    webhooks = WebhookSettings(urls=[receiver.url], secret_file=secret_file, backoff_max_seconds=0.2, timeout_seconds=5)
    return GatewaySettings(
        database=DatabaseSettings(url=url),
        mqtt=MqttSettings(port=broker_port, client_id="alerts-api-test"),
        alerts=AlertSettings(defaults=RULES, sweep_interval_seconds=0.2, webhooks=webhooks),
    )


async def _seed(runtime: Runtime) -> None:
    store = runtime.store
    for patient in ("ada", "bob"):
        await store.add_patient(patient, None, None)
        await store.add_account(f"dr-{patient}", "practitioner", None, None)
        await store.add_care_team(f"team-{patient}", patient)
        await store.add_care_team_member(f"team-{patient}", f"dr-{patient}")
        await store.add_care_team_patient(f"team-{patient}", patient)
    await store.add_account("care-ada", "caregiver", None, None)
    await store.delegate("ada", "care-ada")
    await store.add_device("watch-ada", "watch", None)
    await store.assign_device("watch-ada", "ada", None)


async def _heart_rate(port: int, value: int) -> None:
    reading = Reading("watch-ada", "heart_rate", datetime.now(UTC), quantity=Quantity(Decimal(value), "/min"))
    async with ReadingPublisher("127.0.0.1", port, client_id="alerts-test-watch") as publisher:
        await publisher.publish("watch-ada", [reading])


async def _check_access(http: httpx.AsyncClient, alert_id: str, app: FastAPI) -> None:
    """The patient's care team and the patient read; others find nothing or are refused."""
    dr_ada = bearer(app, Role.PRACTITIONER, "user/Flag.rus", subject="dr-ada")
    dr_bob = bearer(app, Role.PRACTITIONER, "user/Flag.rus", subject="dr-bob")
    ada = bearer(app, Role.PATIENT, "patient/Flag.rs", "ada", subject="ada")
    bob = bearer(app, Role.PATIENT, "patient/Flag.rs", "bob", subject="bob")
    carer = bearer(app, Role.CAREGIVER, "user/Flag.rs", subject="care-ada")
    assert [a["id"] for a in (await http.get("/api/v1/alerts", headers=dr_ada)).json()] == [alert_id]
    assert [a["id"] for a in (await http.get("/api/v1/alerts", headers=ada)).json()] == [alert_id]
    assert (await http.get("/api/v1/alerts", params={"patient": "ada"}, headers=dr_bob)).json() == []
    assert (await http.get("/api/v1/alerts", params={"patient": "ada"}, headers=bob)).json() == []
    assert (await http.get("/api/v1/alerts", headers=carer)).status_code == 403
    assert (await http.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=dr_bob)).status_code == 404
    assert (await http.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=ada)).status_code == 403
    assert (await http.get(f"/fhir/Flag/{alert_id}", headers=dr_bob)).status_code == 404
    bad = await http.get("/api/v1/alerts", params={"status": "closed"})
    assert (bad.status_code, bad.json()["resourceType"]) == (400, "OperationOutcome")
    assert (await http.post("/api/v1/alerts/00000000-0000-4000-8000-000000000000/acknowledge")).status_code == 404


async def test_alerts_open_are_delivered_acknowledged_snoozed_resolved_and_guarded(
    timescale_url: str, broker_port: int, tmp_path: Path
) -> None:
    await truncate(timescale_url)
    async with webhook_receiver(SECRET, statuses=[503]) as receiver, running_gateway(
        _settings(timescale_url, broker_port, tmp_path, receiver)
    ) as http:  # fmt: skip
        app = app_of(http)
        runtime: Runtime = app.state.runtime
        await _seed(runtime)
        dr_ada = bearer(app, Role.PRACTITIONER, "user/Flag.rus", subject="dr-ada")
        ada = bearer(app, Role.PATIENT, "patient/Flag.rs", "ada", subject="ada")

        async with runtime.events.subscribe(patients={"ada"}) as live:
            await _heart_rate(broker_port, 140)

            async def opened() -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = (await http.get("/api/v1/alerts", params={"status": "open"})).json()
                return found

            (alert,) = await eventually(opened)
            assert (alert["patient_id"], alert["rule"], alert["kind"], alert["severity"]) == (
                "ada",
                "threshold",
                "heart_rate",
                "high",
            )
            assert alert["summary"] == "heart_rate 140 /min above 130"
            heard: list[Delivered] = [await asyncio.wait_for(anext(live), 5) for _ in range(2)]
            assert isinstance(heard[0], ObservationEvent)
            assert heard[0].value == Decimal(140)
            assert isinstance(heard[1], AlertEvent)
            assert (heard[1].alert_id, heard[1].status) == (alert["id"], "open")

            await _check_access(http, alert["id"], app)

            acknowledged = await http.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=dr_ada)
            assert acknowledged.status_code == 200
            assert (acknowledged.json()["status"], acknowledged.json()["acknowledged_by"]) == ("acknowledged", "dr-ada")
            event = await asyncio.wait_for(anext(live), 5)
            assert isinstance(event, AlertEvent)
            assert event.status == "acknowledged"

            for until in ("2026-01-01T10:00:00", (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "soon"):
                refused = await http.post(f"/api/v1/alerts/{alert['id']}/snooze", json={"until": until}, headers=dr_ada)
                assert refused.status_code == 400, until
            until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            snoozed = await http.post(f"/api/v1/alerts/{alert['id']}/snooze", json={"until": until}, headers=dr_ada)
            assert (snoozed.status_code, snoozed.json()["status"]) == (200, "snoozed")

            bundle = (await http.get("/fhir/Flag", params={"patient": "Patient/ada"}, headers=ada)).json()
            (entry,) = bundle["entry"]
            assert (entry["resource"]["status"], entry["resource"]["subject"]["reference"]) == ("active", "Patient/ada")
            assert "end" not in entry["resource"]["period"]

            await _heart_rate(broker_port, 80)

            async def resolved() -> dict[str, Any] | None:
                flag: dict[str, Any] = (await http.get(f"/fhir/Flag/{alert['id']}", headers=dr_ada)).json()
                return flag if flag["status"] == "inactive" else None

            flag = await eventually(resolved)
            assert flag["period"]["end"] >= flag["period"]["start"]
            assert (await http.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=dr_ada)).status_code == 409

        webhooks = runtime.alerts.webhooks
        assert webhooks is not None  # configured with a receiver above
        await asyncio.wait_for(webhooks.drained(), 10)
        assert [body["type"] for body in receiver.accepted] == [
            "alert.open",
            "alert.acknowledged",
            "alert.snoozed",
            "alert.resolved",
        ]
        assert {body["alert"]["id"] for body in receiver.accepted} == {alert["id"]}  # type: ignore[index] # the receiver keeps bodies as parsed JSON
        first_delivery = receiver.accepted[0]["id"]
        assert receiver.deliveries[:2] == [first_delivery, first_delivery]  # answered 503, retried with the same id
        assert receiver.refused_signatures == 0
        assert webhooks.stats.delivered == 4


async def test_patient_rules_replace_the_defaults_and_are_checked(timescale_url: str, broker_port: int, tmp_path: Path) -> None:
    await truncate(timescale_url)
    async with webhook_receiver(SECRET) as receiver, running_gateway(
        _settings(timescale_url, broker_port, tmp_path, receiver)
    ) as http:  # fmt: skip
        app = app_of(http)
        await _seed(app.state.runtime)
        dr_ada = bearer(app, Role.PRACTITIONER, "user/Flag.rus", subject="dr-ada")
        dr_bob = bearer(app, Role.PRACTITIONER, "user/Flag.rus", subject="dr-bob")
        ada = bearer(app, Role.PATIENT, "patient/Flag.rs", "ada", subject="ada")
        path = "/api/v1/patients/ada/alert-rules"

        defaults = (await http.get(path, headers=dr_ada)).json()
        assert (defaults["source"], defaults["rules"]["thresholds"]["heart_rate"]["high"]) == ("defaults", "110")
        own = {"thresholds": {"heart_rate": {"high": 150}}, "device_silence_seconds": None, "news2": {"enabled": False}}
        stored = await http.put(path, json=own, headers=dr_ada)
        assert stored.status_code == 200
        assert (stored.json()["source"], stored.json()["updated_by"]) == ("patient", "dr-ada")
        assert (await http.get(path, headers=dr_ada)).json()["rules"]["thresholds"]["heart_rate"]["high"] == "150"

        for bad in (
            {"thresholds": {"hart_rate": {"high": 1}}},
            {"thresholds": {"heart_rate": {"high": 1, "low": 5}}},
            {"colour": 1},
        ):
            refused = await http.put(path, json=bad, headers=dr_ada)
            assert (refused.status_code, refused.json()["resourceType"]) == (400, "OperationOutcome"), bad
        assert (await http.get(path, headers=ada)).status_code == 403
        assert (await http.put(path, json=own, headers=dr_bob)).status_code == 404
        assert (await http.get("/api/v1/patients/nobody/alert-rules")).status_code == 404

        await _heart_rate(broker_port, 140)  # above the default 130, below the patient's own 150
        await _heart_rate(broker_port, 160)

        async def one_alert() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await http.get("/api/v1/alerts")).json()
            return found

        (alert,) = await eventually(one_alert)
        assert alert["summary"] == "heart_rate 160 /min above 150"
        assert (await http.delete(path, headers=dr_ada)).json()["source"] == "defaults"


def test_the_signature_scheme_refuses_tampering_replay_and_malformed_headers() -> None:
    body, now = b'{"id": "x"}', 1_800_000_000
    header = sign(SECRET, now, body)
    assert header.startswith(f"t={now},v1=")
    assert verify(SECRET, header, body, now + 10)
    assert not verify(SECRET, header, body + b" ", now)
    assert not verify(b"another-secret-entirely", header, body, now)
    assert not verify(SECRET, header, body, now + 301)
    assert not verify(SECRET, header.replace("v1=", "v0="), body, now)
    assert not verify(SECRET, "garbage", body, now)


@pytest.mark.parametrize(("status", "attempts"), [(400, 1), (503, 3)])
async def test_webhook_gives_up_on_refusals_at_once_and_on_failures_after_max_attempts(status: int, attempts: int) -> None:
    now = datetime.now(UTC)
    record = AlertRecord(uuid.uuid4(), AlertKey("ada", "news2", "news2"), "high", "open", "NEWS2 7", now, now,
                         None, None, None, None, {})  # fmt: skip
    async with webhook_receiver(SECRET, statuses=[status] * 5) as receiver, httpx.AsyncClient() as client:
        settings = WebhookSettings(urls=[receiver.url], secret_file=Path("unused"), max_attempts=3, backoff_max_seconds=0.05)
        sender = WebhookSender(settings, client, SECRET)
        worker = asyncio.create_task(sender.run())
        sender.offer(record)
        await asyncio.wait_for(sender.drained(), 10)
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    assert (len(receiver.deliveries), sender.stats.failed, sender.stats.delivered) == (attempts, 1, 0)
