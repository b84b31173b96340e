"""The edge hub as a real process between a fake glucose meter and the real gateway, broker and TimescaleDB.

Killed with SIGKILL while it forwards, cut from its uplink for ``PULSEBRIDGE_EDGE_OUTAGE_SECONDS``
(default 600: the issue's ten minutes) while the meter delivers its stored records: the central
database ends with every record exactly once.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_config import DatabaseSettings
from gateway.storage import open_store
from tests.conftest import truncate
from tests.edge_support import HubProcess, RestartableBroker, central_count
from tests.fake_glucose import write_meters
from tests.services import GatewayProcess

OUTAGE_SECONDS = float(os.environ.get("PULSEBRIDGE_EDGE_OUTAGE_SECONDS", "600"))
METER = "AA:00:00:00:09:01"


async def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check() if callable(check) else None
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


async def _seed(url: str, pairs: list[tuple[str, str, str, str]]) -> None:
    """(hub, device, address, patient) pairings on the gateway."""
    await truncate(url)
    store = await open_store(DatabaseSettings(url=url))
    try:
        for hub_id, device_id, address, patient_id in pairs:
            await store.add_patient(patient_id, None, None)
            await store.add_device(device_id, "glucose meter", None)
            await store.assign_device(device_id, patient_id, None)
            if hub_id:
                await store.pair_hub_device(hub_id, device_id, address, datetime.now(UTC))
    finally:
        await store.close()


def _gateway(tmp_path: Path, url: str, port: int, client_id: str) -> GatewayProcess:
    return GatewayProcess(tmp_path, {
        "PULSEBRIDGE_DATABASE__URL": url, "PULSEBRIDGE_MQTT__PORT": str(port), "PULSEBRIDGE_MQTT__CLIENT_ID": client_id,
        "PULSEBRIDGE_MQTT__RECONNECT_MAX_SECONDS": "1", "PULSEBRIDGE_EDGE__CONFIG_PUBLISH_SECONDS": "1",
    })  # fmt: skip


@pytest.mark.slow
async def test_sigkill_and_a_long_outage_leave_exactly_the_meters_records_in_the_central_database(
    timescale_url: str, tmp_path: Path
) -> None:
    await _seed(timescale_url, [("hub-e2e", "meter-e2e", METER, "patient-e2e")])
    meters = tmp_path / "meters.json"
    write_meters(meters, {METER: {"count": 300, "delay": 0.01}})
    broker = RestartableBroker(tmp_path)
    broker.start()
    gateway = _gateway(tmp_path, timescale_url, broker.port, "gw-edge-e2e")
    hub = HubProcess(tmp_path, "hub-e2e", broker.port, meters)
    try:
        gateway.start()
        gateway.wait_healthy()
        hub.start()
        # Killed while it forwards: some records are in the central database, the meter is still sending.
        await _until(lambda: central_count(timescale_url, "patient-e2e"), 60, "the first forwarded records")
        hub.kill()
        killed_at = await central_count(timescale_url, "patient-e2e")
        assert 0 < killed_at < 300, f"the hub was not killed mid-forward ({killed_at} stored)"

        broker.stop()
        await asyncio.sleep(1)  # what the broker had already passed on is committed by now
        before_outage = await central_count(timescale_url, "patient-e2e")
        write_meters(meters, {METER: {"count": 1000, "delay": 0.01}})  # the meter took more readings meanwhile
        hub.start()  # no uplink: its configuration comes from its own outbox
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        await _until(lambda: hub.cursor("meter-e2e") == 1000, max(OUTAGE_SECONDS, 120), "the meter's 1,000 records in the hub")
        assert hub.counter("refused_full") == 0
        await asyncio.sleep(max(0.0, outage_ends - time.monotonic()))
        assert await central_count(timescale_url, "patient-e2e") == before_outage  # nothing went upstream during the outage
        assert hub.alive(), hub.log()[-3000:]

        broker.start()
        await _until(lambda: hub.held() == 0, 120, "the hub's outbox drained")
        await _until(lambda: _count_is(timescale_url, 1000), 60, "1,000 readings in the central database")
        await asyncio.sleep(2)  # a late duplicate would show up here
        assert await central_count(timescale_url, "patient-e2e") == 1000
        store = await open_store(DatabaseSettings(url=timescale_url))
        try:
            assert await store.list_quarantine(10) == []
            (hub_row,) = await store.list_hubs()
        finally:
            await store.close()
        assert hub_row.hub_id == "hub-e2e"
        assert hub_row.online
        assert hub_row.clock_skew_seconds is not None
        assert abs(hub_row.clock_skew_seconds) < 1  # same machine, same clock
    finally:
        hub.stop()
        gateway.stop()
        broker.stop()
    assert "EDGE OUTBOX FULL" not in hub.log()


async def _count_is(url: str, want: int) -> bool:
    return await central_count(url, "patient-e2e") == want
