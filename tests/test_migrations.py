"""An empty database migrates to head: every version recorded, every table there, and twice is a no-op."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from edge_config import DatabaseSettings
from gateway.storage import open_store
from gateway.storage.migrations import migrations
from tests.services import ADMIN_DSN

TABLES = {
    "schema_migrations", "patients", "devices", "device_assignments", "observations", "quarantine", "outbox",
    "audit_events", "observation_rollups_hourly", "maintenance_state", "accounts", "care_teams", "care_team_members",
    "care_team_patients", "caregiver_delegations", "patient_identifiers", "device_user_slots", "pairing_codes",
    "device_credentials",
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
