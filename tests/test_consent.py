"""Consent per patient and destination on both stores: decisions and their history, queueing, and claims after a revocation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from device_adapters.errors import NotFoundError
from device_adapters.readings import Quantity, Reading
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from gateway.storage import MaintenancePass, ObservationStore, RetentionPlan
from gateway.storage.consent import CONSENT_ERROR_PREFIX, NOT_GRANTED_ERROR, REVOKED_ERROR, ConsentMode, allows
from gateway.storage.outbox import GONE_ERROR, OutboxEntry

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
DESTINATIONS: dict[str, ConsentMode] = {"ehr-implied": "implied", "ehr-required": "required"}


def _readings(patient: str, count: int, start: datetime = T0) -> list[MappedObservation]:
    who = Attribution(patient, uuid.UUID(int=7), f"watch-{patient}")
    return [
        map_reading(
            Reading(f"watch-{patient}", "heart_rate", start + timedelta(minutes=m), quantity=Quantity(Decimal(60 + m), "/min")),
            who,
            start + timedelta(days=1),
            source="mqtt",
        )
        for m in range(count)
    ]


def _entries(observations: list[MappedObservation], destinations: dict[str, ConsentMode] = DESTINATIONS) -> list[OutboxEntry]:
    return [OutboxEntry(o.key, o.time, name, o.patient_id, mode) for name, mode in destinations.items() for o in observations]


async def _queued(store: ObservationStore) -> dict[tuple[str, str], int]:
    return {(count.destination, count.status): count.count for count in await store.outbox_status()}


async def _claim_all(store: ObservationStore, destination: str, consent: ConsentMode) -> list[uuid.UUID]:
    now = datetime.now(UTC) + timedelta(seconds=1)
    return [item.reading_key for item in await store.claim_outbox(destination, 1000, now, LEASE, consent=consent)]


def test_what_a_decision_allows() -> None:
    assert allows(None, "implied")
    assert not allows(None, "required")
    assert allows("granted", "required")
    assert allows("granted", "implied")
    assert not allows("revoked", "implied")
    assert not allows("revoked", "required")


async def test_decisions_are_recorded_with_their_history(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    with pytest.raises(NotFoundError):
        await store.set_consent("nobody", "ehr-implied", "granted", "Patient/nobody", T0)
    assert await store.consents("ada") == []

    granted = await store.set_consent("ada", "ehr-required", "granted", "Patient/ada", T0)
    assert (granted.status, granted.recorded_by, granted.recorded_at) == ("granted", "Patient/ada", T0)
    again = await store.set_consent("ada", "ehr-required", "granted", "RelatedPerson/son", T0 + timedelta(hours=1))
    assert again == granted  # the same decision again changes nothing, and leaves no history row
    await store.set_consent("ada", "ehr-required", "revoked", "RelatedPerson/son", T0 + timedelta(hours=2))
    await store.set_consent("ada", "ehr-implied", "revoked", "Practitioner/admin", T0 + timedelta(hours=3))

    current = await store.consents("ada")
    assert [(c.destination, c.status, c.recorded_by) for c in current] == [
        ("ehr-implied", "revoked", "Practitioner/admin"),
        ("ehr-required", "revoked", "RelatedPerson/son"),
    ]
    history = await store.consent_history("ada")
    assert [(c.destination, c.status, c.recorded_by, c.recorded_at) for c in history] == [
        ("ehr-required", "granted", "Patient/ada", T0),
        ("ehr-required", "revoked", "RelatedPerson/son", T0 + timedelta(hours=2)),
        ("ehr-implied", "revoked", "Practitioner/admin", T0 + timedelta(hours=3)),
    ]


async def test_readings_are_queued_only_where_consent_allows(store: ObservationStore) -> None:
    for patient in ("revoked", "granted", "silent"):
        await store.add_patient(patient, None, None)
    await store.set_consent("revoked", "ehr-implied", "revoked", "Patient/revoked", T0)
    await store.set_consent("revoked", "ehr-required", "revoked", "Patient/revoked", T0)
    await store.set_consent("granted", "ehr-required", "granted", "Patient/granted", T0)
    batch = [*_readings("revoked", 2), *_readings("granted", 3), *_readings("silent", 4)]
    await store.write_batch(batch, [], _entries(batch))
    # implied: everyone but the patient who revoked; required: only the patient who granted.
    assert await _queued(store) == {("ehr-implied", "pending"): 7, ("ehr-required", "pending"): 3}


async def test_a_revocation_dead_letters_the_rows_already_queued(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    await store.add_patient("bob", None, None)
    await store.set_consent("ada", "ehr-required", "granted", "Patient/ada", T0)
    ada, bob = _readings("ada", 3), _readings("bob", 2)
    await store.write_batch([*ada, *bob], [], _entries([*ada, *bob]))
    assert await _queued(store) == {("ehr-implied", "pending"): 5, ("ehr-required", "pending"): 3}

    await store.set_consent("ada", "ehr-implied", "revoked", "Patient/ada", T0 + timedelta(hours=1))
    await store.set_consent("ada", "ehr-required", "revoked", "Patient/ada", T0 + timedelta(hours=1))
    assert sorted(await _claim_all(store, "ehr-implied", "implied")) == sorted(uuid.UUID(o.key) for o in bob)
    assert await _claim_all(store, "ehr-required", "required") == []
    # The ledger stays exact: every stored reading's row is done, dead or pending.
    assert await _queued(store) == {
        ("ehr-implied", "dead"): 3, ("ehr-implied", "pending"): 2, ("ehr-required", "dead"): 3,
    }  # fmt: skip
    dead = await store.dead_letters(None, 0, 100)
    assert {letter.error for letter in dead} == {REVOKED_ERROR}
    assert all(letter.error is not None and letter.error.startswith(CONSENT_ERROR_PREFIX) for letter in dead)
    assert {letter.reading_key for letter in dead} == {uuid.UUID(o.key) for o in ada}

    # Replaying them while consent is still revoked changes nothing; after a new grant they go.
    now = datetime.now(UTC)
    assert await store.replay_dead_letters(None, "ehr-required", now) == 3
    assert await _claim_all(store, "ehr-required", "required") == []
    await store.set_consent("ada", "ehr-required", "granted", "Patient/ada", T0 + timedelta(hours=2))
    assert await store.replay_dead_letters(None, "ehr-required", now) == 3
    assert len(await _claim_all(store, "ehr-required", "required")) == 3


async def test_a_destination_that_now_requires_consent_holds_back_rows_queued_before(store: ObservationStore) -> None:
    await store.add_patient("ada", None, None)
    ada = _readings("ada", 2)
    await store.write_batch(ada, [], _entries(ada, {"ehr-a": "implied"}))
    assert await _claim_all(store, "ehr-a", "required") == []  # the rule changed in the settings since
    assert {letter.error for letter in await store.dead_letters("ehr-a", 0, 10)} == {NOT_GRANTED_ERROR}


async def test_a_reading_removed_before_its_push_ends_dead_instead_of_blocking_the_queue(store: ObservationStore) -> None:
    old, recent = _readings("ada", 2, T0 - timedelta(days=400)), _readings("ada", 2)
    await store.write_batch([*old, *recent], [], _entries([*old, *recent], {"ehr-a": "implied"}))
    cutoff = (T0 - timedelta(days=30)).replace(minute=0)
    await store.run_maintenance(MaintenancePass(T0 + timedelta(days=2), RetentionPlan(default_before=cutoff)))
    assert sorted(await _claim_all(store, "ehr-a", "implied")) == sorted(uuid.UUID(o.key) for o in recent)
    dead = await store.dead_letters("ehr-a", 0, 10)
    assert {(letter.reading_key, letter.error) for letter in dead} == {(uuid.UUID(o.key), GONE_ERROR) for o in old}
