"""SIGKILL the gateway mid-stream: every reading the broker accepted is stored exactly once.

Ack-after-commit + a persistent session bring back what the dead process had not committed;
the deterministic reading key absorbs what it had committed but not yet acknowledged.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.readings import Quantity, Reading
from tests.conftest import truncate
from tests.gateway_support import stored_counts
from tests.services import GatewayProcess, cli, mosquitto

TOTAL = 1_000
DEVICES = 10
START = datetime(2026, 11, 1, tzinfo=UTC)


async def _wait_for(url: str, at_least: int, timeout: float) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows, _ = await stored_counts(url)
        if rows >= at_least or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.02)


async def test_sigkill_mid_stream_loses_nothing_and_doubles_nothing(timescale_url: str, tmp_path: Path) -> None:
    await truncate(timescale_url)
    with mosquitto(tmp_path) as broker_port:
        env = {
            "PULSEBRIDGE_DATABASE__URL": timescale_url,
            "PULSEBRIDGE_MQTT__PORT": str(broker_port),
            "PULSEBRIDGE_MQTT__CLIENT_ID": "crash-test-gateway",
            "PULSEBRIDGE_INGEST__BATCH_SIZE": "50",
        }
        assert cli(env, "patients", "add", "--id", "crash-patient").returncode == 0
        for device in range(DEVICES):
            assert cli(env, "devices", "add", f"sensor-{device}").returncode == 0
            assert cli(env, "devices", "assign", f"sensor-{device}", "crash-patient").returncode == 0

        gateway = GatewayProcess(tmp_path, env)
        gateway.start()
        gateway.wait_healthy()
        sent: list[Reading] = []

        async def publish_all() -> None:
            async with ReadingPublisher("127.0.0.1", broker_port, client_id="crash-test-devices") as publisher:
                for index in range(TOTAL):
                    reading = Reading(
                        f"sensor-{index % DEVICES}",
                        "heart_rate",
                        START + timedelta(seconds=index),
                        quantity=Quantity(Decimal(60 + index % 40), "/min"),
                    )
                    await publisher.publish(reading.device_id, [reading])  # returns after the broker's PUBACK
                    sent.append(reading)
                    await asyncio.sleep(0.002)

        publishing = asyncio.create_task(publish_all())
        try:
            for kill_at in (150, 500):
                stored = await _wait_for(timescale_url, kill_at, timeout=60)
                assert stored < TOTAL, "the stream finished before the kill: nothing was tested"
                gateway.kill()
                await asyncio.sleep(0.3)  # devices keep publishing while the gateway is down
                gateway.start()
                gateway.wait_healthy()
            await publishing
            assert len(sent) == TOTAL
            await _wait_for(timescale_url, TOTAL, timeout=60)
            await asyncio.sleep(1.0)  # anything redelivered late would show up as an extra row
            assert await stored_counts(timescale_url) == (TOTAL, TOTAL)
        finally:
            publishing.cancel()
            gateway.stop()

    connection = await asyncpg.connect(timescale_url)
    try:
        times = {row["time"] for row in await connection.fetch("SELECT time FROM observations")}
    finally:
        await connection.close()
    assert times == {reading.time for reading in sent}
