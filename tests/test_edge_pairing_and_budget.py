"""Edge hubs against the real gateway: pairing, identity, a full outbox.

Pairing reaches a running hub; the gateway refuses a hub's readings for devices not paired with it;
a full outbox refuses at the source, loudly, keeps its oldest readings and loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import orjson

from edge_config import DatabaseSettings
from gateway.mqtt_credentials import build_credentials, write_credentials
from gateway.storage import ObservationStore, open_store
from tests.edge_support import HubProcess, RestartableBroker, central_count
from tests.fake_glucose import write_meters
from tests.services import mosquitto
from tests.test_edge_hub import _gateway, _seed, _until

METER_A, METER_B = "AA:00:00:00:09:0A", "AA:00:00:00:09:0B"


async def test_pairing_on_the_gateway_reaches_a_running_hub_and_unpaired_devices_are_refused(
    timescale_url: str, tmp_path: Path
) -> None:
    await _seed(timescale_url, [("hub-p", "meter-a", METER_A, "patient-a"), ("", "meter-b", METER_B, "patient-b")])
    meters = tmp_path / "meters.json"
    write_meters(meters, {METER_A: {"count": 5, "delay": 0}, METER_B: {"count": 7, "delay": 0}})
    broker = RestartableBroker(tmp_path)
    broker.start()
    gateway = _gateway(tmp_path, timescale_url, broker.port, "gw-edge-pairing")
    hub = HubProcess(tmp_path, "hub-p", broker.port, meters)
    store = await open_store(DatabaseSettings(url=timescale_url))
    try:
        gateway.start()
        gateway.wait_healthy()
        hub.start()
        await _until(lambda: _count(timescale_url, "patient-a", 5), 60, "meter A's records through the hub")
        assert await central_count(timescale_url, "patient-b") == 0  # B is not paired: the hub does not connect to it

        paired_at = time.monotonic()
        await store.pair_hub_device("hub-p", "meter-b", METER_B, datetime.now(UTC))
        await _until(lambda: _count(timescale_url, "patient-b", 7), 60, "meter B's records once paired")
        assert time.monotonic() - paired_at < 60

        # The hub's user forwards for a device the gateway never paired with it: quarantined, not attributed.
        await store.add_patient("patient-c", None, None)
        await store.add_device("meter-c", None, None)
        await store.assign_device("meter-c", "patient-c", None)
        reading = {"type": "blood_glucose", "value": 95, "unit": "mg/dL", "time": "2026-11-22T10:00:00Z"}
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.publish("hubs/hub-p/devices/meter-c/readings", orjson.dumps([reading]), qos=1)
        await _until(lambda: _quarantined(store), 30, "the unpaired device's reading in quarantine")
        (row,) = await store.list_quarantine(10)
        assert (row.reason, row.device_id) == ("unpaired_device", "meter-c")
        assert "hub 'hub-p'" in row.detail
        assert await central_count(timescale_url, "patient-c") == 0

        await _until(lambda: _heard_from(store), 30, "the hub's heartbeat with both devices")
        (hub_row,) = await store.list_hubs()
        assert hub_row.online
        assert hub_row.queue_depth == 0
        assert hub_row.version

        hub.stop()  # no goodbye is sent: the broker publishes the Last Will
        await _until(lambda: _offline(store), 30, "the hub marked offline by its Last Will")
    finally:
        hub.stop()
        gateway.stop()
        broker.stop()
        await store.close()


async def test_a_full_outbox_refuses_at_the_source_loudly_keeps_the_oldest_and_loses_nothing(
    timescale_url: str, tmp_path: Path
) -> None:
    await _seed(timescale_url, [("hub-f", "meter-f", METER_A, "patient-f")])
    meters = tmp_path / "meters.json"
    write_meters(meters, {METER_A: {"count": 300, "delay": 0}})
    broker = RestartableBroker(tmp_path)
    broker.start()
    gateway = _gateway(tmp_path, timescale_url, broker.port, "gw-edge-full")
    hub = HubProcess(tmp_path, "hub-f", broker.port, meters, {"PULSEBRIDGE_EDGE__OUTBOX_MAX_BYTES": "16384"})
    try:
        gateway.start()
        gateway.wait_healthy()
        hub.start()
        await _until(lambda: hub.query("SELECT value FROM state WHERE name = 'config'"), 30, "the hub's configuration")
        broker.stop()  # no uplink: the outbox fills
        await _until(lambda: hub.counter("refused_full") > 0, 60, "a refusal")
        await asyncio.sleep(3)  # the meter is asked again after each reconnection: still refused
        held = [
            orjson.loads(bytes(body))
            for (body,) in hub.query("SELECT body FROM readings ORDER BY seq")
            if isinstance(body, bytes)
        ]
        size = hub.query("SELECT SUM(size) FROM readings")[0][0]
        cursor = hub.cursor("meter-f")
        assert isinstance(size, int)
        assert size <= 16384
        assert cursor is not None
        assert 0 < cursor < 300
        # What it keeps is the oldest it promised to keep: every record up to the cursor, none after.
        forwarded_before = hub.counter("forwarded")
        assert len(held) + forwarded_before == cursor
        assert [item["device_time"] for item in held][-1] == f"2024-03-14T{cursor // 60:02d}:{cursor % 60:02d}:00"
        assert "EDGE OUTBOX FULL" in hub.log()
        assert hub.alive()

        broker.start()  # room again: the refused records come from the meter, nothing is lost
        await _until(lambda: _count(timescale_url, "patient-f", 300), 120, "all 300 records in the central database")
        await asyncio.sleep(1)
        assert await central_count(timescale_url, "patient-f") == 300
    finally:
        hub.stop()
        gateway.stop()
        broker.stop()


async def _count(url: str, patient_id: str, want: int) -> bool:
    return await central_count(url, patient_id) == want


async def _quarantined(store: ObservationStore) -> bool:
    return bool(await store.list_quarantine(10))


async def _heard_from(store: ObservationStore) -> bool:
    hubs = await store.list_hubs()
    return bool(hubs) and hubs[0].last_heartbeat_at is not None and hubs[0].queue_depth == 0


async def _offline(store: ObservationStore) -> bool:
    hubs = await store.list_hubs()
    return bool(hubs) and not hubs[0].online


async def test_a_hub_speaks_only_for_itself_on_a_broker_with_the_generated_acl(timescale_url: str, tmp_path: Path) -> None:
    await _seed(
        timescale_url, [("hub-acl", "meter-acl", METER_A, "patient-acl"), ("hub-other", "meter-other", METER_B, "patient-other")]
    )
    credentials = build_credentials([], ["gw-acl"], ["hub-acl", "hub-other"])
    folder = tmp_path / "acl"
    write_credentials(credentials, folder)
    passwords = credentials.passwords
    meters = tmp_path / "meters.json"
    write_meters(meters, {METER_A: {"count": 4, "delay": 0}, METER_B: {"count": 0, "delay": 0}})
    extra = f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\nuse_username_as_clientid true\n"
    with mosquitto(tmp_path, extra, anonymous=False) as port:
        gateway = _gateway(tmp_path, timescale_url, port, "gw-acl")
        gateway._env |= {"PULSEBRIDGE_MQTT__USERNAME": "gw-acl", "PULSEBRIDGE_MQTT__PASSWORD": passwords["gw-acl"]}
        hub = HubProcess(tmp_path, "hub-acl", port, meters, {"PULSEBRIDGE_EDGE__UPSTREAM__PASSWORD": passwords["hub-acl"]})
        store = await open_store(DatabaseSettings(url=timescale_url))
        try:
            gateway.start()
            gateway.wait_healthy()
            hub.start()  # its configuration, presence, heartbeat, clock and packs all pass the ACL
            await _until(lambda: _count(timescale_url, "patient-acl", 4), 60, "the hub's records")
            await _until(lambda: _skew_known(store), 30, "the hub's clock skew, from a heartbeat after a clock reply")
            # hub-other's user writes on hub-acl's topic (the broker drops it) and for a device not its own (quarantined).
            reading = {"type": "blood_glucose", "value": 95, "unit": "mg/dL", "time": "2026-11-22T10:00:00Z"}
            for topic, payload in (
                ("hubs/hub-acl/devices/meter-acl/readings", [reading]),
                ("hubs/hub-other/devices/meter-acl/readings", [reading]),
            ):
                async with aiomqtt.Client("127.0.0.1", port, username="hub-other", password=passwords["hub-other"],
                                          protocol=aiomqtt.ProtocolVersion.V5) as client:  # fmt: skip
                    await client.publish(topic, orjson.dumps(payload), qos=1)
            await _until(lambda: _quarantined(store), 30, "hub-other's reading for a device it is not paired with")
            await asyncio.sleep(1)
            (row,) = await store.list_quarantine(10)
            assert (row.reason, row.channel) == ("unpaired_device", "hubs/hub-other/devices/meter-acl/readings")
            assert await central_count(timescale_url, "patient-acl") == 4
        finally:
            hub.stop()
            gateway.stop()
            await store.close()


async def _skew_known(store: ObservationStore) -> bool:
    hubs = await store.list_hubs()
    return any(hub.hub_id == "hub-acl" and hub.clock_skew_seconds is not None for hub in hubs)
