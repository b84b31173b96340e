"""Pairing with a broker password on a real Mosquitto: the device publishes as itself; unpairing cuts it off at once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import orjson
import pytest

from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from gateway.mqtt_credentials import password_line
from gateway.storage import ObservationStore
from tests.gateway_support import running_gateway
from tests.services import mosquitto


async def test_an_mqtt_paired_device_is_stored_and_an_unpaired_one_is_disconnected(
    timescale_url: str, timescale_store: ObservationStore, tmp_path: Path
) -> None:
    await timescale_store.add_patient("pat-m", None, None)
    static, managed, pid = tmp_path / "gateway.passwd", tmp_path / "passwd", tmp_path / "mosquitto.pid"
    static.write_text(password_line("gateway", "gateway-secret") + "\n")
    managed.write_text(static.read_text())
    with mosquitto(tmp_path, f"password_file {managed}\npid_file {pid}\n", anonymous=False) as port:
        settings = GatewaySettings(
            database=DatabaseSettings(url=timescale_url),
            mqtt=MqttSettings(
                port=port, username="gateway", password="gateway-secret", client_id="gateway",  # noqa: S106 - a test broker's password
                managed_password_file=managed, static_password_file=static, broker_pid_file=pid,
            ),
        )  # fmt: skip
        async with running_gateway(settings) as http:
            code = (await http.post("/api/v1/patients/pat-m/pairing-codes")).json()["code"]
            paired = await http.post("/api/v1/pairing/redeem", json={"code": code, "device_id": "watch-m", "credential": "mqtt"})
            assert paired.status_code == 201, paired.text
            mqtt = paired.json()["mqtt"]
            assert mqtt["username"] == "watch-m"
            assert "watch-m:$7$" in managed.read_text()
            assert mqtt["password"] not in managed.read_text()

            reading = {"type": "heart_rate", "value": 64, "unit": "/min", "time": datetime.now(UTC).isoformat()}
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="watch-m", username="watch-m", password=mqtt["password"]
            ) as device:
                await device.publish(mqtt["topic"], orjson.dumps(reading), qos=1)
                deadline = time.monotonic() + 10
                while not (await http.get("/fhir/Observation", params={"patient": "pat-m"})).json().get("entry"):
                    assert time.monotonic() < deadline, "the paired device's reading was not stored"
                    await asyncio.sleep(0.1)

                unpaired = await http.delete("/api/v1/devices/watch-m/pairing")
                assert unpaired.json()["credentials_revoked"] == 1
                assert "watch-m" not in managed.read_text()
                cut_at = time.monotonic()
                try:
                    async with asyncio.timeout(60):
                        while True:  # publishing keeps the connection busy until the broker drops it
                            later = reading | {"time": datetime.now(UTC).isoformat()}
                            await device.publish(mqtt["topic"], orjson.dumps(later), qos=1)
                            await asyncio.sleep(0.2)
                except aiomqtt.MqttError:
                    pass
                assert time.monotonic() - cut_at < 60

            with pytest.raises(aiomqtt.MqttError, match=r"(?i)authori|bad user name or password"):
                async with aiomqtt.Client("127.0.0.1", port, identifier="watch-m", username="watch-m", password=mqtt["password"]):
                    pass
            await asyncio.sleep(0.5)  # anything the broker took before the cut has been through the pipeline
            stored = (await http.get("/fhir/Observation", params={"patient": "pat-m"})).json()["entry"]
            assert len(stored) == 1  # what the device sent after being unpaired reached nobody's record
