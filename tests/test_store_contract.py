"""One contract, two adapters: every test here runs against TimescaleDB and SQLite."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from device_adapters.errors import NotFoundError, RegistryError
from device_adapters.readings import Quantity, Reading
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from gateway.storage import (
    DeviceQuery,
    ExportQuery,
    LastNQuery,
    MaintenancePass,
    ObservationQuery,
    ObservationStore,
    PatientQuery,
    QuarantineEntry,
    RetentionPlan,
    TimeCondition,
    TimeSpan,
    VitalsBucket,
    VitalsQuery,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
RECEIVED = T0 + timedelta(days=30, microseconds=123)


_UNITS = {"heart_rate": "/min", "pulse_rate": "/min", "spo2": "%"}


def _observation(
    device: uuid.UUID, patient: str, kind: str, at: datetime, value: float, *, received: datetime = T0 + timedelta(days=30)
) -> MappedObservation:
    reading = Reading("dev-1", kind, at, quantity=Quantity(Decimal(str(value)), _UNITS[kind]))
    return map_reading(reading, Attribution(patient, device, "dev-1"), received, source="mqtt")


def _quarantine(payload: bytes, reason: str = "malformed_json") -> QuarantineEntry:
    return QuarantineEntry(T0, "mqtt", "pulsebridge/v1/devices/x/readings", "x", "decode", reason, "bad", payload)


async def test_migrate_is_idempotent(store: ObservationStore) -> None:
    await store.migrate()
    await store.migrate()
    assert await store.list_patients() == []


async def test_registry_and_time_bounded_assignment(store: ObservationStore) -> None:
    await store.add_patient("pat-a", "Ada", "MRN-1")
    await store.add_patient("pat-b", None, None)
    device = await store.add_device("cuff-1", "cuff", "Blood pressure monitor")
    with pytest.raises(RegistryError):
        await store.add_patient("pat-a", "Again", None)
    with pytest.raises(RegistryError):
        await store.add_device("cuff-1", None, None)
    with pytest.raises(NotFoundError):
        await store.assign_device("nope", "pat-a", None)
    with pytest.raises(NotFoundError):
        await store.assign_device("cuff-1", "nobody", None)

    first = await store.assign_device("cuff-1", "pat-a", None)
    assert first.valid_from is None
    assert await store.assign_device("cuff-1", "pat-a", None) == first  # assigning again changes nothing
    lent = T0 + timedelta(days=1)
    await store.assign_device("cuff-1", "pat-b", lent)
    with pytest.raises(RegistryError):
        await store.assign_device("cuff-1", "pat-a", lent - timedelta(hours=1))  # must start after B's

    registrations = await store.registrations(["cuff-1", "unknown"])
    assert set(registrations) == {"cuff-1"}
    registration = registrations["cuff-1"]
    assert registration.device == device
    assert registration.patient_at(T0 - timedelta(days=365)) == "pat-a"
    assert registration.patient_at(lent - timedelta(microseconds=1)) == "pat-a"
    assert registration.patient_at(lent) == "pat-b"
    assert [p.id for p in await store.list_patients()] == ["pat-a", "pat-b"]
    assert [d.device_id for d in await store.list_devices()] == ["cuff-1"]


async def test_write_batch_stores_once_and_counts_duplicates(store: ObservationStore) -> None:
    device = uuid.uuid4()
    first = [_observation(device, "p", "heart_rate", T0 + timedelta(minutes=i), 60 + i) for i in range(5)]
    result = await store.write_batch(first, [])
    assert (result.inserted, result.duplicates) == (5, 0)
    assert result.inserted_keys == {o.key for o in first}
    again = [*first[2:], first[2], _observation(device, "p", "heart_rate", T0 + timedelta(minutes=9), 99)]
    result = await store.write_batch(again, [])
    assert (result.inserted, result.duplicates) == (1, 4)
    assert result.inserted_keys == {again[-1].key}
    rows = await store.search_observations(ObservationQuery(patient_id="p", count=100))
    assert len(rows) == 6
    assert len({row.reading_key for row in rows}) == 6


async def test_stored_resource_is_returned_with_its_arrival_as_last_updated(store: ObservationStore) -> None:
    observation = _observation(uuid.uuid4(), "p", "heart_rate", T0, 61)._replace(received_at=RECEIVED)
    await store.write_batch([observation], [])
    for served in (
        await store.get_observation(observation.reading_key),
        (await store.search_observations(ObservationQuery()))[0].resource,
    ):
        assert served is not None
        resource = orjson.loads(served)
        assert resource["meta"].pop("lastUpdated") == "2026-12-22T08:00:00.000123Z"
        assert resource == orjson.loads(observation.resource)
    assert await store.get_observation(uuid.uuid4()) is None


async def test_quarantine_counts_the_same_input_on_one_row(store: ObservationStore) -> None:
    await store.write_batch([], [_quarantine(b"{"), _quarantine(b"{"), _quarantine(b"[")])
    await store.write_batch([], [_quarantine(b"{")])
    rows = await store.list_quarantine(10)
    assert sorted((row.payload, row.seen_count) for row in rows) == [(b"[", 1), (b"{", 3)]
    assert {row.reason for row in rows} == {"malformed_json"}


async def test_batch_with_observations_and_quarantine_commits_together(store: ObservationStore) -> None:
    observation = _observation(uuid.uuid4(), "p", "heart_rate", T0, 70)
    result = await store.write_batch([observation], [_quarantine(b"\x00", "malformed_frame")])
    assert (result.inserted, result.quarantined) == (1, 1)
    assert len(await store.list_quarantine(10)) == 1


async def test_search_filters_order_and_cursor(store: ObservationStore) -> None:
    device = uuid.uuid4()
    batch = [_observation(device, "a", "heart_rate", T0 + timedelta(hours=i), 60 + i) for i in range(6)]
    batch += [_observation(device, "a", "pulse_rate", T0 + timedelta(hours=i), 70 + i) for i in range(3)]
    batch += [_observation(device, "b", "heart_rate", T0 + timedelta(hours=i), 80 + i) for i in range(2)]
    await store.write_batch(batch, [])

    newest = await store.search_observations(ObservationQuery(patient_id="a", kinds=frozenset({"heart_rate"}), count=4))
    assert [row.time for row in newest] == [T0 + timedelta(hours=h) for h in (5, 4, 3, 2)]
    rest = await store.search_observations(
        ObservationQuery(
            patient_id="a", kinds=frozenset({"heart_rate"}), count=4, after=(newest[-1].time, newest[-1].reading_key)
        ),
    )
    assert [row.time for row in rest] == [T0 + timedelta(hours=h) for h in (1, 0)]

    window = (TimeCondition(">=", T0 + timedelta(hours=1)), TimeCondition("<", T0 + timedelta(hours=3)))
    oldest_first = await store.search_observations(ObservationQuery(patient_id="a", time=window, newest_first=False))
    assert [row.time for row in oldest_first] == [T0 + timedelta(hours=h) for h in (1, 1, 2, 2)]
    assert await store.search_observations(ObservationQuery(kinds=frozenset())) == []
    assert len(await store.search_observations(ObservationQuery(count=100))) == 11
    assert len(await store.search_observations(ObservationQuery(patient_id="b"))) == 2


async def test_device_information_is_recorded(store: ObservationStore) -> None:
    await store.add_device("dis-1", "cuff", None)
    assert await store.device_information("dis-1") == {}
    await store.update_device_information("dis-1", {"manufacturer": "Omron", "model": "HEM-7155T", "ignored": "x"})
    await store.update_device_information("dis-1", {"firmware": "1.2"})
    assert await store.device_information("dis-1") == {"manufacturer": "Omron", "model": "HEM-7155T", "firmware": "1.2"}


async def test_search_by_device_identifier_arrival_and_excluded_spans(store: ObservationStore) -> None:
    cuff, watch = uuid.uuid4(), uuid.uuid4()
    batch = [
        _observation(cuff if i % 2 else watch, "a", "heart_rate", T0 + timedelta(hours=i), 60 + i)._replace(
            received_at=T0 + timedelta(days=i)
        )
        for i in range(6)
    ]
    await store.write_batch(batch, [])

    async def hours(query: ObservationQuery) -> list[int]:
        rows = await store.search_observations(dataclasses.replace(query, newest_first=False))
        assert await store.count_observations(query) == len(rows)
        return [(row.time - T0) // timedelta(hours=1) for row in rows]

    assert await hours(ObservationQuery(device_ids=frozenset({cuff}))) == [1, 3, 5]
    assert await hours(ObservationQuery(device_ids=frozenset())) == []
    assert await hours(ObservationQuery(reading_keys=frozenset({batch[2].reading_key, batch[4].reading_key, uuid.uuid4()}))) == [
        2,
        4,
    ]
    assert await hours(ObservationQuery(received=(TimeCondition(">=", T0 + timedelta(days=4)),))) == [4, 5]
    span = TimeSpan(T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert await hours(ObservationQuery(time_excluded=(span,))) == [0, 3, 4, 5]
    assert await hours(ObservationQuery(received_excluded=(TimeSpan(T0, T0 + timedelta(days=5)),))) == [5]


async def test_last_observations_per_kind_by_effective_time(store: ObservationStore) -> None:
    device = uuid.uuid4()
    # Arrival order is the reverse of effective order: the latest by time arrives first.
    batches = [
        [_observation(device, "a", kind, T0 + timedelta(hours=h), 60 + h) for kind in ("heart_rate", "pulse_rate")]
        for h in (5, 1, 3)
    ]
    batches.append([_observation(device, "b", "heart_rate", T0 + timedelta(hours=9), 99)])
    for batch in batches:
        await store.write_batch(batch, [])
    query = LastNQuery("a", frozenset({"heart_rate", "pulse_rate", "body_weight"}), max_per_kind=2)
    rows = await store.last_observations(query)
    assert sorted(((row.time - T0) // timedelta(hours=1)) for row in rows) == [3, 3, 5, 5]
    latest = await store.last_observations(LastNQuery("a", frozenset({"heart_rate"})))
    assert [row.time for row in latest] == [T0 + timedelta(hours=5)]
    before = await store.last_observations(
        LastNQuery("a", frozenset({"pulse_rate"}), time=(TimeCondition("<", T0 + timedelta(hours=4)),))
    )
    assert [row.time for row in before] == [T0 + timedelta(hours=3)]
    assert await store.last_observations(LastNQuery("nobody", frozenset({"heart_rate"}))) == []


async def test_patient_and_device_search(store: ObservationStore) -> None:
    await store.add_patient("pat-a", "Ada Lovelace", "MRN-1")
    await store.add_patient("pat-b", "Charles Babbage", "MRN-2")
    await store.add_patient("pat-c", None, None)
    cuff = await store.add_device("cuff-1", "cuff", "Blood pressure monitor")
    await store.add_device("scale-1", "scale", None)
    await store.update_device_information("cuff-1", {"manufacturer": "Omron", "serial_number": "S1"})
    await store.assign_device("cuff-1", "pat-a", None)
    await store.assign_device("scale-1", "pat-a", None)
    await store.assign_device("scale-1", "pat-b", T0)

    async def patients(query: PatientQuery) -> list[str]:
        return [p.id for p in await store.search_patients(query)]

    assert await patients(PatientQuery()) == ["pat-a", "pat-b", "pat-c"]
    assert await patients(PatientQuery(ids=frozenset({"pat-b", "nobody"}))) == ["pat-b"]
    assert await patients(PatientQuery(mrns=frozenset({"MRN-1"}))) == ["pat-a"]
    assert await patients(PatientQuery(name="LOVE")) == ["pat-a"]
    assert await patients(PatientQuery(name="ada")) == ["pat-a"]
    assert await patients(PatientQuery(name="ov")) == []
    assert await patients(PatientQuery(name="%")) == []
    assert await patients(PatientQuery(count=1, after="pat-a")) == ["pat-b"]

    everything = await store.search_devices(DeviceQuery())
    assert [(d.device.device_id, d.patient_id) for d in everything] == [("cuff-1", "pat-a"), ("scale-1", "pat-b")]
    assert everything[0].device == cuff
    assert everything[0].information == {"manufacturer": "Omron", "serial_number": "S1"}
    assert [d.device.device_id for d in await store.search_devices(DeviceQuery(resource_ids=frozenset({cuff.resource_id})))] == [
        "cuff-1"
    ]
    assert [d.device.device_id for d in await store.search_devices(DeviceQuery(device_ids=frozenset({"scale-1"})))] == ["scale-1"]
    assert [d.device.device_id for d in await store.search_devices(DeviceQuery(patient_id="pat-a"))] == ["cuff-1"]
    assert [d.device.device_id for d in await store.search_devices(DeviceQuery(after="cuff-1"))] == ["scale-1"]


async def test_vitals_series_buckets_numbers_of_one_kind(store: ObservationStore) -> None:
    device = uuid.uuid4()
    minutes = [(10, 60), (20, 80), (15, 70), (70, 75)]
    batch = [_observation(device, "a", "heart_rate", T0 + timedelta(minutes=m), v) for m, v in minutes]
    batch += [_observation(device, "a", "pulse_rate", T0, 99), _observation(device, "b", "heart_rate", T0, 99)]
    await store.write_batch(batch, [])

    series = await store.vitals_series(
        VitalsQuery("a", "heart_rate", T0 - timedelta(hours=1), T0 + timedelta(hours=3), timedelta(hours=1))
    )
    assert series == [
        VitalsBucket(T0, "/min", 3, 60.0, 80.0, 70.0, 80.0, T0 + timedelta(minutes=20)),
        VitalsBucket(T0 + timedelta(hours=1), "/min", 1, 75.0, 75.0, 75.0, 75.0, T0 + timedelta(minutes=70)),
    ]
    quarter = await store.vitals_series(VitalsQuery("a", "heart_rate", T0, T0 + timedelta(minutes=20), timedelta(minutes=15)))
    assert [(b.start, b.count, b.last) for b in quarter] == [(T0, 1, 60.0), (T0 + timedelta(minutes=15), 1, 70.0)]
    assert await store.vitals_series(VitalsQuery("a", "spo2", T0, T0 + timedelta(hours=1), timedelta(hours=1))) == []


async def test_export_pages_oldest_first_with_filters(store: ObservationStore) -> None:
    device = uuid.uuid4()
    late = T0 + timedelta(days=40)
    batch = [_observation(device, "a", "heart_rate", T0 + timedelta(minutes=i), 60 + i) for i in range(5)]
    batch += [_observation(device, "a", "spo2", T0 + timedelta(minutes=2), 97, received=late)]
    batch += [_observation(device, "b", "heart_rate", T0, 90)]
    await store.write_batch(batch, [])

    first = await store.export_page(ExportQuery("a", count=4))
    rest = await store.export_page(ExportQuery("a", count=4, after=(first[-1].time, first[-1].reading_key)))
    rows = first + rest
    assert len(first) == 4
    assert len(rows) == 6
    assert [row.time for row in rows] == sorted(row.time for row in rows)
    assert {row.reading_key for row in rows} == {o.reading_key for o in batch[:6]}
    spo2 = next(row for row in rows if row.kind == "spo2")
    assert (spo2.code, spo2.value, spo2.unit, spo2.device_resource_id) == ("2708-6", Decimal(97), "%", device)
    assert orjson.loads(spo2.resource)["id"] == str(spo2.reading_key)
    window = await store.export_page(ExportQuery("a", start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=3)))
    assert [row.time for row in window] == [T0 + timedelta(minutes=m) for m in (1, 2, 2)]
    assert [row.kind for row in await store.export_page(ExportQuery("a", since=late))] == ["spo2"]


async def test_maintenance_rolls_up_before_retention_and_redoes_late_buckets(store: ObservationStore) -> None:
    device = uuid.uuid4()
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    old, recent, ancient = now - timedelta(days=100), now - timedelta(days=2), now - timedelta(days=400)
    received = now - timedelta(hours=1)
    batch = [
        _observation(device, "a", "heart_rate", old, 60, received=received),
        _observation(device, "a", "heart_rate", old + timedelta(minutes=5), 64, received=received),
        _observation(device, "a", "spo2", old, 95, received=received),
        _observation(device, "a", "spo2", ancient, 90, received=now - timedelta(days=3)),  # the first pass walks many slices,
        _observation(device, "a", "heart_rate", recent, 70, received=received),
    ]
    await store.write_batch(batch, [])
    plan = RetentionPlan(
        default_before=(now - timedelta(days=365)).replace(minute=0),
        kind_before={"heart_rate": (now - timedelta(days=90)).replace(minute=0)},
    )
    report = await store.run_maintenance(MaintenancePass(now, plan))
    assert report.ran
    assert report.rows_deleted + report.chunks_dropped >= 2

    left = await store.export_page(ExportQuery("a"))
    assert sorted((row.kind, row.time) for row in left) == [("heart_rate", recent), ("spo2", old)]
    hour = old.replace(minute=0)
    heart = await store.hourly_rollups("a", "heart_rate", ancient, now)
    assert heart == [
        VitalsBucket(hour, "/min", 2, 60.0, 64.0, 62.0, 64.0, old + timedelta(minutes=5)),
        VitalsBucket(recent, "/min", 1, 70.0, 70.0, 70.0, 70.0, recent),
    ]
    assert [b.start for b in await store.hourly_rollups("a", "spo2", ancient - timedelta(hours=1), now)] == [
        ancient.replace(minute=0),
        hour,
    ]

    # A late, out-of-order reading in a rolled-up bucket: the next pass recomputes that bucket.
    later = now + timedelta(hours=1)
    await store.write_batch([_observation(device, "a", "heart_rate", recent - timedelta(minutes=1), 90, received=later)], [])
    # and one for an hour whose raw rows retention already dropped: that rollup is not overwritten
    await store.write_batch([_observation(device, "a", "heart_rate", old + timedelta(minutes=1), 100, received=later)], [])
    report = await store.run_maintenance(MaintenancePass(later + timedelta(minutes=5), plan))
    assert report.buckets_refreshed == 1
    heart = await store.hourly_rollups("a", "heart_rate", ancient, later)
    assert heart[0] == VitalsBucket(hour, "/min", 2, 60.0, 64.0, 62.0, 64.0, old + timedelta(minutes=5))
    assert heart[1] == VitalsBucket(recent - timedelta(hours=1), "/min", 1, 90.0, 90.0, 90.0, 90.0, recent - timedelta(minutes=1))
    assert heart[2] == VitalsBucket(recent, "/min", 1, 70.0, 70.0, 70.0, 70.0, recent)
    assert [row.value for row in await store.export_page(ExportQuery("a", start=old, end=old + timedelta(hours=1)))] == [
        Decimal(95)
    ]
