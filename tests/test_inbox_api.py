"""The unassigned inbox: a reading nobody held the device for waits, is claimed by the care team, and is stored once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiomqtt
import httpx
import orjson

from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from gateway.auth.tokens import Role
from gateway.storage import ObservationStore
from tests.gateway_support import app_of, bearer, running_gateway

CARE = "user/Device.rus user/Observation.rs"


async def _waiting(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = (await http.get("/api/v1/inbox", headers=headers or {})).json()
    return rows


async def test_a_reading_after_the_cuff_was_returned_is_claimed_and_stored_once(
    timescale_url: str, timescale_store: ObservationStore, broker_port: int
) -> None:
    lent_until = datetime.now(UTC) - timedelta(hours=2)
    for patient in ("pat-a", "pat-b"):
        await timescale_store.add_patient(patient, None, None)
    await timescale_store.add_device("cuff-9", "cuff", None)
    await timescale_store.assign_device("cuff-9", "pat-a", None)
    await timescale_store.end_assignment("cuff-9", lent_until)  # the cuff came back: nobody holds it now
    for account, patient in (("dr-a", "pat-a"), ("dr-b", "pat-b")):
        await timescale_store.add_account(account, "practitioner", None, None)
        await timescale_store.add_care_team(f"team-{patient}", patient)
        await timescale_store.add_care_team_member(f"team-{patient}", account)
        await timescale_store.add_care_team_patient(f"team-{patient}", patient)
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url), mqtt=MqttSettings(port=broker_port, client_id="inbox")
    )
    async with running_gateway(settings) as http:
        app = app_of(http)
        taken = (lent_until + timedelta(minutes=30)).isoformat()
        reading = {"type": "blood_pressure", "components": {"systolic": 128, "diastolic": 84}, "unit": "mm[Hg]", "time": taken}
        async with aiomqtt.Client("127.0.0.1", broker_port, identifier="inbox-cuff") as device:
            await device.publish("pulsebridge/v1/devices/cuff-9/readings", orjson.dumps(reading), qos=1)
        deadline = time.monotonic() + 10
        while not (waiting := await _waiting(http)):
            assert time.monotonic() < deadline, "the unattributed reading never reached the inbox"
            await asyncio.sleep(0.1)
        (row,) = waiting
        assert (row["reason"], row["device_id"]) == ("unpaired_device", "cuff-9")

        dr_a = bearer(app, Role.PRACTITIONER, CARE, subject="dr-a")
        dr_b = bearer(app, Role.PRACTITIONER, CARE, subject="dr-b")
        assert [r["id"] for r in await _waiting(http, dr_a)] == [row["id"]]  # the cuff was lent to dr-a's patient
        assert await _waiting(http, dr_b) == []
        refused = await http.post(f"/api/v1/inbox/{row['id']}/claim", json={"patient_id": "pat-b"}, headers=dr_b)
        assert refused.status_code == 404
        wrong_patient = await http.post(f"/api/v1/inbox/{row['id']}/claim", json={"patient_id": "pat-b"}, headers=dr_a)
        assert wrong_patient.status_code == 404  # dr-a may not file readings into pat-b's record

        claimed = await http.post(f"/api/v1/inbox/{row['id']}/claim", json={"patient_id": "pat-a"}, headers=dr_a)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["stored"] == 1
        assert claimed.json()["resolved"] is True
        assert await _waiting(http) == []
        stored = (await http.get("/fhir/Observation", params={"patient": "pat-a"})).json()["entry"]
        assert [entry["resource"]["effectiveDateTime"] for entry in stored] == [taken]
        again = await http.post(f"/api/v1/inbox/{row['id']}/claim", json={"patient_id": "pat-a"}, headers=dr_a)
        assert again.status_code == 404
