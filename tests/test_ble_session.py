"""The bleak session manager against fake peripherals behind bleak's real client interface.

Deliveries go through the real ingest pipeline into the real TimescaleDB, as MQTT ones do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from device_adapters.ble.context import ClockBook
from device_adapters.ble.decoder import SOURCE, BleFrameDecoder
from device_adapters.ble.session import BleSessionManager, MemoryCursors, PairedDevice, racp_request_after
from edge_config import IngestSettings
from fhir_mapper.validation import validate_resource
from gateway.pipeline import IngestPipeline
from gateway.storage import ObservationQuery, ObservationStore
from tests.fake_ble import FakePeripheral, connect_fake
from tests.fake_glucose import GlucoseMeter

BLOOD_PRESSURE = 0x1810


@contextlib.asynccontextmanager
async def running(store: ObservationStore, manager: BleSessionManager, clocks: ClockBook) -> AsyncIterator[IngestPipeline]:
    pipeline = IngestPipeline(store, IngestSettings(batch_size=100, batch_wait_ms=5), decoders={SOURCE: BleFrameDecoder(clocks)})

    async def feed() -> None:
        async for delivery in manager:
            await pipeline.submit(delivery)

    tasks = [asyncio.create_task(pipeline.run()), asyncio.create_task(feed())]
    try:
        yield pipeline
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _register(store: ObservationStore, device_id: str) -> None:
    await store.add_patient("ble-patient", "Ble Patient", None)
    await store.add_device(device_id, None, None)
    await store.assign_device(device_id, "ble-patient", None)


async def _wait_rows(store: ObservationStore, want: int, timeout: float = 30) -> list[Any]:
    async with asyncio.timeout(timeout):
        while True:
            rows = await store.search_observations(ObservationQuery(patient_id="ble-patient", count=1000))
            if len(rows) >= want:
                return rows
            await asyncio.sleep(0.05)


def test_racp_requests_resume_after_the_cursor() -> None:
    assert racp_request_after(None) == bytes.fromhex("01 01")  # V-RACP-D1
    assert racp_request_after(9) == bytes.fromhex("01 03 01 0A 00")  # V-RACP-D3: sequence >= 10


async def test_blood_pressure_cuff_indications_reach_the_store(timescale_store: ObservationStore) -> None:
    await _register(timescale_store, "cuff-ble")
    cuff = FakePeripheral(
        "AA:00:00:00:00:01", BLOOD_PRESSURE, {0x2A35: ["indicate"], 0x2A36: ["notify"], 0x2A19: ["read"]}, {0x2A19: b"\x55"}
    )
    cuff.refuse_connections = 1  # not in range at first: the manager retries
    clocks = ClockBook()
    manager = BleSessionManager([PairedDevice("cuff-ble", cuff.address)], connect_fake, clocks, MemoryCursors())
    async with running(timescale_store, manager, clocks):
        async with asyncio.timeout(10):
            while not cuff.subscriptions:
                await asyncio.sleep(0.01)
        cuff.notify(0x2A36, bytes.fromhex("00 64 00 FF 07 FF 07"))  # cuff inflating: never stored
        cuff.notify(0x2A35, bytes.fromhex("1E 78 00 50 00 5D 00 E8 07 01 02 03 04 05 48 00 01 00 00"))
        rows = await _wait_rows(timescale_store, 3)
    kinds = sorted(orjson.loads(row.resource)["code"]["coding"][0]["code"] for row in rows)
    assert kinds == ["67996", "85354-9", "8867-4"]  # battery read at connection, then the panel and the pulse
    for row in rows:
        validate_resource(row.resource.encode())
    assert manager.connections["cuff-ble"] == 1


@pytest.mark.parametrize("records", [500])
async def test_glucose_meter_disconnecting_mid_download_stores_every_record_once(
    timescale_store: ObservationStore, records: int
) -> None:
    await _register(timescale_store, "meter-ble")
    meter = GlucoseMeter("AA:00:00:00:00:02", records, drop_after=180)
    clocks = ClockBook()
    cursors = MemoryCursors()
    manager = BleSessionManager(
        [PairedDevice("meter-ble", meter.address)],
        connect_fake,
        clocks,
        cursors,
        on_device_information=timescale_store.update_device_information,
    )
    async with running(timescale_store, manager, clocks):
        rows = await _wait_rows(timescale_store, records, timeout=60)
        await asyncio.sleep(0.3)
        rows = await timescale_store.search_observations(ObservationQuery(patient_id="ble-patient", count=1000))
    assert len(rows) == records
    assert len({row.reading_key for row in rows}) == records
    assert manager.connections["meter-ble"] >= 2
    assert meter.requests[0] == b"\x01\x01"
    resumed_from = int.from_bytes(meter.requests[1][3:5], "little")
    assert 1 < resumed_from <= 181  # the second download starts after what was committed, not from scratch
    assert cursors.last("meter-ble") == records
    assert manager.device_information["meter-ble"] == {"manufacturer": "Acme Health"}
    assert await timescale_store.device_information("meter-ble") == {"manufacturer": "Acme Health"}
    first = orjson.loads(min(rows, key=lambda row: row.time).resource)
    assert first["code"]["coding"][0]["code"] == "41653-7"
    assert first["valueQuantity"]["value"] == 95
