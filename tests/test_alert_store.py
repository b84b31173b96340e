"""The alert storage contract, on both stores: de-duplication, escalation, acknowledge, snooze, rules, activity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from device_adapters.readings import Quantity, Reading
from fhir_mapper.observation import Attribution, map_reading
from gateway.storage import ObservationStore
from gateway.storage.alerts import AlertCandidate, AlertKey, AlertQuery

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = AlertKey("ada", "threshold", "heart_rate")


async def _patients(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    await store.add_patient("bob", None, None)


async def test_one_unresolved_alert_per_key_escalation_reopens_and_resolution_keeps_history(store: ObservationStore) -> None:
    await _patients(store)
    alerts = store.alerts
    first, changed = await alerts.raise_alert(AlertCandidate(KEY, "medium", "heart rate 115", NOW, {"value": "115"}))
    assert changed
    assert (first.status, first.severity, first.raised_at, first.detail) == ("open", "medium", NOW, {"value": "115"})
    same, changed = await alerts.raise_alert(AlertCandidate(KEY, "medium", "heart rate 118", NOW + timedelta(minutes=1)))
    assert (same.id, same.summary, changed) == (first.id, "heart rate 115", False)

    acknowledged = await alerts.acknowledge_alert(first.id, "dr-who", NOW + timedelta(minutes=2))
    assert acknowledged is not None
    assert (acknowledged.status, acknowledged.acknowledged_by) == ("acknowledged", "dr-who")
    lower, changed = await alerts.raise_alert(AlertCandidate(KEY, "low", "heart rate 112", NOW + timedelta(minutes=3)))
    assert (lower.id, lower.status, lower.severity, changed) == (first.id, "acknowledged", "low", True)
    higher, changed = await alerts.raise_alert(AlertCandidate(KEY, "high", "heart rate 140", NOW + timedelta(minutes=4)))
    assert (higher.id, higher.status, higher.severity, changed) == (first.id, "open", "high", True)

    resolved = await alerts.resolve_alert(KEY, NOW + timedelta(minutes=5))
    assert resolved is not None
    assert (resolved.status, resolved.cleared_at) == ("resolved", NOW + timedelta(minutes=5))
    assert await alerts.resolve_alert(KEY, NOW + timedelta(minutes=6)) is None
    assert await alerts.acknowledge_alert(first.id, "dr-who", NOW) is None  # resolved: nothing to acknowledge

    again, changed = await alerts.raise_alert(AlertCandidate(KEY, "medium", "heart rate 120", NOW + timedelta(minutes=7)))
    assert changed
    assert again.id != first.id
    history = await alerts.list_alerts(AlertQuery(patient_ids=frozenset({"ada"})))
    assert [(record.id, record.status) for record in history] == [(again.id, "open"), (first.id, "resolved")]


async def test_listing_filters_by_patient_and_status(store: ObservationStore) -> None:
    await _patients(store)
    alerts = store.alerts
    ada, _ = await alerts.raise_alert(AlertCandidate(KEY, "medium", "a", NOW))
    bob, _ = await alerts.raise_alert(AlertCandidate(AlertKey("bob", "news2", "news2"), "high", "b", NOW + timedelta(seconds=1)))
    await alerts.acknowledge_alert(bob.id, "dr", NOW)
    assert [r.id for r in await alerts.list_alerts(AlertQuery())] == [bob.id, ada.id]
    assert [r.id for r in await alerts.list_alerts(AlertQuery(statuses=frozenset({"open"})))] == [ada.id]
    assert [r.id for r in await alerts.list_alerts(AlertQuery(patient_ids=frozenset({"bob"})))] == [bob.id]
    assert await alerts.list_alerts(AlertQuery(patient_ids=frozenset())) == []
    assert await alerts.list_alerts(AlertQuery(limit=1)) == [await alerts.get_alert(bob.id)]
    assert await alerts.get_alert(uuid.uuid4()) is None


async def test_a_snooze_runs_out_and_the_alert_opens_again(store: ObservationStore) -> None:
    await _patients(store)
    alerts = store.alerts
    record, _ = await alerts.raise_alert(AlertCandidate(KEY, "medium", "a", NOW))
    snoozed = await alerts.snooze_alert(record.id, NOW + timedelta(hours=1), "dr", NOW)
    assert snoozed is not None
    assert (snoozed.status, snoozed.snoozed_until) == ("snoozed", NOW + timedelta(hours=1))
    assert await alerts.wake_snoozed(NOW + timedelta(minutes=59)) == []
    (woken,) = await alerts.wake_snoozed(NOW + timedelta(hours=1))
    assert (woken.id, woken.status, woken.snoozed_until) == (record.id, "open", None)


async def test_rules_are_stored_replaced_and_removed(store: ObservationStore) -> None:
    await _patients(store)
    alerts = store.alerts
    assert await alerts.alert_rules("ada") is None
    await alerts.set_alert_rules("ada", '{"low_battery_percent": 30}', "dr", NOW)
    await alerts.set_alert_rules("ada", '{"low_battery_percent": 25}', "dr2", NOW + timedelta(seconds=1))
    record = await alerts.alert_rules("ada")
    assert record is not None
    assert (record.updated_by, record.updated_at) == ("dr2", NOW + timedelta(seconds=1))
    assert record.rules.replace(" ", "") == '{"low_battery_percent":25}'
    await alerts.set_alert_rules("ada", None, "dr", NOW)
    assert await alerts.alert_rules("ada") is None


async def test_device_activity_names_each_assigned_device_its_last_reading_and_battery(store: ObservationStore) -> None:
    await _patients(store)
    for device in ("watch-1", "cuff-1", "spare"):
        await store.add_device(device, None, None)
    await store.assign_device("watch-1", "ada", NOW - timedelta(days=2))
    await store.assign_device("cuff-1", "bob", NOW - timedelta(days=1))
    watch = await store.registrations(["watch-1"])
    attribution = Attribution("ada", watch["watch-1"].device.resource_id, "watch-1")
    readings = [
        Reading("watch-1", "heart_rate", NOW - timedelta(minutes=30), quantity=Quantity(Decimal(70), "/min")),
        Reading("watch-1", "battery_level", NOW - timedelta(hours=2), quantity=Quantity(Decimal(12), "%")),
        Reading("watch-1", "battery_level", NOW - timedelta(hours=3), quantity=Quantity(Decimal(40), "%")),
        Reading("watch-1", "heart_rate", NOW - timedelta(days=30), quantity=Quantity(Decimal(70), "/min")),
    ]
    await store.write_batch([map_reading(reading, attribution, NOW, source="mqtt") for reading in readings], [])
    activity = await store.alerts.device_activity(NOW, NOW - timedelta(days=7))
    assert [(a.device_id, a.patient_id, a.watched_from, a.last_time, a.battery) for a in activity] == [
        ("cuff-1", "bob", NOW - timedelta(days=1), None, None),
        ("watch-1", "ada", NOW - timedelta(days=2), NOW - timedelta(minutes=30), Decimal(12)),
    ]


@pytest.mark.parametrize("status", ["acknowledged", "snoozed"])
async def test_acknowledged_and_snoozed_alerts_still_deduplicate(store: ObservationStore, status: str) -> None:
    await _patients(store)
    alerts = store.alerts
    record, _ = await alerts.raise_alert(AlertCandidate(KEY, "medium", "a", NOW))
    if status == "acknowledged":
        await alerts.acknowledge_alert(record.id, "dr", NOW)
    else:
        await alerts.snooze_alert(record.id, NOW + timedelta(hours=1), "dr", NOW)
    same, changed = await alerts.raise_alert(AlertCandidate(KEY, "medium", "b", NOW + timedelta(minutes=1)))
    assert (same.id, same.status, changed) == (record.id, status, False)
