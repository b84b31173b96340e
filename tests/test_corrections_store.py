"""Corrections on both stores: one transaction rewriting the reading, keeping its old version and queueing updates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import orjson
import pytest

from device_adapters.readings import Quantity, Reading
from fhir_mapper.corrections import Correction, CorrectionError, correct
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from fhir_mapper.plausibility import PlausibilityPolicy
from gateway.storage import (
    ExportQuery,
    LastNQuery,
    MaintenancePass,
    ObservationQuery,
    ObservationStore,
    RetentionPlan,
    VitalsQuery,
)
from gateway.storage.consent import ConsentMode
from gateway.storage.corrections import Reviser, Revision, StoredReading
from gateway.storage.outbox import OutboxEntry, OutboxOutcome

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
RECEIVED = T0 + timedelta(minutes=30)
LEASE = timedelta(minutes=5)
DESTINATIONS: dict[str, ConsentMode] = {"ehr-a": "implied", "ehr-b": "implied", "ehr-never": "implied"}


def _readings(patient: str = "ada") -> list[MappedObservation]:
    who = Attribution(patient, uuid.UUID(int=7), "watch-1")
    return [
        map_reading(
            Reading("watch-1", "heart_rate", T0 + timedelta(minutes=m), quantity=Quantity(Decimal(value), "/min")),
            who,
            RECEIVED,
            source="mqtt",
        )
        for m, value in enumerate(("60", "72", "180"))
    ]


def _reviser(correction: Correction, author: str = "Practitioner/dr-who", now: datetime = RECEIVED) -> Reviser:
    def revise(row: StoredReading) -> Revision:
        corrected = correct(
            row.resource, kind_name=row.kind, unit=row.unit, value=row.value, status=row.status, correction=correction,
            author=author, now=now, plausibility=PlausibilityPolicy(),
        )  # fmt: skip
        return Revision(correction.action, correction.reason, author, corrected.status, corrected.value, corrected.resource)

    return revise


async def _seeded(store: ObservationStore) -> list[MappedObservation]:
    """Three readings of ada: ehr-a and ehr-b take the first two, ehr-b also the third; ehr-never takes none."""
    await store.add_patient("ada", None, None)
    readings = _readings()
    entries = [
        *(OutboxEntry(o.key, o.time, "ehr-a", o.patient_id) for o in readings[:2]),
        *(OutboxEntry(o.key, o.time, "ehr-b", o.patient_id) for o in readings),
    ]
    await store.write_batch(readings, [], entries)
    return readings


async def _updates(store: ObservationStore, destination: str) -> list[tuple[uuid.UUID, str, str]]:
    now = datetime.now(UTC) + timedelta(hours=1)
    claimed = await store.claim_outbox(destination, 100, now, LEASE, consent="implied")
    return [(item.reading_key, item.action, orjson.loads(item.resource)["status"]) for item in claimed if item.action == "update"]


async def test_an_amendment_rewrites_the_reading_and_queues_updates_where_it_was_sent(store: ObservationStore) -> None:
    readings = await _seeded(store)
    now = T0 + timedelta(days=1, microseconds=7)
    target = readings[2]
    outcome = await store.correct_observation(
        uuid.UUID(target.key), _reviser(Correction("amend", "artefact", Decimal(80)), now=now), DESTINATIONS, now
    )
    assert outcome is not None
    assert outcome.queued == ("ehr-b",)  # only ehr-b had this reading; ehr-never had none of them
    served = await store.get_observation(uuid.UUID(target.key))
    assert served is not None
    resource = orjson.loads(served)
    assert (resource["status"], resource["valueQuantity"]["value"]) == ("amended", 80)
    assert resource["meta"]["lastUpdated"] == "2026-11-23T08:00:00.000007Z"
    assert resource["note"][0]["text"] == "Amended from 180 beats/minute to 80 beats/minute: artefact"
    [found] = await store.search_observations(ObservationQuery(reading_keys=frozenset({uuid.UUID(target.key)})))
    assert orjson.loads(found.resource) == resource
    # meta.lastUpdated is the correction: _lastUpdated and _since see it.
    since = await store.export_page(ExportQuery("ada", since=now))
    assert [(row.reading_key, row.value, row.status) for row in since] == [(uuid.UUID(target.key), Decimal(80), "amended")]

    updates = await _updates(store, "ehr-b")
    assert updates == [(uuid.UUID(target.key), "update", "amended")]
    assert await _updates(store, "ehr-a") == []


async def test_entered_in_error_leaves_series_lastn_and_rollups(store: ObservationStore) -> None:
    readings = await _seeded(store)
    hour = VitalsQuery("ada", "heart_rate", T0, T0 + timedelta(hours=1), timedelta(hours=1))
    plan = RetentionPlan(default_before=None)
    await store.run_maintenance(MaintenancePass(RECEIVED + timedelta(minutes=1), plan))
    [before] = await store.vitals_series(hour)
    assert (before.count, before.max, before.last) == (3, 180.0, 180.0)

    now = datetime.now(UTC)
    wrong, amended = readings[2], readings[1]
    await store.correct_observation(uuid.UUID(wrong.key), _reviser(Correction("entered-in-error", "visitor")), DESTINATIONS, now)
    await store.correct_observation(uuid.UUID(amended.key), _reviser(Correction("amend", "typo", Decimal(70))), DESTINATIONS, now)

    [after] = await store.vitals_series(hour)
    assert (after.count, after.min, after.max, after.last) == (2, 60.0, 70.0, 70.0)
    latest = await store.last_observations(LastNQuery("ada", frozenset({"heart_rate"})))
    assert [(row.reading_key, orjson.loads(row.resource)["valueQuantity"]["value"]) for row in latest] == [
        (uuid.UUID(amended.key), 70)
    ]
    assert len(await store.search_observations(ObservationQuery(patient_id="ada"))) == 3  # search still shows it
    exported = await store.export_page(ExportQuery("ada"))
    assert [row.status for row in exported] == ["final", "amended", "entered-in-error"]

    await store.run_maintenance(MaintenancePass(now + timedelta(minutes=1), plan))
    [rollup] = await store.hourly_rollups("ada", "heart_rate", T0, T0 + timedelta(hours=1))
    assert (rollup.count, rollup.max, rollup.last) == (2, 70.0, 70.0)

    await store.correct_observation(uuid.UUID(readings[0].key), _reviser(Correction("entered-in-error", "x")), {}, now)
    await store.correct_observation(uuid.UUID(readings[1].key), _reviser(Correction("entered-in-error", "x")), {}, now)
    await store.run_maintenance(MaintenancePass(now + timedelta(minutes=2), plan))
    assert await store.hourly_rollups("ada", "heart_rate", T0, T0 + timedelta(hours=1)) == []  # nothing left that counts
    assert await store.vitals_series(hour) == []
    assert await store.last_observations(LastNQuery("ada", frozenset({"heart_rate"}))) == []


async def test_several_updates_queue_and_consent_still_decides(store: ObservationStore) -> None:
    readings = await _seeded(store)
    key = uuid.UUID(readings[0].key)
    now = datetime.now(UTC)
    for value in (61, 62):
        outcome = await store.correct_observation(key, _reviser(Correction("amend", "x", Decimal(value))), DESTINATIONS, now)
        assert outcome is not None
        assert outcome.queued == ("ehr-a", "ehr-b")
    await store.set_consent("ada", "ehr-a", "revoked", "Patient/ada", now)
    outcome = await store.correct_observation(key, _reviser(Correction("amend", "x", Decimal(63))), DESTINATIONS, now)
    assert outcome is not None
    assert outcome.queued == ("ehr-b",)  # revoked: no update is queued either
    # ehr-b has 3 creates and 3 updates pending; claiming them hands out each row once, each with the latest value.
    claimed = await store.claim_outbox("ehr-b", 100, datetime.now(UTC) + timedelta(hours=1), LEASE, consent="implied")
    assert sorted(item.action for item in claimed) == ["create"] * 3 + ["update"] * 3
    assert {orjson.loads(item.resource)["valueQuantity"]["value"] for item in claimed if item.reading_key == key} == {63}
    # ehr-a's two pending updates (and its creates) are refused at claim time: consent was revoked since.
    assert await store.claim_outbox("ehr-a", 100, datetime.now(UTC) + timedelta(hours=1), LEASE, consent="implied") == []


async def test_a_create_that_was_done_or_dead_still_gets_its_update(store: ObservationStore) -> None:
    readings = await _seeded(store)
    now = datetime.now(UTC) + timedelta(seconds=1)
    claimed = await store.claim_outbox("ehr-a", 100, now, LEASE, consent="implied")
    await store.finish_outbox([(claimed[0].id, OutboxOutcome("done")), (claimed[1].id, OutboxOutcome("dead", "422"))], now)
    for observation in readings[:2]:
        outcome = await store.correct_observation(
            uuid.UUID(observation.key), _reviser(Correction("entered-in-error", "x")), {"ehr-a": "implied"}, now
        )
        assert outcome is not None
        assert outcome.queued == ("ehr-a",)


async def test_a_refused_correction_writes_nothing(store: ObservationStore) -> None:
    readings = await _seeded(store)
    key = uuid.UUID(readings[0].key)
    before = await store.get_observation(key)
    with pytest.raises(CorrectionError):
        await store.correct_observation(key, _reviser(Correction("amend", "x", Decimal(900))), DESTINATIONS, T0)
    assert await store.get_observation(key) == before
    assert await _updates(store, "ehr-a") == []
    assert await store.correct_observation(uuid.uuid4(), _reviser(Correction("entered-in-error", "x")), DESTINATIONS, T0) is None
    await store.correct_observation(key, _reviser(Correction("entered-in-error", "x")), DESTINATIONS, T0)
    with pytest.raises(CorrectionError, match="not corrected again"):
        await store.correct_observation(key, _reviser(Correction("entered-in-error", "y")), DESTINATIONS, T0)


async def test_the_version_a_correction_replaced_is_kept_and_goes_with_retention(
    timescale_store: ObservationStore, timescale_url: str
) -> None:
    readings = await _seeded(timescale_store)
    key = uuid.UUID(readings[0].key)
    await timescale_store.correct_observation(key, _reviser(Correction("amend", "typo", Decimal(59))), DESTINATIONS, T0)
    await timescale_store.set_consent("ada", "ehr-a", "granted", "Patient/ada", T0)
    connection = await asyncpg.connect(timescale_url)
    try:
        rows = await connection.fetch("SELECT action, reason, corrected_by, previous_resource::text AS previous FROM "
                                      "observation_corrections")  # fmt: skip
        assert [(row["action"], row["reason"], row["corrected_by"]) for row in rows] == [("amend", "typo", "Practitioner/dr-who")]
        assert orjson.loads(rows[0]["previous"]) == orjson.loads(readings[0].resource)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await connection.execute("UPDATE observation_corrections SET reason = 'other'")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await connection.execute("DELETE FROM consent_events")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await connection.execute("UPDATE consent_events SET status = 'revoked'")
        cutoff = T0 + timedelta(hours=1)
        await timescale_store.run_maintenance(MaintenancePass(T0 + timedelta(days=2), RetentionPlan(default_before=cutoff)))
        assert await connection.fetchval("SELECT count(*) FROM observation_corrections") == 0
    finally:
        await connection.close()
