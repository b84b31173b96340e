"""The database pauses for 30 s under load: the gateway stops acknowledging instead of buffering.

A private PostgreSQL cluster (ours to pause) is frozen with SIGSTOP while devices keep
publishing. The broker holds what the gateway has not acknowledged (MQTT 5 receive maximum),
the gateway's memory stays flat, and once the database is back every reading is stored once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.readings import Quantity, Reading
from tests.gateway_support import stored_counts
from tests.services import GatewayProcess, cli, mosquitto, postgres_pids, private_postgres, rss_kib

RATE = 400  # readings per second, one per message
PAUSE_SECONDS = 30
START = datetime(2026, 9, 1, tzinfo=UTC)


async def test_a_paused_database_holds_back_acks_not_memory(tmp_path: Path) -> None:
    with private_postgres() as url, mosquitto(tmp_path) as port:
        env = {"PULSEBRIDGE_DATABASE__URL": url, "PULSEBRIDGE_MQTT__PORT": str(port), "PULSEBRIDGE_MQTT__CLIENT_ID": "pause-gw"}
        for args in (
            ("patients", "add", "--id", "pause-patient"),
            ("devices", "add", "pause-watch"),
            ("devices", "assign", "pause-watch", "pause-patient"),
        ):
            result = cli(env, *args)
            assert result.returncode == 0, result.stderr
        gateway = GatewayProcess(tmp_path, env)
        gateway.start()
        sent = 0
        stop = asyncio.Event()

        async def publish() -> None:
            nonlocal sent
            async with ReadingPublisher("127.0.0.1", port, client_id="pause-watch-client") as publisher:
                while not stop.is_set():
                    began = time.monotonic()
                    for _ in range(RATE // 10):
                        at = START + timedelta(seconds=sent)
                        await publisher.publish(
                            "pause-watch", [Reading("pause-watch", "heart_rate", at, quantity=Quantity(Decimal(70), "/min"))]
                        )
                        sent += 1
                    await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - began)))

        try:
            gateway.wait_healthy()
            assert gateway.pid is not None
            publishing = asyncio.create_task(publish())
            await asyncio.sleep(5)
            before = 0
            for _ in range(5):
                before = max(before, rss_kib(gateway.pid))
                await asyncio.sleep(0.1)
            pids = postgres_pids(url)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            highest = before
            try:
                paused_at = time.monotonic()
                while time.monotonic() - paused_at < PAUSE_SECONDS:
                    highest = max(highest, rss_kib(gateway.pid))
                    await asyncio.sleep(0.5)
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            stop.set()
            await publishing
            async with asyncio.timeout(120):
                while (await stored_counts(url))[1] < sent:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            assert await stored_counts(url) == (sent, sent)
            assert sent >= RATE * (PAUSE_SECONDS + 4)
            assert highest - before < 50 * 1024, f"gateway RSS rose {(highest - before) / 1024:.1f} MB during the pause"
        finally:
            stop.set()
            gateway.stop()
