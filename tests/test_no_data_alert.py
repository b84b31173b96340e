"""A no-data alert opens when a simulated device stops publishing and resolves when it resumes (real Mosquitto)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.simulator.vitals import PROFILES, SimulatedDevice, VitalsSimulator
from edge_config import DatabaseSettings, GatewaySettings, IngestSettings, MqttSettings
from edge_config.alert_settings import AlertRuleSet, AlertSettings, News2RuleSettings
from gateway.events import AlertEvent
from tests.conftest import truncate
from tests.gateway_support import app_of, running_gateway
from tests.test_alerts_api import eventually

WATCH = next(profile for profile in PROFILES if profile.name == "watch")
DEVICE = SimulatedDevice("sim-ada-watch", WATCH)


@contextlib.asynccontextmanager
async def simulating(port: int, interval: float = 0.2) -> AsyncIterator[None]:
    """The project's simulator publishing the watch's vitals over MQTT until the block ends."""

    async def publish() -> None:
        simulator = VitalsSimulator(7, (DEVICE,))
        async with ReadingPublisher("127.0.0.1", port, client_id="no-data-simulator") as publisher:
            while True:
                for device_id, readings in simulator.tick(datetime.now(UTC)):
                    await publisher.publish(device_id, readings)
                await asyncio.sleep(interval)

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_no_data_alert_fires_when_the_device_stops_and_clears_when_it_resumes(timescale_url: str, broker_port: int) -> None:
    await truncate(timescale_url)
    rules = AlertRuleSet(device_silence_seconds=2, patient_silence_seconds=2, news2=News2RuleSettings(enabled=False))
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url),
        mqtt=MqttSettings(port=broker_port, client_id="no-data-test"),
        ingest=IngestSettings(batch_wait_ms=10),
        alerts=AlertSettings(defaults=rules, sweep_interval_seconds=0.25),
    )
    async with running_gateway(settings) as http:
        runtime = app_of(http).state.runtime
        await runtime.store.add_patient("sim-ada", None, None)
        await runtime.store.add_device(DEVICE.device_id, "watch", None)
        await runtime.store.assign_device(DEVICE.device_id, "sim-ada", None)

        async def alerts(status: str) -> list[tuple[str, str]]:
            found = (await http.get("/api/v1/alerts", params={"patient": "sim-ada", "status": status})).json()
            return sorted((alert["rule"], alert["kind"]) for alert in found)

        async def stored() -> int:
            bundle: dict[str, Any] = (
                await http.get("/fhir/Observation", params={"patient": "sim-ada", "_summary": "count"})
            ).json()
            return int(bundle["total"])

        silent = [("no_data", "device:sim-ada-watch"), ("no_data", "patient")]
        async with runtime.events.subscribe(patients={"sim-ada"}) as live:
            async with simulating(broker_port):
                await eventually(stored)
                await asyncio.sleep(2.5)  # longer than the silence limit: a publishing device is not silent
                assert await alerts("open") == []
            before = await stored()

            async def opened_both() -> bool:
                return await alerts("open") == silent

            await eventually(opened_both, timeout=10)
            opened = [event async for event in _alert_events(live, 2)]
            assert {(event.rule, event.kind, event.status) for event in opened} == {(*key, "open") for key in silent}

            async with simulating(broker_port):

                async def resolved_both() -> bool:
                    return await alerts("resolved") == silent

                await eventually(resolved_both, timeout=10)
                assert await alerts("open") == []
                assert await stored() > before


async def _alert_events(live: Any, count: int) -> AsyncIterator[AlertEvent]:
    seen = 0
    while seen < count:
        event = await asyncio.wait_for(anext(live), 10)
        if isinstance(event, AlertEvent):
            seen += 1
            yield event
