"""Poison payloads in a live stream: one quarantine row each, acknowledged once; good readings all stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiomqtt

from device_adapters.mqtt.native import topic_for
from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings
from gateway.storage import ObservationQuery, open_store
from tests.conftest import truncate
from tests.services import GatewayProcess, cli, mosquitto

POISON = {
    "invalid UTF-8": (b'{"type": "heart_rate", "value": 7\xff}', "malformed_json"),
    "deep nesting": (b"[" * 20_000 + b"]" * 20_000, "malformed_json"),
    "NaN": (b'{"type": "heart_rate", "value": NaN, "unit": "/min", "time": "2026-11-22T10:00:00Z"}', "malformed_json"),
    "1e400": (b'{"type": "heart_rate", "value": 1e400, "unit": "/min", "time": "2026-11-22T10:00:01Z"}', "malformed_frame"),
    "wrong types": (b'{"type": 7, "value": "70", "unit": [], "time": true}', "malformed_frame"),
    "empty": (b"", "malformed_json"),
    "10 MB": (b'{"pad": "' + b"x" * (10 * 1024 * 1024) + b'"}', "oversize"),
}
GOOD = 200


async def test_poison_payloads_are_quarantined_once_and_good_readings_all_stored(timescale_url: str, tmp_path: Path) -> None:
    await truncate(timescale_url)
    env = {"PULSEBRIDGE_DATABASE__URL": timescale_url}
    for args in (
        ("patients", "add", "--id", "poison-patient"),
        ("devices", "add", "poison-watch"),
        ("devices", "assign", "poison-watch", "poison-patient"),
    ):
        assert cli(env, *args).returncode == 0
    with mosquitto(tmp_path, "message_size_limit 0\n") as port:
        gateway = GatewayProcess(
            tmp_path, {**env, "PULSEBRIDGE_MQTT__PORT": str(port), "PULSEBRIDGE_MQTT__CLIENT_ID": "poison-gw"}
        )
        gateway.start()
        store = await open_store(DatabaseSettings(url=timescale_url))
        try:
            gateway.wait_healthy()
            start = datetime(2026, 11, 20, tzinfo=UTC)
            async with ReadingPublisher("127.0.0.1", port) as publisher, aiomqtt.Client("127.0.0.1", port) as raw:
                for index in range(GOOD):
                    reading = Reading(
                        "poison-watch",
                        "heart_rate",
                        start + timedelta(seconds=index),
                        quantity=Quantity(Decimal(60 + index % 30), "/min"),
                    )
                    await publisher.publish("poison-watch", [reading])
                    if index % (GOOD // len(POISON)) == 0 and index // (GOOD // len(POISON)) < len(POISON):
                        payload, _ = list(POISON.values())[index // (GOOD // len(POISON))]
                        await raw.publish(topic_for("poison-watch"), payload, qos=1)
            async with asyncio.timeout(60):
                while len(await store.search_observations(ObservationQuery(count=1000))) < GOOD or len(
                    await store.list_quarantine(100)
                ) < len(POISON):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # a poison message redelivered in a loop would count up here
            rows = await store.list_quarantine(100)
            stored = await store.search_observations(ObservationQuery(count=1000))
        finally:
            gateway.stop()
            await store.close()
    assert len(stored) == GOOD
    assert sorted(row.reason for row in rows) == sorted(reason for _, reason in POISON.values())
    assert {row.seen_count for row in rows} == {1}
    oversize = next(row for row in rows if row.reason == "oversize")
    assert len(oversize.payload) == 1024 * 1024
    assert "payload kept" in oversize.detail
