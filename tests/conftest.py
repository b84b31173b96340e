from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from edge_config import DatabaseSettings
from gateway.storage import ObservationStore, open_store
from tests.services import ADMIN_DSN, SERVICES_HINT, mosquitto

# TRUNCATE is not a row event: the append-only trigger on audit_events lets it through.
_TABLES = (
    "observations, quarantine, device_assignments, devices, patients, outbox, audit_events, observation_rollups_hourly, "
    "maintenance_state, hubs, hub_devices, accounts, care_teams, care_team_members, care_team_patients, caregiver_delegations, "
    "patient_identifiers, device_user_slots, pairing_codes, device_credentials, alerts, alert_rules, consents, consent_events, "
    "observation_corrections, account_passwords"
)


def _database_url(name: str) -> str:
    return f"postgresql:///{name}?host=/var/run/postgresql"


async def _admin(statement: str) -> None:
    try:
        connection = await asyncpg.connect(ADMIN_DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(f"PostgreSQL is not reachable at {ADMIN_DSN}: {exc}; {SERVICES_HINT}") from exc
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _run(coroutine: Coroutine[None, None, None]) -> None:
    """Run set-up coroutines on a loop of their own (fixtures may be resolved inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def timescale_url() -> Iterator[str]:
    """A database of its own for this test session, with TimescaleDB and the migrations."""
    name = f"pulsebridge_test_{os.getpid()}"
    _run(_admin(f"DROP DATABASE IF EXISTS {name}"))
    _run(_admin(f"CREATE DATABASE {name}"))

    async def migrate() -> None:
        store = await open_store(DatabaseSettings(url=_database_url(name)))
        try:
            await store.migrate()
        finally:
            await store.close()

    _run(migrate())
    yield _database_url(name)
    _run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def truncate(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"TRUNCATE {_TABLES}")
    finally:
        await connection.close()


@pytest.fixture
async def timescale_store(timescale_url: str) -> AsyncIterator[ObservationStore]:
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["timescale", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObservationStore]:
    """Each contract test runs against both adapters."""
    if request.param == "timescale":
        url = request.getfixturevalue("timescale_url")
        await truncate(url)
    else:
        url = f"sqlite:///{tmp_path / 'store.db'}"
    opened = await open_store(DatabaseSettings(url=url))
    await opened.migrate()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def broker_port(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto for tests that need their own broker."""
    with mosquitto(tmp_path) as port:
        yield port
