"""Access control's storage (issue 7) on both stores: accounts, relationships, slots, pairing, credentials, audit."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from device_adapters.errors import NotFoundError, RegistryError, StorageError
from gateway.auth.audit import AuditAction, AuditOutcome, AuditRecord, verify_chain
from gateway.auth.pairing import PairingGrant
from gateway.auth.policy import Relationships
from gateway.storage import ObservationStore
from gateway.storage.port import AccountRecord
from gateway.storage.sqlite import SqliteStore
from gateway.storage.timescale import TimescaleStore, _translated

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
MRN = "urn:oid:1.2.36.146.595.217.0.1"


async def _patients(store: ObservationStore, *ids: str) -> None:
    for patient_id in ids:
        await store.add_patient(patient_id, None, None)


async def test_accounts_round_trip_and_refuse_what_the_schema_refuses(store: ObservationStore) -> None:
    await _patients(store, "ada")
    assert await store.add_account("acc-ada", "patient", "Ada", "ada") == AccountRecord(
        "acc-ada", "patient", "Ada", "ada", disabled=False
    )
    await store.add_account("dr-who", "practitioner", None, None)
    assert await store.get_account("acc-ada") == AccountRecord("acc-ada", "patient", "Ada", "ada", disabled=False)
    assert await store.get_account("dr-who") == AccountRecord("dr-who", "practitioner", None, None, disabled=False)
    assert await store.get_account("nobody") is None
    with pytest.raises(RegistryError, match="already exists"):
        await store.add_account("dr-who", "admin", None, None)
    with pytest.raises(RegistryError, match="role 'superuser'"):
        await store.add_account("root", "superuser", None, None)
    with pytest.raises(RegistryError, match="patient account"):
        await store.add_account("acc-x", "patient", None, None)
    with pytest.raises(RegistryError, match="patient account"):
        await store.add_account("nurse", "caregiver", None, "ada")
    with pytest.raises(NotFoundError):
        await store.add_account("acc-ghost", "patient", None, "ghost")


async def test_relationships_through_care_teams_and_delegations(store: ObservationStore) -> None:
    await _patients(store, "ada", "bob", "cy", "dee")
    await store.add_account("dr-who", "practitioner", None, None)
    await store.add_account("son", "caregiver", None, None)
    assert await store.relationships("dr-who") == Relationships()

    await store.add_care_team("cardio", "Cardiology")
    await store.add_care_team("renal", "Renal")
    with pytest.raises(RegistryError):
        await store.add_care_team("cardio", "Again")
    await store.add_care_team_member("cardio", "dr-who")
    await store.add_care_team_member("cardio", "dr-who")  # twice changes nothing
    await store.add_care_team_member("renal", "dr-who")
    for team, patient in (("cardio", "ada"), ("cardio", "bob"), ("renal", "cy"), ("renal", "bob")):
        await store.add_care_team_patient(team, patient)
    with pytest.raises(NotFoundError):
        await store.add_care_team_member("ghosts", "dr-who")
    with pytest.raises(NotFoundError):
        await store.add_care_team_patient("cardio", "ghost")
    await store.delegate("dee", "son")
    await store.delegate("dee", "son")  # one active delegation, however often granted
    await store.delegate("ada", "son")
    with pytest.raises(NotFoundError):
        await store.delegate("dee", "ghost")

    assert await store.relationships("dr-who") == Relationships(frozenset(), frozenset({"ada", "bob", "cy"}))
    assert await store.relationships("son") == Relationships(frozenset({"dee", "ada"}), frozenset())

    await store.remove_care_team_patient("renal", "cy")
    await store.revoke_delegation("ada", "son")
    assert await store.relationships("dr-who") == Relationships(frozenset(), frozenset({"ada", "bob"}))
    assert await store.relationships("son") == Relationships(frozenset({"dee"}), frozenset())
    await store.delegate("ada", "son")  # granted again after a revocation
    assert (await store.relationships("son")).delegated_patients == {"dee", "ada"}


async def test_patient_identifiers_one_patient_per_system_and_value(store: ObservationStore) -> None:
    await _patients(store, "ada", "bob")
    await store.add_patient_identifier("ada", MRN, "12345")
    await store.add_patient_identifier("ada", MRN, "12345")  # the same again is no change
    await store.add_patient_identifier("bob", "urn:other-ehr", "12345")
    assert await store.patient_by_identifier(MRN, "12345") == "ada"
    assert await store.patient_by_identifier("urn:other-ehr", "12345") == "bob"
    assert await store.patient_by_identifier(MRN, "999") is None
    with pytest.raises(RegistryError, match="another patient"):
        await store.add_patient_identifier("bob", MRN, "12345")
    with pytest.raises(NotFoundError):
        await store.add_patient_identifier("ghost", MRN, "1")
    await store.add_patient_identifier("ada", "urn:other-ehr", "A-7")
    assert await store.identifiers_of(["ada", "bob", "ghost"]) == {
        "ada": [(MRN, "12345"), ("urn:other-ehr", "A-7")],
        "bob": [("urn:other-ehr", "12345")],
    }
    assert await store.identifiers_of([]) == {}


async def test_user_slots_attribute_readings_per_slot(store: ObservationStore) -> None:
    await _patients(store, "mum", "dad", "gran")
    await store.add_device("cuff-1", "cuff", None)
    await store.assign_device("cuff-1", "mum", None)
    await store.add_device("cuff-2", "cuff", None)
    await store.assign_device("cuff-2", "gran", None)
    await store.assign_user_slot("cuff-1", 1, "mum", None)
    await store.assign_user_slot("cuff-1", 2, "dad", None)
    await store.assign_user_slot("cuff-1", 2, "dad", None)  # unchanged
    await store.assign_user_slot("cuff-1", 2, "gran", T0)  # dad's slot passes to gran
    with pytest.raises(RegistryError):
        await store.assign_user_slot("cuff-1", 2, "dad", T0 - timedelta(hours=1))
    with pytest.raises(NotFoundError):
        await store.assign_user_slot("ghost", 1, "mum", None)
    with pytest.raises(NotFoundError):
        await store.assign_user_slot("cuff-1", 3, "ghost", None)

    registrations = await store.registrations(["cuff-1", "cuff-2"])
    cuff = registrations["cuff-1"]
    assert {(s.user_slot, s.patient_id, s.valid_from, s.valid_to) for s in cuff.slots} == {
        (1, "mum", None, None), (2, "dad", None, T0), (2, "gran", T0, None),
    }  # fmt: skip
    assert cuff.patient_at(T0, user=1) == "mum"
    assert cuff.patient_at(T0 - timedelta(microseconds=1), user=2) == "dad"
    assert cuff.patient_at(T0, user=2) == "gran"
    assert cuff.patient_at(T0, user=3) is None  # nobody holds slot 3: unattributed, not the device's owner
    assert cuff.patient_at(T0) == "mum"  # a reading without a user number: the device's assignment
    plain = registrations["cuff-2"]
    assert plain.slots == ()
    assert plain.patient_at(T0, user=1) == "gran"  # a device without slots: its assignment, as before


async def test_pairing_code_is_single_use_and_expires(store: ObservationStore) -> None:
    await _patients(store, "ada")
    grant = PairingGrant("ada", "Patient/ada", T0, T0 + timedelta(minutes=10), "cuff")
    digest, stale = b"\x01" * 32, b"\x02" * 32
    await store.add_pairing_code(digest, grant)
    await store.add_pairing_code(stale, dataclasses.replace(grant, device_kind=None))
    with pytest.raises(RegistryError):
        await store.add_pairing_code(digest, grant)
    with pytest.raises(NotFoundError):
        await store.add_pairing_code(b"\x03" * 32, dataclasses.replace(grant, patient_id="ghost"))

    assert await store.redeem_pairing_code(b"\x09" * 32, "cuff-1", T0) is None  # unknown
    assert await store.redeem_pairing_code(digest, "cuff-1", T0 + timedelta(minutes=5)) == grant
    assert await store.redeem_pairing_code(digest, "cuff-2", T0 + timedelta(minutes=6)) is None  # used
    assert await store.redeem_pairing_code(stale, "cuff-1", T0 + timedelta(minutes=10)) is None  # expired
    assert await store.redeem_pairing_code(stale, "cuff-1", T0 + timedelta(minutes=11)) is None


async def test_device_credentials_are_hashes_and_revoke_together(store: ObservationStore) -> None:
    await store.add_device("cuff-1", "cuff", None)
    await store.add_device("cuff-2", "cuff", None)
    first = await store.add_device_credential("cuff-1", "mqtt-password", "$argon2id$one")
    second = await store.add_device_credential("cuff-1", "api-token", "$argon2id$two")
    await store.add_device_credential("cuff-2", "api-token", "$argon2id$other")
    with pytest.raises(RegistryError):
        await store.add_device_credential("cuff-1", "password", "x")
    with pytest.raises(NotFoundError):
        await store.add_device_credential("ghost", "api-token", "x")

    listed = await store.device_credentials("cuff-1")
    assert [(c.id, c.kind, c.secret_hash, c.revoked_at) for c in listed] == [
        (first, "mqtt-password", "$argon2id$one", None), (second, "api-token", "$argon2id$two", None),
    ]  # fmt: skip
    assert all(c.created_at.tzinfo is not None for c in listed)
    now = T0 + timedelta(days=1)
    assert await store.revoke_device_credentials("cuff-1", now) == 2
    assert await store.revoke_device_credentials("cuff-1", now) == 0
    assert {c.revoked_at for c in await store.device_credentials("cuff-1")} == {now}
    assert [c.revoked_at for c in await store.device_credentials("cuff-2")] == [None]
    assert await store.device_credentials("ghost") == []


def _audit(minutes: int, patient: str | None, **detail: str) -> AuditRecord:
    return AuditRecord(
        # A non-UTC offset: the instant read back in UTC must hash the same.
        recorded_at=(T0 + timedelta(minutes=minutes, microseconds=7)).astimezone(timezone(timedelta(hours=2))),
        action=AuditAction.READ if patient else AuditAction.LOGIN,
        outcome=AuditOutcome.SUCCESS if not detail else AuditOutcome.DENIED,
        agent="Practitioner/dr-who",
        patient_id=patient,
        entity=f"Observation?patient={patient}" if patient else None,
        detail=detail,
    )


async def test_audit_chain_appends_round_trips_and_verifies(store: ObservationStore) -> None:
    records = [_audit(0, None), _audit(1, "ada"), _audit(2, "bob", reason="not-in-care-team")]
    await store.append_audit(records[:2])
    await store.append_audit(records[2:])
    await store.append_audit([])

    chain = await store.audit_chain()
    assert [row.record for _, row in chain] == records
    assert verify_chain(row for _, row in chain) is None
    ids = [row_id for row_id, _ in chain]
    assert ids == sorted(ids)
    assert [row.record for _, row in await store.audit_chain(after_id=ids[0], limit=1)] == [records[1]]
    assert chain[1][1].previous_hash == chain[0][1].hash

    assert await store.search_audit(None, 10) == records[::-1]
    assert await store.search_audit("ada", 10) == [records[1]]
    assert await store.search_audit(None, 1) == [records[2]]


async def test_audit_rows_cannot_be_changed_or_removed_by_the_app(store: ObservationStore) -> None:
    await store.append_audit([_audit(0, "ada")])
    for statement in ("UPDATE audit_events SET actor = 'Practitioner/mallory'", "DELETE FROM audit_events"):
        with pytest.raises(StorageError, match="append-only"):
            await _execute(store, statement)
    assert len(await store.audit_chain()) == 1


async def _execute(store: ObservationStore, statement: str) -> None:
    """A statement through the store's own connection (its private parts): what the application itself could run."""
    if isinstance(store, TimescaleStore):
        async with _translated("tamper"):
            await store._pool.execute(statement)
    else:
        assert isinstance(store, SqliteStore)
        await store._transaction("tamper", lambda connection: connection.execute(statement))


# -- TimescaleDB only: concurrency and a superuser going around the trigger ---------------------


async def test_two_concurrent_redemptions_of_one_code_exactly_one_wins(timescale_store: ObservationStore) -> None:
    await _patients(timescale_store, "ada")
    grant = PairingGrant("ada", "Patient/ada", T0, T0 + timedelta(minutes=10))
    await timescale_store.add_pairing_code(b"\x01" * 32, grant)
    results = await asyncio.gather(
        *(timescale_store.redeem_pairing_code(b"\x01" * 32, f"hub-{n}", T0 + timedelta(minutes=1)) for n in range(8))
    )
    assert sorted(map(str, results)) == sorted([str(grant)] + ["None"] * 7)


async def test_concurrent_appenders_do_not_fork_the_chain(timescale_store: ObservationStore) -> None:
    await asyncio.gather(*(timescale_store.append_audit([_audit(n, "ada"), _audit(n, "bob")]) for n in range(10)))
    chain = await timescale_store.audit_chain()
    assert len(chain) == 20
    assert verify_chain(row for _, row in chain) is None


async def test_a_row_altered_behind_the_trigger_breaks_the_chain_there(
    timescale_store: ObservationStore, timescale_url: str
) -> None:
    records = [_audit(n, "ada") for n in range(4)]
    await timescale_store.append_audit(records)
    connection = await asyncpg.connect(timescale_url)
    try:
        assert await connection.fetchval("SELECT current_setting('is_superuser')") == "on"
        async with connection.transaction():
            await connection.execute("ALTER TABLE audit_events DISABLE TRIGGER ALL")
            await connection.execute("UPDATE audit_events SET actor = 'Practitioner/mallory' WHERE event_id = $1", records[2].id)
            await connection.execute("ALTER TABLE audit_events ENABLE TRIGGER ALL")
        broken = verify_chain(row for _, row in await timescale_store.audit_chain())
        assert broken is not None
        assert (broken.id, broken.agent) == (records[2].id, "Practitioner/mallory")
        await connection.execute("TRUNCATE audit_events")  # not a row event: the trigger lets it through
    finally:
        await connection.close()
    assert await timescale_store.audit_chain() == []
