"""An empty database migrates to head: every version recorded, every table there, and twice is a no-op."""

from __future__ import annotations

import os
import sqlite3
import uuid
from asyncio import run as asyncio_run
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from edge_config import DatabaseSettings
from gateway.storage import open_store
from gateway.storage.migrations import migrations, sqlite_statements
from tests.services import ADMIN_DSN

TABLES = {
    "schema_migrations", "patients", "devices", "device_assignments", "observations", "quarantine", "outbox",
    "audit_events", "observation_rollups_hourly", "maintenance_state", "accounts", "care_teams", "care_team_members",
    "care_team_patients", "caregiver_delegations", "patient_identifiers", "device_user_slots", "pairing_codes",
    "device_credentials", "consents", "consent_events", "observation_corrections",
}  # fmt: skip


@pytest.fixture
async def empty_timescale() -> AsyncIterator[str]:
    name = f"pulsebridge_migrate_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"postgresql:///{name}?host=/var/run/postgresql"
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def _migrate(url: str) -> None:
    store = await open_store(DatabaseSettings(url=url))
    try:
        await store.migrate()
    finally:
        await store.close()


async def test_timescale_migrates_to_head_once(empty_timescale: str) -> None:
    head = [(m.version, m.name) for m in migrations("timescale")]
    await _migrate(empty_timescale)
    connection = await asyncpg.connect(empty_timescale)
    try:
        recorded = await connection.fetch("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        assert [(row["version"], row["name"]) for row in recorded] == head
        assert head[-1] >= (3, "outbox_audit_rollups")
        tables = {
            row["tablename"] for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert tables >= TABLES
        hypertables = await connection.fetch("SELECT hypertable_name FROM timescaledb_information.hypertables")
        assert [row["hypertable_name"] for row in hypertables] == ["observations"]

        await _migrate(empty_timescale)
        again = await connection.fetch("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        assert again == recorded
    finally:
        await connection.close()


async def test_sqlite_migrates_to_head_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    head = [(m.version, m.name) for m in migrations("sqlite")]
    assert head == [(m.version, m.name) for m in migrations("timescale")]  # both dialects at the same head
    await _migrate(f"sqlite:///{path}")

    def read() -> tuple[list[tuple[int, str, int]], set[str]]:
        with sqlite3.connect(path) as connection:
            recorded = connection.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return recorded, tables

    recorded, tables = read()
    assert [(version, name) for version, name, _ in recorded] == head
    assert tables >= TABLES
    await _migrate(f"sqlite:///{path}")
    assert read() == (recorded, tables)


def test_a_sqlite_store_that_ran_0010_before_0006_keeps_its_outbox(tmp_path: Path) -> None:
    """0006 rebuilds the SQLite outbox (action column, uniqueness on creates only) whichever of 0006 and 0010 ran first."""
    path = tmp_path / "older.db"
    with sqlite3.connect(path, isolation_level=None) as connection:
        connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER)")
        for migration in migrations("sqlite"):
            if migration.version == 6:
                continue
            for statement in sqlite_statements(migration.sql):
                connection.execute(statement)
            connection.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (migration.version, migration.name))
            if migration.version == 5:
                connection.execute("ALTER TABLE outbox ADD COLUMN last_status integer")
                connection.execute("ALTER TABLE outbox ADD COLUMN last_outcome text")
        connection.execute(
            "INSERT INTO outbox (reading_key, time, destination, status, next_attempt_at, created_at, updated_at, last_error, "
            "last_status) VALUES ('k', 1, 'ehr-a', 'dead', 1, 1, 1, '422', 422)"
        )
    asyncio_run(_migrate(f"sqlite:///{path}"))
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(outbox)")]
        assert {"action", "last_status", "last_outcome"} <= set(columns)
        assert connection.execute("SELECT reading_key, status, last_error, action FROM outbox").fetchall() == [
            ("k", "dead", "422", "create")
        ]
        for action in ("update", "update"):  # updates of one reading may queue side by side; a second create may not
            connection.execute(
                "INSERT INTO outbox (reading_key, time, destination, action, next_attempt_at, created_at, updated_at) "
                "VALUES ('k', 1, 'ehr-a', ?, 1, 1, 1)",
                (action,),
            )
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(
                "INSERT INTO outbox (reading_key, time, destination, next_attempt_at, created_at, updated_at) "
                "VALUES ('k', 1, 'ehr-a', 1, 1, 1)"
            )


async def test_timescale_upgrades_a_store_with_readings_and_queued_rows_to_0006(empty_timescale: str) -> None:
    connection = await asyncpg.connect(empty_timescale)
    try:
        await connection.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in migrations("timescale"):
            if migration.version != 6:
                await connection.execute(migration.sql)
                await connection.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version,
                                         migration.name)  # fmt: skip
        await connection.execute(
            "INSERT INTO observations (time, reading_key, patient_id, device_resource_id, kind, code, value, unit, resource, "
            "received_at, source) VALUES ('2026-11-22T08:00:00Z', $1, 'ada', $1, 'heart_rate', '8867-4', 70, '/min', '{}', "
            "now(), 'mqtt')",
            uuid.UUID(int=1),
        )
        await connection.execute(
            "INSERT INTO outbox (reading_key, time, destination) VALUES ($1, '2026-11-22T08:00:00Z', 'ehr-a')", uuid.UUID(int=1)
        )
        await _migrate(empty_timescale)
        assert await connection.fetchval("SELECT status FROM observations") == "final"
        assert await connection.fetchval("SELECT action FROM outbox") == "create"
        for _ in range(2):  # updates of one reading queue side by side; a second create does not
            await connection.execute(
                "INSERT INTO outbox (reading_key, time, destination, action) VALUES ($1, '2026-11-22T08:00:00Z', 'ehr-a', "
                "'update')",
                uuid.UUID(int=1),
            )
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(
                "INSERT INTO outbox (reading_key, time, destination) VALUES ($1, '2026-11-22T08:00:00Z', 'ehr-a')",
                uuid.UUID(int=1),
            )
    finally:
        await connection.close()
