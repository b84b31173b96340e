"""A BLE device and an MQTT device feed the same gateway: one pipeline, one store, one FHIR API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import aiomqtt
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from device_adapters.ble.advertisements import theengs_decode
from device_adapters.ble.scanner import DetectionCallback
from device_adapters.jsonwire import dumps
from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from edge_config.settings import BleSettings, PairedDeviceSettings
from fhir_mapper.validation import validate_resource
from gateway.storage import open_store
from tests.conftest import truncate
from tests.fake_ble import FakePeripheral, connect_fake
from tests.gateway_support import running_gateway


async def test_ble_and_mqtt_readings_are_served_by_the_same_fhir_api(timescale_url: str, broker_port: int) -> None:
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    await store.add_patient("mixed-patient", None, None)
    for device in ("cuff-app", "watch-app"):
        await store.add_device(device, None, None)
        await store.assign_device(device, "mixed-patient", None)
    await store.close()

    cuff = FakePeripheral("AA:00:00:00:00:03", 0x1810, {0x2A35: ["indicate"]})
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url),
        mqtt=MqttSettings(port=broker_port, client_id="ble-app-test"),
        ble=BleSettings(devices=[PairedDeviceSettings(device_id="cuff-app", address=cuff.address)]),
    )
    async with running_gateway(settings, ble_connector=connect_fake) as http:
        async with asyncio.timeout(10):
            while not cuff.subscriptions:
                await asyncio.sleep(0.02)
        cuff.notify(0x2A35, bytes.fromhex("1E 78 00 50 00 5D 00 E8 07 01 02 03 04 05 48 00 01 00 00"))
        async with ReadingPublisher("127.0.0.1", broker_port) as publisher:
            at = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
            await publisher.publish("watch-app", [Reading("watch-app", "spo2", at, quantity=Quantity(Decimal(97), "%"))])
        async with asyncio.timeout(15):
            while True:
                bundle = (await http.get("/fhir/Observation", params={"patient": "mixed-patient"})).json()
                if len(bundle.get("entry", [])) >= 3:
                    break
                await asyncio.sleep(0.05)
    codes = sorted(entry["resource"]["code"]["coding"][0]["code"] for entry in bundle["entry"])
    assert codes == ["2708-6", "85354-9", "8867-4"]
    for entry in bundle["entry"]:
        validate_resource(entry["resource"])


async def test_an_advertising_scale_on_the_allow_list_is_read_and_a_neighbours_is_not(
    timescale_url: str, broker_port: int
) -> None:
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    await store.add_patient("scale-patient", None, None)
    await store.add_device("scale-adv", None, None)
    await store.assign_device("scale-adv", "scale-patient", None)
    await store.close()
    callbacks: list[DetectionCallback] = []

    @contextlib.asynccontextmanager
    async def fake_scanner(callback: DetectionCallback) -> AsyncIterator[None]:
        callbacks.append(callback)
        yield

    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url),
        mqtt=MqttSettings(port=broker_port, client_id="adv-app-test"),
        ble=BleSettings(
            devices=[PairedDeviceSettings(device_id="scale-adv", address="A4:C1:38:00:00:10", connect=False, advertisements=True)]
        ),
    )
    mass = {"0000fcd2-0000-1000-8000-00805f9b34fb": bytes.fromhex("40065e1f")}  # BTHome v2: 80.30 kg
    async with running_gateway(settings, ble_scanner=fake_scanner) as http:
        async with asyncio.timeout(10):
            while not callbacks:
                await asyncio.sleep(0.01)
        callbacks[0](
            BLEDevice("A4:C1:38:00:00:99", "neighbour", None), AdvertisementData("neighbour", {}, mass, [], None, -60, ())
        )
        callbacks[0](BLEDevice("a4:c1:38:00:00:10", "scale", None), AdvertisementData("scale", {}, mass, [], None, -60, ()))
        async with asyncio.timeout(15):
            while not (bundle := (await http.get("/fhir/Observation", params={"patient": "scale-patient"})).json()).get("entry"):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        everything = (await http.get("/fhir/Observation")).json()
    (entry,) = bundle["entry"]
    assert entry["resource"]["valueQuantity"]["value"] == 80.3
    assert entry["resource"]["code"]["coding"][0]["code"] == "29463-7"
    assert len(everything["entry"]) == 1


async def test_theengs_gateway_documents_are_read_once_however_often_they_are_republished(
    timescale_url: str, broker_port: int
) -> None:
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    await store.add_patient("theengs-patient", None, None)
    await store.add_device("5CCAD3000001", None, None)
    await store.assign_device("5CCAD3000001", "theengs-patient", None)
    await store.close()
    document = theengs_decode({"id": "5C:CA:D3:00:00:01", "rssi": -67, "name": "MIBFS", "servicedatauuid": "181b",
                               "servicedata": "0226e607020e10293af7019a38"})  # fmt: skip
    assert document is not None
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url),
        mqtt=MqttSettings(port=broker_port, client_id="theengs-test", theengs_base_topic="home"),
    )
    async with running_gateway(settings) as http:
        async with aiomqtt.Client("127.0.0.1", broker_port) as gateway_device:
            for _ in range(3):  # the gateway republishes every advertisement it hears
                await gateway_device.publish("home/TheengsGateway/BTtoMQTT/5CCAD3000001", dumps(document), qos=1)
            await gateway_device.publish(
                "home/TheengsGateway/BTtoMQTT/A4C138000002", b'{"model_id": "LYWSD03MMC", "tempc": 22.5}', qos=1
            )
        async with asyncio.timeout(15):
            while len((await http.get("/fhir/Observation", params={"patient": "theengs-patient"})).json().get("entry", [])) < 2:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        bundle = (await http.get("/fhir/Observation", params={"patient": "theengs-patient"})).json()
        quarantined = (await http.get("/api/v1/quarantine")).json()
    assert sorted(entry["resource"]["code"]["coding"][0]["code"] for entry in bundle["entry"]) == ["29463-7", "body_impedance"]
    assert quarantined == []  # the ambient sensor's document carries no health reading: nothing to quarantine
