"""The push outbox on both stores: only new readings are queued, rows are leased, and no two workers hold one row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from device_adapters.readings import Delivery, Quantity, RawFrame, Reading
from edge_config import DatabaseSettings, DestinationSettings, IngestSettings
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from gateway.pipeline import IngestPipeline
from gateway.storage import ObservationStore, open_store
from gateway.storage.outbox import OutboxEntry, OutboxOutcome
from tests.services import cli

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
LEASE = timedelta(minutes=5)


def _observations(count: int, patient: str = "pat-a", kind: str = "heart_rate") -> list[MappedObservation]:
    who = Attribution(patient, uuid.UUID(int=7), "watch-7")
    return [
        map_reading(
            Reading("watch-7", kind, T0 + timedelta(minutes=m), quantity=Quantity(Decimal(60 + m), "/min")),
            who,
            NOW,
            source="mqtt",
        )
        for m in range(count)
    ]


def _entries(observations: list[MappedObservation], *destinations: str) -> list[OutboxEntry]:
    return [OutboxEntry(o.key, o.time, d, o.patient_id) for d in destinations for o in observations]


async def test_only_new_readings_are_queued_once_per_destination(store: ObservationStore) -> None:
    first = _observations(3)
    await store.write_batch(first, [], _entries(first, "ehr-a", "ehr-b"))
    again = _observations(4)  # three already stored, one new
    await store.write_batch(again, [], _entries(again, "ehr-a", "ehr-b"))
    counts = {(c.destination, c.status): c.count for c in await store.outbox_status()}
    assert counts == {("ehr-a", "pending"): 4, ("ehr-b", "pending"): 4}


async def test_claimed_rows_are_leased_then_finished(store: ObservationStore) -> None:
    observations = _observations(3)
    await store.write_batch(observations, [], _entries(observations, "ehr-a"))
    now = datetime.now(UTC) + timedelta(seconds=1)  # rows are due from when they were queued
    claimed = await store.claim_outbox("ehr-a", 2, now, LEASE, consent="implied")
    assert [(item.reading_key, item.attempts) for item in claimed] == [(uuid.UUID(o.key), 1) for o in observations[:2]]
    assert orjson.loads(claimed[0].resource)["id"] == observations[0].key
    assert [item.reading_key for item in await store.claim_outbox("ehr-a", 10, now, LEASE, consent="implied")] == [
        uuid.UUID(observations[2].key)
    ]
    assert await store.claim_outbox("ehr-a", 10, now, LEASE, consent="implied") == []  # all leased
    assert await store.claim_outbox("ehr-b", 10, now, LEASE, consent="implied") == []  # another destination's queue

    refusal = '{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}'
    await store.finish_outbox(
        [
            (claimed[0].id, OutboxOutcome("done", http_status=201)),
            (claimed[1].id, OutboxOutcome("dead", "unknown patient", None, 422, refusal)),
        ],
        now,
    )
    retry_at = now + timedelta(seconds=30)
    third = (await store.claim_outbox("ehr-a", 10, now + LEASE, LEASE, consent="implied"))[0]  # its lease ran out: claimed again
    assert third.attempts == 2
    await store.finish_outbox([(third.id, OutboxOutcome("pending", "503", retry_at))], now + LEASE)
    status = {(c.status): (c.count, c.oldest_due) for c in await store.outbox_status()}
    assert status == {"dead": (1, None), "done": (1, None), "pending": (1, retry_at)}
    assert await store.claim_outbox("ehr-a", 10, retry_at - timedelta(seconds=1), LEASE, consent="implied") == []
    assert len(await store.claim_outbox("ehr-a", 10, retry_at, LEASE, consent="implied")) == 1

    [dead] = await store.dead_letters(None, 0, 10)
    assert (dead.id, dead.reading_key, dead.http_status, dead.operation_outcome) == (
        claimed[1].id, uuid.UUID(observations[1].key), 422, refusal
    )  # fmt: skip
    assert await store.dead_letters("ehr-b", 0, 10) == []
    assert await store.dead_letters(None, dead.id, 10) == []  # paged by id
    [backlog] = await store.outbox_backlog()
    assert (backlog.destination, backlog.pending) == ("ehr-a", 1)


async def test_dead_letters_are_replayed_by_id_or_all_at_once(store: ObservationStore) -> None:
    observations = _observations(3)
    await store.write_batch(observations, [], _entries(observations, "ehr-a", "ehr-b"))
    now = datetime.now(UTC) + timedelta(seconds=1)
    claimed = [
        *await store.claim_outbox("ehr-a", 10, now, LEASE, consent="implied"),
        *await store.claim_outbox("ehr-b", 10, now, LEASE, consent="implied"),
    ]
    await store.finish_outbox([(item.id, OutboxOutcome("dead", "422")) for item in claimed], now)
    assert await store.replay_dead_letters([claimed[0].id], None, now) == 1
    assert await store.replay_dead_letters([claimed[0].id], None, now) == 0  # no longer dead
    assert await store.replay_dead_letters(None, "ehr-b", now) == 3
    assert {(c.destination, c.status): c.count for c in await store.outbox_status()} == {
        ("ehr-a", "dead"): 2, ("ehr-a", "pending"): 1, ("ehr-b", "pending"): 3,
    }  # fmt: skip
    again = await store.claim_outbox("ehr-b", 10, now, LEASE, consent="implied")
    assert sorted(item.reading_key for item in again) == sorted(uuid.UUID(o.key) for o in observations)


def test_an_outcome_says_when_to_retry_exactly_when_it_is_a_retry() -> None:
    with pytest.raises(ValueError, match="retry_at"):
        OutboxOutcome("pending")
    with pytest.raises(ValueError, match="retry_at"):
        OutboxOutcome("done", retry_at=NOW)


async def test_concurrent_workers_never_hold_the_same_row(timescale_store: ObservationStore, timescale_url: str) -> None:
    observations = _observations(200)
    await timescale_store.write_batch(observations, [], _entries(observations, "ehr-a"))
    workers = [await open_store(DatabaseSettings(url=timescale_url)) for _ in range(4)]
    now = datetime.now(UTC) + timedelta(seconds=1)
    try:
        claims = await asyncio.gather(
            *(worker.claim_outbox("ehr-a", 30, now, LEASE, consent="implied") for worker in workers for _ in range(2))
        )
    finally:
        for worker in workers:
            await worker.close()
    ids = [item.id for claim in claims for item in claim]
    assert len(ids) == len(set(ids)) == 200


async def test_the_pipeline_queues_what_each_destination_takes(timescale_store: ObservationStore) -> None:
    await timescale_store.add_patient("pat-a", None, None)
    await timescale_store.add_patient("pat-b", None, None)
    for device, patient in (("watch-a", "pat-a"), ("watch-b", "pat-b")):
        await timescale_store.add_device(device, "watch", None)
        await timescale_store.assign_device(device, patient, None)
    destinations = [
        DestinationSettings(name="everything", base_url="https://ehr.example/fhir"),
        DestinationSettings(name="cardiology", base_url="https://cardio.example/fhir", kinds=["heart_rate"], patients=["pat-a"]),
        DestinationSettings(name="paused", base_url="https://old.example/fhir", enabled=False),
    ]
    pipeline = IngestPipeline(timescale_store, IngestSettings(), destinations=destinations)
    frames = []
    for device in ("watch-a", "watch-b"):
        payload = orjson.dumps([
            {"type": "heart_rate", "value": 61, "unit": "/min", "time": "2026-11-22T08:00:00Z"},
            {"type": "spo2", "value": 97, "unit": "%", "time": "2026-11-22T08:00:00Z"},
        ])  # fmt: skip
        frames.append(Delivery(RawFrame("mqtt", f"pulsebridge/v1/devices/{device}/readings", payload, NOW), lambda: None))
    await pipeline.store_until_committed(frames)
    await pipeline.store_until_committed(frames)  # redelivered: stored once, queued once
    counts = {c.destination: c.count for c in await timescale_store.outbox_status()}
    assert counts == {"everything": 4, "cardiology": 1}


async def test_outbox_status_on_the_command_line(timescale_store: ObservationStore, timescale_url: str) -> None:
    env = {"PULSEBRIDGE_DATABASE__URL": timescale_url}
    empty = await asyncio.to_thread(cli, env, "outbox", "status")
    assert (empty.returncode, empty.stdout) == (0, "the outbox is empty\n")
    observations = _observations(2)
    await timescale_store.write_batch(observations, [], _entries(observations, "ehr-a"))
    shown = await asyncio.to_thread(cli, env, "outbox", "status")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("ehr-a\tpending\t2, oldest due ")
