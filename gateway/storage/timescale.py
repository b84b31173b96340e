"""TimescaleDB adapter (the only module that imports asyncpg).

Writes go through ``COPY`` into a per-connection staging table, then
``INSERT … ON CONFLICT DO NOTHING RETURNING`` into the hypertable, in the same transaction as
the batch's quarantine rows: a batch is stored whole or not at all, and a reading seen twice is
stored once and counted as a duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Self

import asyncpg

from device_adapters.errors import RegistryError, StorageError, StorageUnavailableError
from gateway.storage import (
    timescale_access,
    timescale_consent,
    timescale_dashboard,
    timescale_hubs,
    timescale_outbox,
    timescale_vitals,
)
from gateway.storage.consent import ConsentMode, ConsentRecord, ConsentStatus
from gateway.storage.corrections import CorrectionOutcome, Reviser
from gateway.storage.dashboard_port import ActivityQuery, PatientActivity
from gateway.storage.filters import (
    DEVICE_COLUMNS,
    Dialect,
    device_where,
    last_n_where,
    observation_order,
    observation_where,
    patient_where,
)
from gateway.storage.hubs import HubDevice, HubHeartbeat, HubRecord
from gateway.storage.migrations import migrations
from gateway.storage.outbox import DeadLetter, OutboxBacklog, OutboxCount, OutboxEntry, OutboxItem, OutboxOutcome
from gateway.storage.port import (
    DEVICE_INFORMATION_FIELDS,
    AccountRecord,
    AssignmentRecord,
    DeviceCredentialRecord,
    DeviceEntry,
    DeviceQuery,
    DeviceRecord,
    DeviceRegistration,
    ExportQuery,
    ExportRow,
    LastNQuery,
    MaintenancePass,
    MaintenanceReport,
    ObservationQuery,
    PatientQuery,
    PatientRecord,
    QuarantineEntry,
    QuarantineRow,
    StoredObservation,
    VitalsBucket,
    VitalsQuery,
    WriteResult,
)
from gateway.storage.rows import OpenAssignment, device_entry, group_registrations, plan_assignment
from gateway.storage.timescale_alerts import TimescaleAlerts

if TYPE_CHECKING:
    from edge_config import DatabaseSettings
    from fhir_mapper.observation import MappedObservation
    from gateway.auth.audit import AuditRecord, ChainedRecord
    from gateway.auth.pairing import PairingGrant
    from gateway.auth.policy import Relationships

_MIGRATION_LOCK = 0x70756C7365  # "pulse": one migrator at a time across gateway processes
_OBSERVATION_COLUMNS = (
    "time", "reading_key", "patient_id", "device_resource_id", "kind", "code",
    "value", "unit", "resource", "received_at", "source",
)  # fmt: skip
_COLUMN_LIST = ", ".join(_OBSERVATION_COLUMNS)
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS observations_staging (LIKE observations INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_INSERT_FROM_STAGING = (
    f"INSERT INTO observations ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM observations_staging "  # noqa: S608 - constant columns
    "ON CONFLICT DO NOTHING RETURNING reading_key"
)
_UPSERT_QUARANTINE = """
INSERT INTO quarantine (fingerprint, first_seen, last_seen, source, channel, device_id, stage, reason,
                        detail, item_index, payload)
VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (fingerprint) DO UPDATE
    SET seen_count = quarantine.seen_count + 1, last_seen = EXCLUDED.last_seen
"""
_QUARANTINE_COLUMNS = (
    "id, first_seen, last_seen, seen_count, source, channel, device_id, stage, reason, detail, item_index, payload"
)
# The stored JSON as served: meta.lastUpdated is the arrival instant (received_at), added on
# the way out so the stored bytes stay exactly what the mapper wrote.
_SERVED_RESOURCE = (
    "(resource || jsonb_build_object('meta', coalesce(resource -> 'meta', '{}'::jsonb) || jsonb_build_object("
    "'lastUpdated', to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))))::text"
)
_DIALECT = Dialect(placeholder=lambda position: f"${position}", instant=lambda instant: instant, key=lambda key: key, arrays=True)
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


@asynccontextmanager
async def _translated(action: str) -> AsyncIterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        msg = f"database unavailable while trying to {action}: {exc}"
        raise StorageUnavailableError(msg) from exc
    except asyncpg.PostgresError as exc:
        msg = f"database error while trying to {action}: {exc}"
        raise StorageError(msg) from exc


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: a quarantine row about a hostile input must still be written."""
    return None if value is None else value.replace("\x00", "\\x00")


class TimescaleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, settings: DatabaseSettings) -> Self:
        async with _translated("connect"):
            pool = await asyncpg.create_pool(
                settings.url,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                timeout=settings.connect_timeout_seconds,
                command_timeout=60,
            )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @property
    def alerts(self) -> TimescaleAlerts:
        return TimescaleAlerts(self._pool, _translated)

    async def ping(self) -> None:
        async with _translated("ping"):
            await self._pool.fetchval("SELECT 1")

    async def migrate(self) -> None:
        async with _translated("migrate"), self._pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                )
                applied = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
                for migration in migrations("timescale"):
                    if migration.version in applied:
                        continue
                    async with connection.transaction():
                        await connection.execute(migration.sql)
                        await connection.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            migration.version,
                            migration.name,
                        )
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    # -- registry -------------------------------------------------------------------------

    async def add_patient(self, patient_id: str, name: str | None, mrn: str | None) -> PatientRecord:
        try:
            async with _translated("add a patient"):
                await self._pool.execute("INSERT INTO patients (id, name, mrn) VALUES ($1, $2, $3)", patient_id, name, mrn)
        except StorageError as exc:
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                msg = f"a patient with id {patient_id!r} or MRN {mrn!r} already exists"
                raise RegistryError(msg) from exc
            raise
        return PatientRecord(patient_id, name, mrn)

    async def list_patients(self) -> list[PatientRecord]:
        async with _translated("list patients"):
            rows = await self._pool.fetch("SELECT id, name, mrn FROM patients ORDER BY created_at, id")
        return [PatientRecord(row["id"], row["name"], row["mrn"]) for row in rows]

    async def add_device(self, device_id: str, kind: str | None, display_name: str | None) -> DeviceRecord:
        record = DeviceRecord(uuid.uuid4(), device_id, kind, display_name)
        try:
            async with _translated("add a device"):
                await self._pool.execute(
                    "INSERT INTO devices (resource_id, device_id, kind, display_name) VALUES ($1, $2, $3, $4)",
                    record.resource_id, device_id, kind, display_name,
                )  # fmt: skip
        except StorageError as exc:
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                msg = f"a device with id {device_id!r} already exists"
                raise RegistryError(msg) from exc
            raise
        return record

    async def list_devices(self) -> list[DeviceRecord]:
        async with _translated("list devices"):
            rows = await self._pool.fetch(
                "SELECT resource_id, device_id, kind, display_name FROM devices ORDER BY created_at, device_id"
            )
        return [DeviceRecord(row["resource_id"], row["device_id"], row["kind"], row["display_name"]) for row in rows]

    async def update_device_information(self, device_id: str, information: Mapping[str, str]) -> None:
        fields = [name for name in DEVICE_INFORMATION_FIELDS if name in information]
        if not fields:
            return
        assignments = ", ".join(f"{name} = ${index}" for index, name in enumerate(fields, start=2))
        async with _translated("record device information"):
            await self._pool.execute(
                f"UPDATE devices SET {assignments} WHERE device_id = $1",  # noqa: S608 - column names from a constant list
                device_id,
                *(information[name][:256] for name in fields),
            )

    async def device_information(self, device_id: str) -> dict[str, str]:
        async with _translated("read device information"):
            columns = ", ".join(DEVICE_INFORMATION_FIELDS)
            row = await self._pool.fetchrow(f"SELECT {columns} FROM devices WHERE device_id = $1", device_id)  # noqa: S608 - constant columns
        return {} if row is None else {name: row[name] for name in DEVICE_INFORMATION_FIELDS if row[name] is not None}

    async def assign_device(self, device_id: str, patient_id: str, valid_from: datetime | None) -> AssignmentRecord:
        async with _translated("assign a device"), self._pool.acquire() as connection, connection.transaction():
            resource_id = await timescale_access.lock_device_for(connection, device_id, patient_id)
            history = await connection.fetch(
                "SELECT id, patient_id, valid_from, valid_to FROM device_assignments WHERE device_resource_id = $1",
                resource_id,
            )
            open_rows = [row for row in history if row["valid_to"] is None]
            current = (
                OpenAssignment(open_rows[0]["id"], open_rows[0]["patient_id"], open_rows[0]["valid_from"]) if open_rows else None
            )
            plan = plan_assignment(device_id, patient_id, valid_from, current=current, has_history=bool(history))
            if plan.unchanged:
                return plan.record
            start = plan.record.valid_from
            if plan.close_row_id is not None:
                await connection.execute("UPDATE device_assignments SET valid_to = $1 WHERE id = $2", start, plan.close_row_id)
            await connection.execute(
                "INSERT INTO device_assignments (device_resource_id, patient_id, valid_from) VALUES ($1, $2, $3)",
                resource_id, patient_id, start,
            )  # fmt: skip
        return plan.record

    async def end_assignment(self, device_id: str, at: datetime) -> bool:
        async with _translated("end an assignment"), self._pool.acquire() as connection:
            status = await connection.execute(
                "UPDATE device_assignments a SET valid_to = $2 FROM devices d WHERE d.device_id = $1 "
                "AND a.device_resource_id = d.resource_id AND a.valid_to IS NULL AND (a.valid_from IS NULL OR a.valid_from < $2)",
                device_id, at,
            )  # fmt: skip
        return status != "UPDATE 0"

    async def registrations(self, device_ids: Collection[str]) -> dict[str, DeviceRegistration]:
        wanted = list(device_ids)
        async with _translated("resolve devices"), self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT d.resource_id, d.device_id, d.kind, d.display_name, a.patient_id, a.valid_from, a.valid_to "
                "FROM devices d LEFT JOIN device_assignments a ON a.device_resource_id = d.resource_id "
                "WHERE d.device_id = ANY($1::text[])",
                wanted,
            )
            slots = await connection.fetch(
                "SELECT d.device_id, s.user_slot, s.patient_id, s.valid_from, s.valid_to FROM device_user_slots s "
                "JOIN devices d ON d.resource_id = s.device_resource_id WHERE d.device_id = ANY($1::text[]) ORDER BY s.id",
                wanted,
            )
        return group_registrations([dict(row) for row in rows], [dict(row) for row in slots])

    # -- observations and quarantine ----------------------------------------------------------

    async def write_batch(
        self,
        observations: Sequence[MappedObservation],
        quarantine: Sequence[QuarantineEntry],
        outbox: Sequence[OutboxEntry] = (),
    ) -> WriteResult:
        inserted: frozenset[str] = frozenset()
        async with _translated("store a batch"), self._pool.acquire() as connection, connection.transaction():
            if observations:
                await connection.execute(_CREATE_STAGING)
                await connection.copy_records_to_table(
                    "observations_staging",
                    records=[
                        (o.time, o.key, o.patient_id, o.device_resource_id, o.kind, o.code, o.value, o.unit,
                         o.resource.decode(), o.received_at, o.source)
                        for o in observations
                    ],
                    columns=_OBSERVATION_COLUMNS,
                )  # fmt: skip
                inserted = frozenset(str(row["reading_key"]) for row in await connection.fetch(_INSERT_FROM_STAGING))
                await timescale_outbox.enqueue(connection, outbox, inserted, datetime.now(UTC))
            if quarantine:
                await connection.executemany(
                    _UPSERT_QUARANTINE,
                    [
                        (q.fingerprint, q.received_at, q.source, _text(q.channel), _text(q.device_id), q.stage, q.reason,
                         _text(q.detail), q.item_index, q.payload)
                        for q in quarantine
                    ],
                )  # fmt: skip
        return WriteResult.of(len(observations), inserted, len(quarantine))

    # -- FHIR search (issue 6) -----------------------------------------------------------------

    async def search_observations(self, query: ObservationQuery) -> list[StoredObservation]:
        where = observation_where(query, _DIALECT, paged=True)
        sql = (
            f"SELECT reading_key, time, {_SERVED_RESOURCE} AS resource FROM observations {where.sql()} "  # noqa: S608 - built from constants, values are bound
            f"{observation_order(query)} LIMIT {where.bind(query.count)}"
        )
        async with _translated("search observations"):
            rows = await self._pool.fetch(sql, *where.args)
        return [StoredObservation(row["reading_key"], row["time"], row["resource"]) for row in rows]

    async def count_observations(self, query: ObservationQuery) -> int:
        where = observation_where(query, _DIALECT, paged=False)
        async with _translated("count observations"):
            total: int = await self._pool.fetchval(f"SELECT count(*) FROM observations {where.sql()}", *where.args)  # noqa: S608 - built from constants, values are bound
        return total

    async def last_observations(self, query: LastNQuery) -> list[StoredObservation]:
        # One LATERAL probe of (patient_id, kind, time DESC) per kind: each reads at most
        # max_per_kind index entries from the newest chunk backwards, however long the history.
        where = last_n_where(query, _DIALECT, "k.kind")
        kinds = where.bind(sorted(query.kinds))
        limit = where.bind(query.max_per_kind)
        sql = (
            f"SELECT o.reading_key, o.time, o.resource FROM unnest({kinds}::text[]) AS k(kind) "  # noqa: S608 - built from constants, values are bound
            f"CROSS JOIN LATERAL (SELECT reading_key, time, {_SERVED_RESOURCE} AS resource FROM observations {where.sql()} "
            f"ORDER BY time DESC, reading_key DESC LIMIT {limit}) AS o ORDER BY k.kind, o.time DESC, o.reading_key DESC"
        )
        async with _translated("find the latest observations"):
            rows = await self._pool.fetch(sql, *where.args)
        return [StoredObservation(row["reading_key"], row["time"], row["resource"]) for row in rows]

    async def search_patients(self, query: PatientQuery) -> list[PatientRecord]:
        where = patient_where(query, _DIALECT)
        sql = f"SELECT id, name, mrn FROM patients {where.sql()} ORDER BY id LIMIT {where.bind(query.count)}"  # noqa: S608 - built from constants, values are bound
        async with _translated("search patients"):
            rows = await self._pool.fetch(sql, *where.args)
        return [PatientRecord(row["id"], row["name"], row["mrn"]) for row in rows]

    async def search_devices(self, query: DeviceQuery) -> list[DeviceEntry]:
        where = device_where(query, _DIALECT)
        sql = (
            f"SELECT {DEVICE_COLUMNS}, a.patient_id FROM devices d "  # noqa: S608 - built from constants, values are bound
            "LEFT JOIN device_assignments a ON a.device_resource_id = d.resource_id AND a.valid_to IS NULL "
            f"{where.sql()} ORDER BY d.device_id LIMIT {where.bind(query.count)}"
        )
        async with _translated("search devices"):
            rows = await self._pool.fetch(sql, *where.args)
        return [device_entry(dict(row)) for row in rows]

    async def get_observation(self, reading_key: uuid.UUID) -> str | None:
        async with _translated("read an observation"):
            resource: str | None = await self._pool.fetchval(
                f"SELECT {_SERVED_RESOURCE} FROM observations WHERE reading_key = $1 LIMIT 1", reading_key,  # noqa: S608 - constant expression
            )  # fmt: skip
        return resource

    # -- vitals, export, retention and rollups (SQL in timescale_vitals) -------------------------

    async def vitals_series(self, query: VitalsQuery) -> list[VitalsBucket]:
        async with _translated("read a vitals series"):
            return await timescale_vitals.vitals_series(self._pool, query)

    async def export_page(self, query: ExportQuery) -> list[ExportRow]:
        async with _translated("read an export page"):
            return await timescale_vitals.export_page(self._pool, query)

    async def run_maintenance(self, work: MaintenancePass) -> MaintenanceReport:
        async with _translated("run maintenance"):
            return await timescale_vitals.run_maintenance(self._pool, work)

    async def hourly_rollups(self, patient_id: str, kind: str, start: datetime, end: datetime) -> list[VitalsBucket]:
        async with _translated("read hourly rollups"):
            return await timescale_vitals.hourly_rollups(self._pool, patient_id, kind, start, end)

    async def list_quarantine(self, limit: int, reason: str | None = None) -> list[QuarantineRow]:
        async with _translated("list quarantine"):
            rows = await self._pool.fetch(
                f"SELECT {_QUARANTINE_COLUMNS} FROM quarantine WHERE ($2::text IS NULL OR reason = $2) "  # noqa: S608 - constant columns
                "ORDER BY last_seen DESC, id DESC LIMIT $1",
                limit,
                reason,
            )
        return [QuarantineRow(**dict(row)) for row in rows]

    async def get_quarantine(self, row_id: int) -> QuarantineRow | None:
        async with _translated("read a quarantine row"):
            row = await self._pool.fetchrow(f"SELECT {_QUARANTINE_COLUMNS} FROM quarantine WHERE id = $1", row_id)  # noqa: S608 - constant columns
        return None if row is None else QuarantineRow(**dict(row))

    async def delete_quarantine(self, row_id: int) -> None:
        async with _translated("delete a quarantine row"):
            await self._pool.execute("DELETE FROM quarantine WHERE id = $1", row_id)

    # -- patients, devices and access (SQL in timescale_access) ---------------------------------

    async def add_account(self, account_id: str, role: str, display_name: str | None, patient_id: str | None) -> AccountRecord:
        async with _translated("add an account"):
            return await timescale_access.add_account(self._pool, account_id, role, display_name, patient_id)

    async def get_account(self, account_id: str) -> AccountRecord | None:
        async with _translated("read an account"):
            return await timescale_access.get_account(self._pool, account_id)

    async def add_care_team(self, team_id: str, name: str) -> None:
        async with _translated("add a care team"):
            await timescale_access.add_care_team(self._pool, team_id, name)

    async def add_care_team_member(self, team_id: str, account_id: str) -> None:
        async with _translated("add a care team member"):
            await timescale_access.add_care_team_member(self._pool, team_id, account_id)

    async def add_care_team_patient(self, team_id: str, patient_id: str) -> None:
        async with _translated("add a patient to a care team"):
            await timescale_access.add_care_team_patient(self._pool, team_id, patient_id)

    async def remove_care_team_patient(self, team_id: str, patient_id: str) -> None:
        async with _translated("remove a patient from a care team"):
            await timescale_access.remove_care_team_patient(self._pool, team_id, patient_id)

    async def delegate(self, patient_id: str, account_id: str) -> None:
        async with _translated("delegate to a caregiver"):
            await timescale_access.delegate(self._pool, patient_id, account_id)

    async def revoke_delegation(self, patient_id: str, account_id: str) -> None:
        async with _translated("revoke a delegation"):
            await timescale_access.revoke_delegation(self._pool, patient_id, account_id)

    async def relationships(self, account_id: str) -> Relationships:
        async with _translated("read relationships"):
            return await timescale_access.relationships(self._pool, account_id)

    async def add_patient_identifier(self, patient_id: str, system: str, value: str) -> None:
        async with _translated("add a patient identifier"):
            await timescale_access.add_patient_identifier(self._pool, patient_id, system, value)

    async def patient_by_identifier(self, system: str, value: str) -> str | None:
        async with _translated("find a patient by identifier"):
            patient_id: str | None = await self._pool.fetchval(
                "SELECT patient_id FROM patient_identifiers WHERE system = $1 AND value = $2", system, value
            )
        return patient_id

    async def identifiers_of(self, patient_ids: Collection[str]) -> dict[str, list[tuple[str, str]]]:
        async with _translated("read patient identifiers"):
            rows = await self._pool.fetch(
                "SELECT patient_id, system, value FROM patient_identifiers WHERE patient_id = ANY($1::text[]) "
                "ORDER BY patient_id, system, value",
                list(patient_ids),
            )
        found: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            found.setdefault(row["patient_id"], []).append((row["system"], row["value"]))
        return found

    async def assign_user_slot(self, device_id: str, user_slot: int, patient_id: str, valid_from: datetime | None) -> None:
        async with _translated("assign a user slot"):
            await timescale_access.assign_user_slot(self._pool, device_id, user_slot, patient_id, valid_from)

    async def add_pairing_code(self, digest: bytes, grant: PairingGrant) -> None:
        async with _translated("add a pairing code"):
            await timescale_access.add_pairing_code(self._pool, digest, grant)

    async def redeem_pairing_code(self, digest: bytes, device_id: str, now: datetime) -> PairingGrant | None:
        async with _translated("redeem a pairing code"):
            return await timescale_access.redeem_pairing_code(self._pool, digest, device_id, now)

    async def add_device_credential(self, device_id: str, kind: str, secret_hash: str) -> int:
        async with _translated("add a device credential"):
            return await timescale_access.add_device_credential(self._pool, device_id, kind, secret_hash)

    async def device_credentials(self, device_id: str) -> list[DeviceCredentialRecord]:
        async with _translated("read device credentials"):
            return await timescale_access.device_credentials(self._pool, device_id)

    async def revoke_device_credentials(self, device_id: str, now: datetime) -> int:
        async with _translated("revoke device credentials"):
            return await timescale_access.revoke_device_credentials(self._pool, device_id, now)

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        async with _translated("append audit events"):
            await timescale_access.append_audit(self._pool, records)

    async def audit_chain(self, after_id: int = 0, limit: int = 1000) -> list[tuple[int, ChainedRecord]]:
        async with _translated("read the audit chain"):
            return await timescale_access.audit_chain(self._pool, after_id, limit)

    async def search_audit(self, patient_id: str | None, limit: int) -> list[AuditRecord]:
        async with _translated("search audit events"):
            return await timescale_access.search_audit(self._pool, patient_id, limit)

    # -- the dashboard (SQL in timescale_dashboard) ------------------------------------------------

    async def set_account_password(self, account_id: str, password_hash: str) -> None:
        async with _translated("set an account password"):
            await timescale_dashboard.set_account_password(self._pool, account_id, password_hash)

    async def account_password(self, account_id: str) -> str | None:
        async with _translated("read an account password"):
            return await timescale_dashboard.account_password(self._pool, account_id)

    async def patient_activity(self, query: ActivityQuery) -> PatientActivity:
        async with _translated("read a patient's device activity"):
            return await timescale_dashboard.patient_activity(self._pool, query)

    # -- the push outbox ---------------------------------------------------------------------------

    async def claim_outbox(
        self, destination: str, limit: int, now: datetime, lease: timedelta, *, consent: ConsentMode
    ) -> list[OutboxItem]:
        async with _translated("claim outbox rows"):
            return await timescale_outbox.claim(self._pool, destination, limit, now, lease, consent=consent)

    async def finish_outbox(self, outcomes: Sequence[tuple[int, OutboxOutcome]], now: datetime) -> None:
        async with _translated("finish outbox rows"):
            await timescale_outbox.finish(self._pool, outcomes, now)

    async def outbox_status(self) -> list[OutboxCount]:
        async with _translated("read the outbox status"):
            return await timescale_outbox.status(self._pool)

    async def outbox_backlog(self) -> list[OutboxBacklog]:
        async with _translated("read the outbox backlog"):
            return await timescale_outbox.backlog(self._pool)

    async def dead_letters(self, destination: str | None, after_id: int, limit: int) -> list[DeadLetter]:
        async with _translated("list dead letters"):
            return await timescale_outbox.dead_letters(self._pool, destination, after_id, limit)

    async def replay_dead_letters(self, ids: Sequence[int] | None, destination: str | None, now: datetime) -> int:
        async with _translated("replay dead letters"):
            return await timescale_outbox.replay(self._pool, ids, destination, now)

    # -- consent and corrections (SQL in timescale_consent) ---------------------------------------

    async def set_consent(
        self, patient_id: str, destination: str, status: ConsentStatus, recorded_by: str, now: datetime
    ) -> ConsentRecord:
        async with _translated("record a consent"):
            return await timescale_consent.set_consent(
                self._pool, patient_id, destination, status, recorded_by=recorded_by, now=now
            )

    async def consents(self, patient_id: str) -> list[ConsentRecord]:
        async with _translated("read consents"):
            return await timescale_consent.consents(self._pool, patient_id)

    async def consent_history(self, patient_id: str) -> list[ConsentRecord]:
        async with _translated("read the consent history"):
            return await timescale_consent.consent_history(self._pool, patient_id)

    async def correct_observation(
        self, reading_key: uuid.UUID, revise: Reviser, destinations: Mapping[str, ConsentMode], now: datetime
    ) -> CorrectionOutcome | None:
        async with _translated("correct an observation"):
            return await timescale_consent.correct_observation(self._pool, reading_key, revise, destinations, now)

    # -- edge hubs ---------------------------------------------------------------------------------

    async def pair_hub_device(self, hub_id: str, device_id: str, address: str, now: datetime) -> None:
        async with _translated("pair a device with a hub"):
            await timescale_hubs.pair(self._pool, hub_id, device_id, address, now)

    async def unpair_hub_device(self, hub_id: str, device_id: str) -> bool:
        async with _translated("unpair a device from a hub"):
            return await timescale_hubs.unpair(self._pool, hub_id, device_id)

    async def hub_devices(self, hub_ids: Collection[str] | None = None) -> list[HubDevice]:
        async with _translated("read hub pairings"):
            return await timescale_hubs.devices(self._pool, hub_ids)

    async def record_hub_presence(self, hub_id: str, online: bool, at: datetime) -> None:  # noqa: FBT001 - the state itself
        async with _translated("record a hub's presence"):
            await timescale_hubs.presence(self._pool, hub_id, online, at)

    async def record_hub_heartbeat(self, beat: HubHeartbeat) -> None:
        async with _translated("record a hub's heartbeat"):
            await timescale_hubs.heartbeat(self._pool, beat)

    async def list_hubs(self) -> list[HubRecord]:
        async with _translated("list hubs"):
            return await timescale_hubs.hubs(self._pool)
