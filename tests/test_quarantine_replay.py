"""Quarantined inputs replayed after the cause is fixed: stored once, the row gone (or counted again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson

from device_adapters.readings import Delivery, RawFrame
from edge_config import DatabaseSettings, IngestSettings
from gateway.pipeline import IngestPipeline
from gateway.quarantine import replay
from gateway.storage import ObservationQuery, ObservationStore, open_store
from tests.services import cli

TOPIC = "pulsebridge/v1/devices/late-device/readings"
PAYLOAD = orjson.dumps({"type": "heart_rate", "value": 64, "unit": "/min", "time": "2026-11-22T09:00:00Z"})


async def test_an_unknown_device_is_replayed_once_registered(store: ObservationStore) -> None:
    pipeline = IngestPipeline(store, IngestSettings())
    await pipeline.store_until_committed([Delivery(RawFrame("mqtt", TOPIC, PAYLOAD, datetime.now(UTC)), lambda: None)])
    (row,) = await store.list_quarantine(10, "unknown_device")
    assert await store.get_quarantine(row.id) == row

    still = await replay(store, pipeline, row)  # nothing fixed yet: the same failure counts once more
    assert (still.resolved, still.still_quarantined) == (False, ("unknown_device",))
    (again,) = await store.list_quarantine(10)
    assert again.seen_count == 2

    await store.add_patient("late-patient", None, None)
    await store.add_device("late-device", None, None)
    await store.assign_device("late-device", "late-patient", None)
    outcome = await replay(store, pipeline, again)
    assert (outcome.stored, outcome.resolved, outcome.still_quarantined) == (1, True, ())
    assert await store.list_quarantine(10) == []
    assert len(await store.search_observations(ObservationQuery(patient_id="late-patient"))) == 1
    assert (await replay(store, pipeline, again)).duplicates == 1  # replaying a stale copy stores nothing twice


def test_quarantine_show_and_replay_commands(tmp_path: Path) -> None:
    env = {"PULSEBRIDGE_DATABASE__URL": f"sqlite:///{tmp_path / 'q.db'}"}
    assert cli(env, "migrate").returncode == 0

    async def quarantine_one() -> None:
        store = await open_store(DatabaseSettings(url=env["PULSEBRIDGE_DATABASE__URL"]))
        await IngestPipeline(store, IngestSettings()).store_until_committed(
            [Delivery(RawFrame("mqtt", TOPIC, b"\xff not utf-8", datetime.now(UTC)), lambda: None)]
        )
        await store.close()

    asyncio.run(quarantine_one())
    listed = cli(env, "quarantine", "list", "--reason", "malformed_json")
    assert listed.returncode == 0
    assert "malformed_json" in listed.stdout
    shown = cli(env, "quarantine", "show", "1")
    assert "reason: malformed_json" in shown.stdout
    assert "(not UTF-8) ff 20 6e 6f 74" in shown.stdout
    replayed = cli(env, "quarantine", "replay", "1")
    assert replayed.returncode == 0
    assert "still refused: malformed_json" in replayed.stdout
    assert cli(env, "quarantine", "show", "99").returncode == 2
    assert cli(env, "quarantine", "replay").returncode == 2
