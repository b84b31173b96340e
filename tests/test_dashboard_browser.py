"""The dashboard in Debian's Chromium against the gateway as a real process, fed through real MQTT.

A care-team member signs in, sees their patients, opens one, watches a new reading arrive on
the chart without a reload, and acknowledges the alert it raised; claims an unassigned reading
from the inbox. A patient sees their own page, pairs a device, and cannot open another's page.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from edge_config import DatabaseSettings
from gateway.auth.passwords import hash_password
from gateway.storage import open_store
from tests.browser import CHROMIUM_ARGS, require_chromium, sign_in
from tests.conftest import truncate
from tests.services import GatewayProcess, mosquitto

PASSWORD = "a dashboard password"  # noqa: S105 - the test accounts'
pytestmark = pytest.mark.slow


@dataclass
class Stack:
    gateway: GatewayProcess
    broker_port: int
    admin: httpx.Client

    def publish(self, device_id: str, kind: str, value: float, unit: str, at: datetime) -> None:
        payload = f'{{"type": "{kind}", "value": {value}, "unit": "{unit}", "time": "{at.isoformat()}"}}'
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker_port), "-q", "1", "-t",
             f"pulsebridge/v1/devices/{device_id}/readings", "-s"],
            input=payload.encode(), check=True, timeout=10,
        )  # fmt: skip

    def wait_for(self, path: str, found: Any, timeout: float = 10) -> Any:
        end = time.monotonic() + timeout
        while True:
            body = self.admin.get(path).json()
            if found(body):
                return body
            assert time.monotonic() < end, f"{path} never had what was waited for: {body}"
            time.sleep(0.05)


async def _seed(url: str) -> None:
    await truncate(url)
    store = await open_store(DatabaseSettings(url=url))
    try:
        for patient, name in (("pat-a", "Ada Lovelace"), ("pat-b", "Bob Babbage")):
            await store.add_patient(patient, name, None)
        await store.add_account("dr-a", "practitioner", "Dr A", None)
        await store.add_account("acc-a", "patient", "Ada Lovelace", "pat-a")
        await store.add_care_team("team", "Ward 1")
        await store.add_care_team_member("team", "dr-a")
        password_hash = hash_password(PASSWORD, log2_n=10)
        for account in ("dr-a", "acc-a"):
            await store.set_account_password(account, password_hash)
        for patient, device in (("pat-a", "watch-a"), ("pat-b", "watch-b")):
            await store.add_care_team_patient("team", patient)
            await store.add_device(device, "watch", "Smart watch")
            await store.assign_device(device, patient, None)
        # A clinic cuff Bob had until yesterday: today's reading waits in the inbox for someone to claim it.
        await store.add_device("cuff-x", "cuff", "Clinic cuff")
        await store.assign_device("cuff-x", "pat-b", datetime.now(UTC) - timedelta(days=3))
        await store.end_assignment("cuff-x", datetime.now(UTC) - timedelta(days=1))
    finally:
        await store.close()


@pytest.fixture(scope="module")
def stack(timescale_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_chromium()
    folder = tmp_path_factory.mktemp("dashboard")
    with ThreadPoolExecutor(1) as worker:
        worker.submit(asyncio.run, _seed(timescale_url)).result()
    with mosquitto(folder) as broker_port:
        env = {
            "PULSEBRIDGE_DATABASE__URL": timescale_url,
            "PULSEBRIDGE_MQTT__PORT": str(broker_port),
            "PULSEBRIDGE_MQTT__CLIENT_ID": "dashboard-gateway",
        }
        gateway = GatewayProcess(folder, env)
        gateway.start()
        try:
            gateway.wait_healthy()
            admin = httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.token()}"}, timeout=10)
            rules = {"thresholds": {"heart_rate": {"high": 120, "sustained_seconds": 0}}, "news2": {"enabled": False}}
            assert admin.put("/api/v1/patients/pat-a/alert-rules", json=rules).status_code == 200
            running = Stack(gateway, broker_port, admin)
            now = datetime.now(UTC)
            running.publish("watch-a", "heart_rate", 72, "/min", now - timedelta(minutes=20))
            running.publish("watch-b", "heart_rate", 64, "/min", now - timedelta(minutes=20))
            running.wait_for("/fhir/Observation?patient=pat-a", lambda bundle: bundle.get("entry"))
            yield running
            admin.close()
        finally:
            gateway.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=require_chromium(), args=list(CHROMIUM_ARGS))
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, errors  # no script error on any page


def test_care_team_member_sees_a_new_reading_live_and_acknowledges_its_alert(stack: Stack, page: Page) -> None:
    sign_in(page, stack.gateway.base_url, "dr-a", PASSWORD)
    expect(page.locator("#patients tbody tr")).to_have_count(2)
    ada = page.locator("#patients tr[data-patient='pat-a']")
    expect(ada.locator(".chip[data-kind='heart_rate']")).to_have_text("Heart rate: 72 /min")
    expect(ada.locator(".chip.out")).to_have_count(0)
    expect(ada).to_contain_text("Smart watch")
    expect(ada).to_contain_text("1/30 days")

    ada.locator("a.patient-link").click()
    expect(page.locator("#patient-name")).to_have_attribute("data-patient", "pat-a")
    chart = page.locator(".chart[data-kind='heart_rate']")
    expect(chart).to_have_attribute("data-points", "1")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-span", "86400")  # the whole 24 h shown
    box = chart.locator(".u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + 20, steps=5)
    page.mouse.up()
    zoomed = int(chart.get_attribute("data-span") or "0")
    assert 18_000 < zoomed < 25_000, zoomed  # a quarter of the day: drag-to-zoom
    chart.locator(".u-over").dblclick()
    expect(chart).to_have_attribute("data-span", "86400")
    page.locator("button[data-range='7d']").click()
    expect(page.locator(".chart[data-kind='heart_rate']")).to_have_attribute("data-span", "604800")
    page.locator("button[data-range='24h']").click()
    chart = page.locator(".chart[data-kind='heart_rate']")
    expect(chart).to_have_attribute("data-span", "86400")
    expect(page.locator("#live")).to_have_text("● live")
    page.evaluate("window.stillTheSamePage = true")

    stack.publish("watch-a", "heart_rate", 150, "/min", datetime.now(UTC))
    expect(chart).to_have_attribute("data-points", "2", timeout=10_000)
    expect(chart).to_have_attribute("data-last-value", "150")
    expect(page.locator("#latest .chip.out[data-kind='heart_rate']")).to_have_text("Heart rate: 150 /min")
    expect(page.locator("#readings tbody tr").first).to_contain_text("150 /min")
    assert page.evaluate("window.stillTheSamePage") is True  # no reload: the stream brought it

    alert = page.locator("#alerts-table tr[data-status='open']")
    expect(alert).to_have_count(1, timeout=10_000)
    expect(alert).to_contain_text("heart")
    alert.locator("button.acknowledge").click()
    expect(page.locator("#alerts-table tr[data-status='acknowledged']")).to_have_count(1)
    [acknowledged] = stack.admin.get("/api/v1/alerts", params={"patient": "pat-a"}).json()
    assert (acknowledged["status"], acknowledged["acknowledged_by"]) == ("acknowledged", "dr-a")
    assert page.evaluate("window.stillTheSamePage") is True


def test_patient_sees_their_own_page_pairs_a_device_and_cannot_open_another(stack: Stack, page: Page) -> None:
    sign_in(page, stack.gateway.base_url, "acc-a", PASSWORD)
    expect(page.locator("#patient-name")).to_have_attribute("data-patient", "pat-a")
    expect(page.locator("#nav-inbox")).to_be_hidden()
    expect(page.locator(".chart[data-kind='heart_rate']")).to_be_visible()
    expect(page.locator("button.acknowledge")).to_have_count(0)  # patients read their alerts, care teams act on them

    page.locator("#pair").click()
    expect(page.locator("#pairing-code")).to_have_text(re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$"))
    expect(page.locator("#pairing-qr")).to_be_visible()

    page.goto(f"{stack.gateway.base_url}/dashboard/#/patient/pat-b")
    expect(page.locator("#not-found")).to_have_text("Patient not found")
    expect(page.locator("#patient-name")).to_have_count(0)
    expect(page.locator(".chart")).to_have_count(0)
    statuses = page.evaluate(
        """async () => Promise.all(["/api/v1/dashboard/patients/pat-b", "/api/v1/patients/pat-b/stream"]
             .map(async (path) => (await fetch(path)).status))"""
    )
    assert statuses == [404, 404]
    other = page.evaluate("async () => (await (await fetch('/fhir/Observation?patient=pat-b')).json()).entry ?? null")
    assert other is None
    page.goto(f"{stack.gateway.base_url}/dashboard/#/patients")  # the list is their own page
    expect(page.locator("#patient-name")).to_have_attribute("data-patient", "pat-a")


def test_care_team_member_claims_an_unassigned_reading_from_the_inbox(stack: Stack, page: Page) -> None:
    stack.publish("cuff-x", "heart_rate", 81, "/min", datetime.now(UTC) - timedelta(minutes=1))
    stack.wait_for("/api/v1/inbox", lambda rows: any(row["device_id"] == "cuff-x" for row in rows))
    sign_in(page, stack.gateway.base_url, "dr-a", PASSWORD)
    page.locator("#nav-inbox").click()
    row = page.locator("#unassigned tbody tr").filter(has_text="cuff-x")
    expect(row).to_have_count(1)
    row.locator("select").select_option("pat-a")
    row.locator("button").click()
    expect(page.locator("#inbox-empty")).to_be_visible()
    stack.wait_for("/fhir/Observation?patient=pat-a&_count=100",
                   lambda bundle: any(e["resource"].get("valueQuantity", {}).get("value") == 81 for e in bundle.get("entry", [])))  # fmt: skip

    page.locator("button[data-inbox='quarantine']").click()
    expect(page.locator("#inbox")).to_contain_text("The quarantine is for administrators.")
    page.locator("button[data-inbox='dead-letters']").click()
    expect(page.locator("#inbox")).to_contain_text("Dead letters are for administrators.")


def test_signing_out_ends_the_session(stack: Stack, page: Page) -> None:
    sign_in(page, stack.gateway.base_url, "dr-a", PASSWORD)
    page.locator("#sign-out").click()
    expect(page.locator("#login")).to_be_visible()
    page.reload()
    expect(page.locator("#login")).to_be_visible()
    sign_in_wrong = page.locator("#login")
    page.fill("#account", "dr-a")
    page.fill("#password", "not the password")
    sign_in_wrong.locator("button[type=submit]").click()
    expect(page.locator("#login-error")).to_have_text("the account or the password is wrong")
    cookies = page.context.cookies()
    assert not [cookie for cookie in cookies if cookie["name"] == "pulsebridge_session"]


def test_a_session_cookie_is_httponly_and_strict(stack: Stack, page: Page) -> None:
    sign_in(page, stack.gateway.base_url, "dr-a", PASSWORD)
    [cookie] = [cookie for cookie in page.context.cookies() if cookie["name"] == "pulsebridge_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
