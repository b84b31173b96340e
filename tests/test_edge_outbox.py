"""The hub's outbox on a real SQLite file: the PHD duplicate filter, the budget, cursors, packs; hub rows in both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

from device_adapters.mqtt.native import decode_payload, encode_reading
from device_adapters.readings import Quantity, Reading
from gateway.edge.forwarder import packs_of
from gateway.edge.outbox import EdgeOutbox, Intake, OutboxReading
from gateway.storage import ObservationStore
from gateway.storage.hubs import DeviceReport, HubHeartbeat

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _reading(minute: int, device_time: str | None = None) -> OutboxReading:
    reading = Reading(
        "meter-1", "blood_glucose", T0 + timedelta(minutes=minute), Quantity(Decimal(95), "mg/dL"), device_time=device_time
    )
    return OutboxReading("meter-1", "patient-1", reading.kind, reading.time, encode_reading(reading), device_time)


async def test_records_a_device_sends_again_are_dropped_and_the_cursor_moves_with_the_commit(tmp_path: Path) -> None:
    outbox = await EdgeOutbox.open(tmp_path / "outbox.db", 1 << 20)
    try:
        first = await outbox.commit([Intake([_reading(m)], {"meter-1": m}) for m in (1, 2, 3)])
        again = await outbox.commit([Intake([_reading(m)], {"meter-1": m}) for m in (2, 3, 4)])
        assert (first.stored, first.duplicates, again.stored, again.duplicates) == (3, 0, 1, 2)
        assert outbox.cursors == {"meter-1": 4}
        pending = await outbox.oldest(10)
        assert [orjson.loads(item.body)["time"] for item in pending] == [
            (T0 + timedelta(minutes=m)).isoformat() for m in (1, 2, 3, 4)
        ]
        await outbox.remove([item.seq for item in pending[:2]])
        assert (outbox.depth, outbox.counters["forwarded"]) == (2, 2)
    finally:
        await outbox.close()
    reopened = await EdgeOutbox.open(tmp_path / "outbox.db", 1 << 20)
    try:  # what was committed survives; the filter still knows what it accepted
        assert (reopened.depth, reopened.cursors, reopened.counters["duplicates_dropped"]) == (2, {"meter-1": 4}, 2)
        assert (await reopened.commit([Intake([_reading(4)])])).duplicates == 1
    finally:
        await reopened.close()


async def test_a_device_clock_read_again_later_does_not_make_an_old_record_new(tmp_path: Path) -> None:
    outbox = await EdgeOutbox.open(tmp_path / "outbox.db", 1 << 20)
    try:
        await outbox.commit([Intake([_reading(0, "2024-03-14T00:05:00")])])
        # The same stored record anchored an hour later on a new connection: its device time decides.
        result = await outbox.commit(
            [Intake([_reading(60, "2024-03-14T00:05:00")]), Intake([_reading(61, "2024-03-14T00:06:00")])]
        )
        assert (result.stored, result.duplicates) == (1, 1)
    finally:
        await outbox.close()


async def test_a_full_budget_commits_the_oldest_that_fit_and_refuses_the_rest(tmp_path: Path) -> None:
    size = len(_reading(1).body)
    outbox = await EdgeOutbox.open(tmp_path / "outbox.db", size * 3 + 1)
    try:
        result = await outbox.commit([Intake([_reading(m)], {"meter-1": m}) for m in range(1, 6)])
        assert (result.accepted, result.stored) == (3, 3)
        assert result.reason is not None
        assert "budget" in result.reason
        assert (outbox.cursors, outbox.counters["refused_full"], outbox.full_since is not None) == ({"meter-1": 3}, 2, True)
        await outbox.remove([item.seq for item in await outbox.oldest(1)])
        assert outbox.full_since is None
        assert (await outbox.commit([Intake([_reading(4)], {"meter-1": 4})])).accepted == 1
    finally:
        await outbox.close()


async def test_packs_group_a_device_oldest_first_and_decode_as_native_readings(tmp_path: Path) -> None:
    outbox = await EdgeOutbox.open(tmp_path / "outbox.db", 1 << 20)
    try:
        await outbox.commit([Intake([_reading(m, f"2024-03-14T00:{m:02d}:00")]) for m in range(7)])
        packs = packs_of(await outbox.oldest(100), 3)
    finally:
        await outbox.close()
    assert [len(pack.seqs) for pack in packs] == [3, 3, 1]
    decoded = decode_payload(packs[0].payload, "meter-1")
    assert [reading.device_time for reading in decoded.readings] == [
        "2024-03-14T00:00:00",
        "2024-03-14T00:01:00",
        "2024-03-14T00:02:00",
    ]
    assert decoded.rejections == ()


async def test_hub_pairings_and_heartbeats_in_both_stores(store: ObservationStore) -> None:
    await store.add_device("meter-9", None, None)
    await store.pair_hub_device("hub-9", "meter-9", "AA:BB", T0)
    await store.pair_hub_device("hub-8", "meter-9", "AA:CC", T0)  # one hub per device: pairing moves it
    assert [(d.hub_id, d.address) for d in await store.hub_devices()] == [("hub-8", "AA:CC")]
    beat = HubHeartbeat(
        "hub-8",
        T0,
        "0.1.0",
        4,
        0.25,
        ("outbox_full",),
        (DeviceReport("meter-9", connected=True, battery_percent=80, rssi=None, last_seen_at=T0),),
    )
    await store.record_hub_heartbeat(beat)
    await store.record_hub_heartbeat(
        HubHeartbeat(
            "hub-9",
            T0,
            "0.1.0",
            0,
            None,
            (),
            (DeviceReport("meter-9", connected=False, battery_percent=5, rssi=None, last_seen_at=T0),),
        )
    )
    (device,) = await store.hub_devices(["hub-8"])
    assert (device.connected, device.battery_percent, device.last_seen_at) == (True, 80, T0)  # hub-9 cannot write it
    hubs = {hub.hub_id: hub for hub in await store.list_hubs()}
    assert (hubs["hub-8"].queue_depth, hubs["hub-8"].alarms, hubs["hub-8"].clock_skew_seconds) == (4, ("outbox_full",), 0.25)
    await store.record_hub_presence("hub-8", False, T0)  # noqa: FBT003 - the state itself
    assert not {hub.hub_id: hub for hub in await store.list_hubs()}["hub-8"].online
    assert await store.unpair_hub_device("hub-8", "meter-9")
    assert await store.hub_devices() == []
