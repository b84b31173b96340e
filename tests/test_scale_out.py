"""Three gateway processes on one MQTT shared subscription; one is SIGKILLed mid-stream.

Every reading the broker accepted is stored exactly once: the killed member's unacknowledged
messages come back to it when it restarts with the same client id, and whatever it had stored
but not acknowledged is a duplicate the reading key absorbs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.readings import Quantity, Reading
from tests.conftest import truncate
from tests.gateway_support import stored_counts
from tests.services import GatewayProcess, cli, mosquitto

TOTAL = 50_000
PER_MESSAGE = 10
DEVICES = 10
START = datetime(2026, 10, 1, tzinfo=UTC)


async def test_three_gateways_share_the_stream_and_survive_a_sigkill(timescale_url: str, tmp_path: Path) -> None:
    await truncate(timescale_url)
    env = {"PULSEBRIDGE_DATABASE__URL": timescale_url}
    assert cli(env, "patients", "add", "--id", "shared-patient").returncode == 0
    for device in range(DEVICES):
        assert cli(env, "devices", "add", f"shared-{device}").returncode == 0
        assert cli(env, "devices", "assign", f"shared-{device}", "shared-patient").returncode == 0

    with mosquitto(tmp_path) as port:
        gateways = [
            GatewayProcess(
                tmp_path,
                {
                    **env,
                    "PULSEBRIDGE_MQTT__PORT": str(port),
                    "PULSEBRIDGE_MQTT__CLIENT_ID": f"shared-gw-{number}",
                    "PULSEBRIDGE_MQTT__SHARED_GROUP": "pulsebridge",
                },
            )
            for number in range(3)
        ]
        for gateway in gateways:
            gateway.start()
        try:
            for gateway in gateways:
                gateway.wait_healthy()

            async def publish_all() -> None:
                async with ReadingPublisher("127.0.0.1", port, client_id="shared-devices") as publisher:
                    for first in range(0, TOTAL, PER_MESSAGE * 100):
                        sends = []
                        for start in range(first, min(first + PER_MESSAGE * 100, TOTAL), PER_MESSAGE):
                            device = f"shared-{(start // PER_MESSAGE) % DEVICES}"
                            pack = [Reading(device, "heart_rate", START + timedelta(seconds=index), quantity=Quantity(Decimal(60 + index % 50), "/min"))
                                    for index in range(start, start + PER_MESSAGE)]  # fmt: skip
                            sends.append(publisher.publish(device, pack))
                        await asyncio.gather(*sends)

            publishing = asyncio.create_task(publish_all())
            async with asyncio.timeout(120):
                while (await stored_counts(timescale_url))[0] < TOTAL // 4:
                    await asyncio.sleep(0.05)
            assert (await stored_counts(timescale_url))[0] < TOTAL, "the stream finished before the kill"
            gateways[1].kill()
            await asyncio.sleep(1.0)
            gateways[1].start()
            gateways[1].wait_healthy()
            await publishing
            async with asyncio.timeout(180):
                while (await stored_counts(timescale_url))[0] < TOTAL:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            assert await stored_counts(timescale_url) == (TOTAL, TOTAL)
        finally:
            for gateway in gateways:
                gateway.stop()
