"""Device identity on a real broker with the generated password file and ACL.

Device A publishing on B's topic, connecting with B's client id, or naming B in its payload gets
nothing into B's patient's record; anonymous clients are refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
from pathlib import Path

import aiomqtt
import orjson
import pytest

from device_adapters.mqtt.native import topic_for
from edge_config import DatabaseSettings
from gateway.mqtt_credentials import CredentialsError, build_credentials, password_line, write_credentials
from gateway.storage import ObservationQuery, open_store
from tests.conftest import truncate
from tests.services import GatewayProcess, cli, mosquitto


def test_password_lines_are_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    line = password_line("dev-a", "s3cret", salt=b"0123456789ab")
    user, _, rest = line.partition(":")
    _, version, iterations, salt, digest = rest.split("$")
    assert (user, version, iterations) == ("dev-a", "7", "101")
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"s3cret", base64.b64decode(salt), 101)
    reference = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(reference), "dev-a", "s3cret"], check=True, capture_output=True)
    assert reference.read_text().split("$")[1:3] == ["7", "101"]


@pytest.mark.parametrize("bad", ["a/b", "a+", "#", "gateway"])
def test_user_names_the_broker_could_misread_are_refused(bad: str) -> None:
    with pytest.raises(CredentialsError):
        build_credentials([bad], ["gateway"])


async def _publish(port: int, user: str, password: str, topic: str, payload: str, *, identifier: str | None = None) -> None:
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password, identifier=identifier,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:  # fmt: skip
        await client.publish(topic, payload.encode(), qos=1)


async def test_a_device_cannot_write_into_another_devices_record(timescale_url: str, tmp_path: Path) -> None:
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    for device, patient in (("dev-a", "patient-a"), ("dev-b", "patient-b")):
        await store.add_patient(patient, None, None)
        await store.add_device(device, None, None)
        await store.assign_device(device, patient, None)
    credentials = build_credentials(["dev-a", "dev-b"], ["gw-1"])
    folder = tmp_path / "broker"
    write_credentials(credentials, folder)
    password = credentials.passwords
    extra = f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\nuse_username_as_clientid true\n"
    with mosquitto(tmp_path, extra, anonymous=False) as port:
        gateway = GatewayProcess(tmp_path, {
            "PULSEBRIDGE_DATABASE__URL": timescale_url, "PULSEBRIDGE_MQTT__PORT": str(port), "PULSEBRIDGE_MQTT__CLIENT_ID": "gw-1",
            "PULSEBRIDGE_MQTT__USERNAME": "gw-1", "PULSEBRIDGE_MQTT__PASSWORD": password["gw-1"],
        })  # fmt: skip
        gateway.start()
        try:
            gateway.wait_healthy()
            reading = '{{"type": "heart_rate", "value": {value}, "unit": "/min", "time": "2026-11-22T10:00:0{second}Z"{claim}}}'
            # A on B's topic: the broker refuses the publish; nothing reaches the gateway.
            await _publish(port, "dev-a", password["dev-a"], topic_for("dev-b"), reading.format(value=91, second=1, claim=""))
            # A with B's client id: the broker names the connection dev-a; its payload claims B.
            await _publish(port, "dev-a", password["dev-a"], topic_for("dev-a"), reading.format(value=92, second=2, claim=', "device_id": "dev-b"'),
                           identifier="dev-b")  # fmt: skip
            await _publish(port, "dev-a", password["dev-a"], topic_for("dev-a"), reading.format(value=71, second=3, claim=""))
            await _publish(port, "dev-b", password["dev-b"], topic_for("dev-b"), reading.format(value=72, second=4, claim=""))
            with pytest.raises(aiomqtt.MqttError):
                await _publish(port, "dev-a", "wrong", topic_for("dev-a"), reading.format(value=93, second=5, claim=""))
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5):
                    pass
            async with asyncio.timeout(15):
                while len(await store.search_observations(ObservationQuery(count=10))) < 2 or not await store.list_quarantine(10):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a late spoofed reading would show up here
            b_rows = await store.search_observations(ObservationQuery(patient_id="patient-b"))
            a_rows = await store.search_observations(ObservationQuery(patient_id="patient-a"))
            (rejected,) = await store.list_quarantine(10)
        finally:
            gateway.stop()
            await store.close()
    assert [orjson.loads(row.resource)["valueQuantity"]["value"] for row in b_rows] == [72]
    assert [orjson.loads(row.resource)["valueQuantity"]["value"] for row in a_rows] == [71]
    assert (rejected.reason, rejected.device_id) == ("identity_mismatch", "dev-a")
    assert (
        cli({"PULSEBRIDGE_DATABASE__URL": timescale_url}, "mqtt", "credentials", "--out", str(tmp_path / "cli")).returncode == 0
    )
    assert (tmp_path / "cli" / "passwd").stat().st_mode & 0o777 == 0o600
    assert "pattern write pulsebridge/v1/devices/%u/readings" in (tmp_path / "cli" / "acl").read_text()
