"""The live event bus: bounded per-subscriber queues with gap markers, patient filtering, events from ingest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from device_adapters.readings import Delivery, RawFrame
from edge_config import IngestSettings
from gateway.events import AlertEvent, Delivered, EventBus, Gap, ObservationEvent, only_patients, visible_to
from gateway.pipeline import IngestPipeline
from gateway.storage import ObservationStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _event(patient: str, value: int) -> ObservationEvent:
    return ObservationEvent(patient, "heart_rate", f"key-{patient}-{value}", NOW, Decimal(value), "/min")


async def _drain(subscription: AsyncIterable[Delivered], count: int) -> list[Delivered]:
    received: list[Delivered] = []
    async for event in subscription:
        received.append(event)
        if len(received) == count:
            break
    return received


async def test_a_slow_subscriber_loses_its_oldest_events_and_is_told_how_many() -> None:
    bus = EventBus(queue_size=3)
    async with bus.subscribe() as slow, bus.subscribe(queue_size=100) as fast:
        for value in range(10):
            bus.publish(_event("ada", value))  # never waits, however far behind ``slow`` is
        assert await _drain(slow, 4) == [Gap(7), _event("ada", 7), _event("ada", 8), _event("ada", 9)]
        assert slow.lost_total == 7
        assert await _drain(fast, 10) == [_event("ada", value) for value in range(10)]
        bus.publish(_event("ada", 10))
        assert await _drain(slow, 1) == [_event("ada", 10)]  # no gap once it caught up
    assert bus.subscribers == 0


async def test_a_subscriber_limited_to_patients_sees_only_theirs_and_filtering_is_pure() -> None:
    alert = AlertEvent("a-1", "bob", "open", "threshold", "heart_rate", "medium", NOW, "heart rate 150 /min above 130")
    events: list[Delivered] = [_event("ada", 1), alert, Gap(2), _event("cy", 3)]
    assert only_patients(events, {"bob"}) == [alert, Gap(2)]
    assert only_patients(events, None) == events
    assert not visible_to(_event("ada", 1), set())

    bus = EventBus()
    async with bus.subscribe(patients={"bob"}) as bob:
        bus.publish(_event("ada", 1))
        bus.publish(alert)
        assert await _drain(bob, 1) == [alert]
        assert bob.pending == 0


async def test_waiting_subscribers_wake_on_publish_and_end_when_the_bus_closes() -> None:
    bus = EventBus()
    async with bus.subscribe() as subscription:
        waiting = asyncio.create_task(_drain(subscription, 2))
        await asyncio.sleep(0)
        bus.publish(_event("ada", 1))
        bus.close()
        assert await asyncio.wait_for(waiting, 5) == [_event("ada", 1)]  # drained, then iteration ended
    async with bus.subscribe() as late:
        assert await asyncio.wait_for(_drain(late, 1), 5) == []


async def test_ingest_publishes_only_newly_stored_readings_after_the_commit(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    await store.add_device("cuff-1", "cuff", None)
    await store.assign_device("cuff-1", "ada", None)
    bus = EventBus()
    pipeline = IngestPipeline(store, IngestSettings(), events=bus)
    at = NOW - timedelta(minutes=5)
    payload = [
        {"type": "blood_pressure", "components": {"systolic": 131, "diastolic": 84}, "unit": "mmHg", "time": at.isoformat()},
        {"type": "pulse_rate", "value": 64, "unit": "bpm", "time": at.isoformat()},
        {"type": "pulse_rate", "value": 999, "unit": "bpm", "time": at.isoformat()},  # implausible: quarantined
    ]
    frame = RawFrame("mqtt", "pulsebridge/v1/devices/cuff-1/readings", orjson.dumps(payload), NOW)
    async with bus.subscribe() as subscription:
        await pipeline.store_until_committed([Delivery(frame, lambda: None)])
        await pipeline.store_until_committed([Delivery(frame, lambda: None)])  # redelivered: nothing new
        assert subscription.pending == 2
        pressure, pulse = await _drain(subscription, 2)
    assert isinstance(pressure, ObservationEvent)
    assert isinstance(pulse, ObservationEvent)
    assert (pressure.patient_id, pressure.kind, pressure.value, pressure.device_id) == ("ada", "blood_pressure", None, "cuff-1")
    assert (pressure.component("systolic"), pressure.component("diastolic"), pressure.component("mean")) == (
        Decimal(131),
        Decimal(84),
        None,
    )
    assert (pulse.kind, pulse.value, pulse.unit, pulse.time) == ("pulse_rate", Decimal(64), "/min", at)
    assert bus.published == 2
