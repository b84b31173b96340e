"""The access commands as a user runs them: ``audit verify`` on TimescaleDB, the registry commands on SQLite."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from edge_config import DatabaseSettings
from gateway.access_cli import walk_audit_chain
from gateway.auth.audit import AuditAction, AuditOutcome, AuditRecord
from gateway.auth.policy import Relationships
from gateway.storage import ObservationStore, open_store
from tests.services import cli

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _record(minute: int) -> AuditRecord:
    return AuditRecord(T0 + timedelta(minutes=minute), AuditAction.READ, AuditOutcome.SUCCESS, "Practitioner/dr-who", "ada",
                       f"Observation/{minute}")  # fmt: skip


async def test_audit_verify_intact_then_broken_at_the_altered_row(timescale_store: ObservationStore, timescale_url: str) -> None:
    records = [_record(minute) for minute in range(5)]
    await timescale_store.append_audit(records[:3])
    await timescale_store.append_audit(records[3:])
    assert await walk_audit_chain(timescale_store, page=2) == (5, None)  # the link carries across pages
    env = {"PULSEBRIDGE_DATABASE__URL": timescale_url}
    intact = cli(env, "audit", "verify")
    assert (intact.returncode, intact.stdout, intact.stderr) == (0, "audit chain intact: 5 events\n", "")

    connection = await asyncpg.connect(timescale_url)
    try:
        async with connection.transaction():
            await connection.execute("ALTER TABLE audit_events DISABLE TRIGGER ALL")
            await connection.execute("UPDATE audit_events SET entity = 'Observation/other' WHERE event_id = $1", records[3].id)
            await connection.execute("ALTER TABLE audit_events ENABLE TRIGGER ALL")
    finally:
        await connection.close()
    assert await walk_audit_chain(timescale_store, page=2) == (3, dataclasses.replace(records[3], entity="Observation/other"))
    broken = cli(env, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stdout == f"audit chain broken at event {records[3].id} (recorded 2026-11-22T08:03:00+00:00)\n"


async def test_account_care_team_and_delegate_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'access.db'}"
    env = {"PULSEBRIDGE_DATABASE__URL": url}
    steps = [
        (("patients", "add", "--id", "ada"), "ada\n"),
        (("account", "add", "acc-ada", "--role", "patient", "--patient", "ada"), "acc-ada\tpatient\tPatient/ada\n"),
        (("account", "add", "dr-who", "--role", "practitioner", "--name", "Dr Who"), "dr-who\tpractitioner\n"),
        (("account", "add", "son", "--role", "caregiver"), "son\tcaregiver\n"),
        (("care-team", "add", "cardio", "Cardiology"), "cardio\n"),
        (("care-team", "member", "cardio", "dr-who"), "dr-who -> care team cardio\n"),
        (("care-team", "patient", "cardio", "ada"), "Patient/ada -> care team cardio\n"),
        (("delegate", "ada", "son"), "Patient/ada -> caregiver son\n"),
    ]
    for args, expected in steps:
        ran = cli(env, *args)
        assert (ran.returncode, ran.stdout, ran.stderr) == (0, expected, ""), args
    for args, message in [
        (("account", "add", "acc-bob", "--role", "patient", "--patient", "bob"), "no patient 'bob'"),
        (("delegate", "ada", "nobody"), "no patient 'ada' or no account 'nobody'"),
        (("care-team", "add", "bad id", "x"), "care team id 'bad id'"),
    ]:
        refused = cli(env, *args)
        assert refused.returncode == 2, args
        assert refused.stderr.startswith("pulsebridge: error: ")
        assert refused.stderr.count("\n") == 1
        assert message in refused.stderr

    store = await open_store(DatabaseSettings(url=url))
    try:
        assert await store.relationships("dr-who") == Relationships(care_team_patients=frozenset({"ada"}))
        assert await store.relationships("son") == Relationships(delegated_patients=frozenset({"ada"}))
    finally:
        await store.close()
