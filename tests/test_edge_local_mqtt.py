"""A Wi-Fi device on the hub's local broker: through the hub's outbox to the central gateway, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.readings import Quantity, Reading
from tests.edge_support import HubProcess, central_count
from tests.fake_glucose import write_meters
from tests.services import mosquitto
from tests.test_edge_hub import _gateway, _seed, _until


async def test_a_wifi_device_on_the_local_broker_reaches_the_gateway_through_the_hub(timescale_url: str, tmp_path: Path) -> None:
    await _seed(timescale_url, [("hub-wifi", "scale-wifi", "mqtt", "patient-wifi")])
    meters = tmp_path / "meters.json"
    write_meters(meters, {})
    local_folder, upstream_folder = tmp_path / "local", tmp_path / "upstream"
    local_folder.mkdir()
    upstream_folder.mkdir()
    with mosquitto(local_folder) as local_port, mosquitto(upstream_folder) as upstream_port:
        gateway = _gateway(tmp_path, timescale_url, upstream_port, "gw-edge-wifi")
        hub = HubProcess(tmp_path, "hub-wifi", upstream_port, meters, {
            "PULSEBRIDGE_EDGE__LOCAL_MQTT": "true", "PULSEBRIDGE_MQTT__PORT": str(local_port),
            "PULSEBRIDGE_MQTT__CLIENT_ID": "hub-wifi-local",
        })  # fmt: skip
        try:
            gateway.start()
            gateway.wait_healthy()
            hub.start()
            await _until(lambda: hub.query("SELECT value FROM state WHERE name = 'config'"), 30, "the hub's configuration")
            at = datetime(2026, 11, 22, 7, 30, tzinfo=UTC)
            readings = [Reading("scale-wifi", "body_weight", at, Quantity(Decimal("72.4"), "kg"))]
            async with ReadingPublisher("127.0.0.1", local_port) as publisher:
                await publisher.publish("scale-wifi", readings)
                await publisher.publish("scale-wifi", readings)  # sent twice by the device: stored once
                await publisher.publish(
                    "scale-stranger", [Reading("scale-stranger", "body_weight", at, Quantity(Decimal(80), "kg"))]
                )
            await _until(lambda: _count(timescale_url, 1), 30, "the scale's reading in the central database")
            await asyncio.sleep(1)
            assert await central_count(timescale_url, "patient-wifi") == 1
            assert hub.counter("duplicates_dropped") == 1
            assert hub.query("SELECT reason, device_id FROM quarantine") == [("unpaired_device", "scale-stranger")]
            assert "ble scale-wifi" not in hub.log()  # not a Bluetooth device: no connection attempts
        finally:
            hub.stop()
            gateway.stop()


async def _count(url: str, want: int) -> bool:
    return await central_count(url, "patient-wifi") == want
