"""Scenario 12 of reliability.md: the same 1,000 readings replayed 5x shuffled, via MQTT and BLE, through 2 gateways.

Gateway A is a process; gateway B runs in the test process, because only there can it be given
the fake Bluetooth radio (tests/fake_ble.py): a blood pressure cuff whose stored measurements
are indicated again in every round. Both gateways share the MQTT subscription, so a replayed
MQTT reading may reach either. Readings with a timestamp in the future (10 minutes, a year) or
none at all are mixed in. Every round, every reading is sent again in a new order.

Exactly 1,000 rows and 1,000 EHR Observations; the bad timestamps are quarantined once each
with their reason; the keys the database holds are the ones built from the device-reported
timestamps (the ledger compares them as sets).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiomqtt
import orjson
import pytest

from device_adapters.ble.blood_pressure import parse_blood_pressure_measurement
from device_adapters.mqtt.native import encode_readings, topic_for
from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from edge_config.settings import BleSettings, PairedDeviceSettings
from fhir_mapper.identity import device_stamp, key_text, reading_key, uuid5_text
from tests.conftest import truncate
from tests.fake_ble import FakePeripheral, connect_fake
from tests.faults.ledger import SentLedger, take_ledger
from tests.faults.support import destination, gateway_env, healthy, metric, register_fleet, scrape, wait_pushed, wait_stored
from tests.fhir_receiver import FhirReceiver
from tests.gateway_support import running_gateway
from tests.services import GatewayProcess, mosquitto

ROUNDS = 5
WATCHES = 8
PER_WATCH = 100
CUFF_RECORDS = 100  # each a blood pressure and a pulse rate: 200 readings
CUFF = "s12-cuff"
START = datetime(2026, 5, 1, tzinfo=UTC)


def cuff_record(n: int) -> bytes:
    """A Blood Pressure Measurement (mmHg, time stamp, pulse, user 1, status) taken at 06:00 + n minutes on 2026-05-01."""
    stamp = (2026).to_bytes(2, "little") + bytes([5, 1, 6 + n // 60, n % 60, 0])
    return bytes.fromhex("1E 78 00 50 00 5D 00") + stamp + bytes.fromhex("48 00 01 00 00")


@pytest.mark.quick
async def test_s12_replays_through_two_gateways_store_and_push_each_reading_once(timescale_url: str, tmp_path: Path) -> None:
    await truncate(timescale_url)
    shuffle = random.Random(12)  # noqa: S311 - an order, not a secret
    watches = [f"s12-watch-{n}" for n in range(WATCHES)]
    sent = SentLedger()
    with mosquitto(tmp_path) as port:
        async with FhirReceiver() as receiver:
            patient_of = await register_fleet(timescale_url, [*watches, CUFF], receiver, patients=3)
            messages: list[tuple[str, bytes]] = []
            for watch in watches:
                for n in range(PER_WATCH):
                    reading = Reading(
                        watch, "heart_rate", START + timedelta(minutes=n), quantity=Quantity(Decimal(60 + n % 30), "/min")
                    )
                    messages.append((watch, encode_readings([reading])))
                    sent.generated.add(str(reading_key(watch, patient_of[watch], "heart_rate", reading.time)))
            now = datetime.now(UTC)
            for n, ahead in enumerate([timedelta(minutes=10), timedelta(days=365)] * 5):
                bad = {"type": "heart_rate", "value": 70 + n, "unit": "/min", "time": (now + ahead).isoformat()}
                messages.append((watches[n % WATCHES], orjson.dumps(bad)))
                sent.bad["future_timestamp"] += 1
            for n in range(10):
                messages.append((watches[n % WATCHES], orjson.dumps({"type": "heart_rate", "value": 80 + n, "unit": "/min"})))
                sent.bad["timestamp_missing"] += 1
            records = [cuff_record(n) for n in range(CUFF_RECORDS)]
            for record in records:
                stamp = device_stamp(parse_blood_pressure_measurement(record).timestamp.text())  # type: ignore[union-attr] # the recorded cuff frames all carry a time stamp
                for kind in ("blood_pressure", "pulse_rate"):
                    sent.generated.add(uuid5_text(key_text(CUFF, patient_of[CUFF], kind, stamp)))
            sent.accepted = set(sent.generated)  # every send below is PUBACKed or indicated on a live link

            cuff = FakePeripheral("AA:00:00:00:12:12", 0x1810, {0x2A35: ["indicate"]})
            gateway_a = GatewayProcess(
                tmp_path, gateway_env(timescale_url, port, "s12-gateway-a", receiver, PULSEBRIDGE_MQTT__SHARED_GROUP="s12")
            )
            settings_b = GatewaySettings(
                database=DatabaseSettings(url=timescale_url),
                mqtt=MqttSettings(port=port, client_id="s12-gateway-b", shared_group="s12"),
                ble=BleSettings(devices=[PairedDeviceSettings(device_id=CUFF, address=cuff.address)]),
                destinations=orjson.loads(destination(receiver)),
            )
            gateway_a.start()
            try:
                await healthy(gateway_a)
                async with running_gateway(settings_b, ble_connector=connect_fake), aiomqtt.Client("127.0.0.1", port) as device:
                    device.pending_calls_threshold = 10_000
                    async with asyncio.timeout(10):
                        while not cuff.subscriptions:
                            await asyncio.sleep(0.02)
                    for _ in range(ROUNDS):
                        shuffle.shuffle(messages)
                        shuffle.shuffle(records)
                        await asyncio.gather(*(device.publish(topic_for(watch), payload, qos=1) for watch, payload in messages))
                        for record in records:
                            cuff.notify(0x2A35, record)
                            await asyncio.sleep(0)
                    await wait_stored(timescale_url, len(sent.generated), timeout=120)
                    await wait_pushed(timescale_url, timeout=120)
                    await asyncio.sleep(1.5)  # a late replay would show up as an extra row or create
                    received_a = metric(await scrape(gateway_a), "pulsebridge_frames_received_total", source="mqtt")
            finally:
                gateway_a.stop()
            ledger = await take_ledger("12: replays x5 via MQTT and BLE, 2 gateways", timescale_url, sent, receiver)
    print(f"[ledger 12] gateway A (the process) received {received_a:.0f} of {ROUNDS * (WATCHES * PER_WATCH + 20)} MQTT sends")
    ledger.check()
    assert received_a > 0  # the shared subscription really split the replays between the two gateways
    assert ledger.stored == ledger.ehr_observations == WATCHES * PER_WATCH + 2 * CUFF_RECORDS == 1_000
    assert Counter(ledger.quarantined) == Counter({"future_timestamp": 10, "timestamp_missing": 10})
