"""Embedded SQLite adapter: the demo's store, behind the same port as TimescaleDB.

One connection in WAL mode with ``synchronous=FULL`` (a committed batch survives a crash), used
from a worker thread one call at a time. Times are UTC microseconds since 1970.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from device_adapters.errors import RegistryError, StorageError, StorageUnavailableError
from gateway.storage import sqlite_access, sqlite_consent, sqlite_dashboard, sqlite_hubs, sqlite_outbox, sqlite_vitals
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
from gateway.storage.migrations import migrations, sqlite_statements
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
from gateway.storage.sqlite_alerts import SqliteAlerts
from gateway.storage.sqlite_time import instant as _instant
from gateway.storage.sqlite_time import micros as _micros
from gateway.storage.sqlite_time import required_instant as _required_instant

if TYPE_CHECKING:
    from edge_config import DatabaseSettings
    from fhir_mapper.observation import MappedObservation
    from gateway.auth.audit import AuditRecord, ChainedRecord
    from gateway.auth.pairing import PairingGrant
    from gateway.auth.policy import Relationships

T = TypeVar("T")
P = ParamSpec("P")
_QUARANTINE_COLUMNS = (
    "id, first_seen, last_seen, seen_count, source, channel, device_id, stage, reason, detail, item_index, payload"
)
# The stored JSON as served: meta.lastUpdated is received_at (UTC microseconds) as an instant,
# added on the way out so the stored text stays what the mapper wrote (json_set keeps numbers as written).
_SERVED_RESOURCE = (
    "json_set(resource, '$.meta.lastUpdated', strftime('%Y-%m-%dT%H:%M:%S', received_at / 1000000, 'unixepoch') "
    "|| printf('.%06dZ', received_at % 1000000))"
)


_DIALECT = Dialect(placeholder=lambda _: "?", instant=_micros, key=str, arrays=False)


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` (as SQLAlchemy spells them)."""
    return Path(url.removeprefix("sqlite:///"))


class SqliteStore:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, settings: DatabaseSettings) -> Self:
        path = path_from_url(settings.url)

        def connect() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=settings.connect_timeout_seconds
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            return connection

        try:
            return cls(await asyncio.to_thread(connect))
        except (sqlite3.Error, OSError) as exc:
            msg = f"cannot open the SQLite store at {path}: {exc}"
            raise StorageUnavailableError(msg) from exc

    async def _run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            try:
                return await asyncio.to_thread(work, self._connection)
            except sqlite3.OperationalError as exc:
                msg = f"SQLite store unavailable while trying to {action}: {exc}"
                raise StorageUnavailableError(msg) from exc
            except sqlite3.Error as exc:
                msg = f"SQLite error while trying to {action}: {exc}"
                raise StorageError(msg) from exc

    async def _transaction(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        def run(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        return await self._run(action, run)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._connection.close)

    @property
    def alerts(self) -> SqliteAlerts:
        return SqliteAlerts(self._read, self._write)

    async def ping(self) -> None:
        await self._run("ping", lambda connection: connection.execute("SELECT 1").fetchone())

    async def migrate(self) -> None:
        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            )
            applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
            for migration in migrations("sqlite"):
                if migration.version in applied:
                    continue
                connection.execute("BEGIN IMMEDIATE")
                try:
                    for statement in sqlite_statements(migration.sql):
                        connection.execute(statement)
                    connection.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (migration.version, migration.name, _micros(datetime.now(UTC))),
                    )
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")

        await self._run("migrate", work)

    # -- registry -------------------------------------------------------------------------

    async def add_patient(self, patient_id: str, name: str | None, mrn: str | None) -> PatientRecord:
        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO patients (id, name, mrn, created_at) VALUES (?, ?, ?, ?)",
                (patient_id, name, mrn, _micros(datetime.now(UTC))),
            )

        try:
            await self._transaction("add a patient", work)
        except StorageError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                msg = f"a patient with id {patient_id!r} or MRN {mrn!r} already exists"
                raise RegistryError(msg) from exc
            raise
        return PatientRecord(patient_id, name, mrn)

    async def list_patients(self) -> list[PatientRecord]:
        rows = await self._run(
            "list patients",
            lambda connection: connection.execute("SELECT id, name, mrn FROM patients ORDER BY created_at, id").fetchall(),
        )
        return [PatientRecord(row["id"], row["name"], row["mrn"]) for row in rows]

    async def add_device(self, device_id: str, kind: str | None, display_name: str | None) -> DeviceRecord:
        record = DeviceRecord(uuid.uuid4(), device_id, kind, display_name)

        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO devices (resource_id, device_id, kind, display_name, created_at) VALUES (?, ?, ?, ?, ?)",
                (str(record.resource_id), device_id, kind, display_name, _micros(datetime.now(UTC))),
            )

        try:
            await self._transaction("add a device", work)
        except StorageError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                msg = f"a device with id {device_id!r} already exists"
                raise RegistryError(msg) from exc
            raise
        return record

    async def list_devices(self) -> list[DeviceRecord]:
        rows = await self._run(
            "list devices",
            lambda connection: connection.execute(
                "SELECT resource_id, device_id, kind, display_name FROM devices ORDER BY created_at, device_id",
            ).fetchall(),
        )
        return [DeviceRecord(uuid.UUID(row["resource_id"]), row["device_id"], row["kind"], row["display_name"]) for row in rows]

    async def update_device_information(self, device_id: str, information: Mapping[str, str]) -> None:
        fields = [name for name in DEVICE_INFORMATION_FIELDS if name in information]
        if not fields:
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [information[name][:256] for name in fields]
        await self._transaction(
            "record device information",
            lambda connection: connection.execute(f"UPDATE devices SET {assignments} WHERE device_id = ?", (*values, device_id)),  # noqa: S608 - constant column names
        )

    async def device_information(self, device_id: str) -> dict[str, str]:
        columns = ", ".join(DEVICE_INFORMATION_FIELDS)
        row = await self._run(
            "read device information",
            lambda connection: connection.execute(f"SELECT {columns} FROM devices WHERE device_id = ?", (device_id,)).fetchone(),  # noqa: S608 - constant columns
        )
        return {} if row is None else {name: row[name] for name in DEVICE_INFORMATION_FIELDS if row[name] is not None}

    async def assign_device(self, device_id: str, patient_id: str, valid_from: datetime | None) -> AssignmentRecord:
        def work(connection: sqlite3.Connection) -> AssignmentRecord:
            resource_id = sqlite_access.device_for(connection, device_id, patient_id)
            history = connection.execute(
                "SELECT id, patient_id, valid_from, valid_to FROM device_assignments WHERE device_resource_id = ?",
                (resource_id,),
            ).fetchall()
            current = next(
                (
                    OpenAssignment(row["id"], row["patient_id"], _instant(row["valid_from"]))
                    for row in history
                    if row["valid_to"] is None
                ),
                None,
            )
            plan = plan_assignment(device_id, patient_id, valid_from, current=current, has_history=bool(history))
            if plan.unchanged:
                return plan.record
            start = plan.record.valid_from
            if plan.close_row_id is not None and start is not None:
                connection.execute("UPDATE device_assignments SET valid_to = ? WHERE id = ?", (_micros(start), plan.close_row_id))
            connection.execute(
                "INSERT INTO device_assignments (device_resource_id, patient_id, valid_from, created_at) VALUES (?, ?, ?, ?)",
                (resource_id, patient_id, None if start is None else _micros(start), _micros(datetime.now(UTC))),
            )
            return plan.record

        return await self._transaction("assign a device", work)

    async def end_assignment(self, device_id: str, at: datetime) -> bool:
        def work(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "UPDATE device_assignments SET valid_to = ? WHERE valid_to IS NULL AND (valid_from IS NULL OR valid_from < ?) "
                "AND device_resource_id = (SELECT resource_id FROM devices WHERE device_id = ?)",
                (_micros(at), _micros(at), device_id),
            )
            return cursor.rowcount > 0

        return await self._transaction("end an assignment", work)

    async def registrations(self, device_ids: Collection[str]) -> dict[str, DeviceRegistration]:
        wanted = list(device_ids)
        if not wanted:
            return {}

        def work(connection: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            marks = ", ".join("?" for _ in wanted)
            rows = connection.execute(
                "SELECT d.resource_id, d.device_id, d.kind, d.display_name, a.patient_id, a.valid_from, a.valid_to "  # noqa: S608 - placeholders only
                "FROM devices d LEFT JOIN device_assignments a ON a.device_resource_id = d.resource_id "
                f"WHERE d.device_id IN ({marks})",
                wanted,
            ).fetchall()
            assignments = [
                {**dict(row), "valid_from": _instant(row["valid_from"]), "valid_to": _instant(row["valid_to"])} for row in rows
            ]
            return assignments, sqlite_access.user_slot_rows(connection, wanted)

        return group_registrations(*await self._run("resolve devices", work))

    # -- observations and quarantine ----------------------------------------------------------

    async def write_batch(
        self,
        observations: Sequence[MappedObservation],
        quarantine: Sequence[QuarantineEntry],
        outbox: Sequence[OutboxEntry] = (),
    ) -> WriteResult:
        def work(connection: sqlite3.Connection) -> frozenset[str]:
            # One statement per row: its rowcount says whether this key was new, which a
            # conditional create must tell its caller (executemany only gives the total).
            inserted: set[str] = set()
            for o in observations:
                cursor = connection.execute(
                    "INSERT OR IGNORE INTO observations (time, reading_key, patient_id, device_resource_id, kind, code, value, "
                    "unit, resource, received_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_micros(o.time), o.key, o.patient_id, str(o.device_resource_id), o.kind, o.code,
                     None if o.value is None else str(o.value), o.unit, o.resource.decode(), _micros(o.received_at), o.source),
                )  # fmt: skip
                if cursor.rowcount:
                    inserted.add(o.key)
            connection.executemany(
                "INSERT INTO quarantine (fingerprint, first_seen, last_seen, source, channel, device_id, stage, reason, detail, "
                "item_index, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE "
                "SET seen_count = seen_count + 1, last_seen = excluded.last_seen",
                [
                    (q.fingerprint, _micros(q.received_at), _micros(q.received_at), q.source, q.channel, q.device_id, q.stage,
                     q.reason, q.detail, q.item_index, q.payload)
                    for q in quarantine
                ],
            )  # fmt: skip
            sqlite_outbox.enqueue(connection, outbox, inserted, datetime.now(UTC))
            return frozenset(inserted)

        inserted = await self._transaction("store a batch", work)
        return WriteResult.of(len(observations), inserted, len(quarantine))

    # -- FHIR search (issue 6) -----------------------------------------------------------------

    async def search_observations(self, query: ObservationQuery) -> list[StoredObservation]:
        where = observation_where(query, _DIALECT, paged=True)
        sql = (
            f"SELECT reading_key, time, {_SERVED_RESOURCE} AS resource FROM observations {where.sql()} "  # noqa: S608 - placeholders only
            f"{observation_order(query)} LIMIT {where.bind(query.count)}"
        )
        rows = await self._run("search observations", lambda connection: connection.execute(sql, where.args).fetchall())
        return [_stored(row) for row in rows]

    async def count_observations(self, query: ObservationQuery) -> int:
        where = observation_where(query, _DIALECT, paged=False)
        sql = f"SELECT count(*) FROM observations {where.sql()}"  # noqa: S608 - placeholders only
        row = await self._run("count observations", lambda connection: connection.execute(sql, where.args).fetchone())
        return int(row[0])

    async def last_observations(self, query: LastNQuery) -> list[StoredObservation]:
        where = last_n_where(query, _DIALECT, "?")
        # The kind placeholder comes right after the patient's: one indexed query per kind.
        sql = (
            f"SELECT reading_key, time, {_SERVED_RESOURCE} AS resource FROM observations {where.sql()} "  # noqa: S608 - placeholders only
            "ORDER BY time DESC, reading_key DESC LIMIT ?"
        )

        def work(connection: sqlite3.Connection) -> list[sqlite3.Row]:
            rows: list[sqlite3.Row] = []
            for kind in sorted(query.kinds):
                args = [where.args[0], kind, *where.args[1:], query.max_per_kind]
                rows.extend(connection.execute(sql, args).fetchall())
            return rows

        return [_stored(row) for row in await self._run("find the latest observations", work)]

    async def search_patients(self, query: PatientQuery) -> list[PatientRecord]:
        where = patient_where(query, _DIALECT)
        sql = f"SELECT id, name, mrn FROM patients {where.sql()} ORDER BY id LIMIT {where.bind(query.count)}"  # noqa: S608 - placeholders only
        rows = await self._run("search patients", lambda connection: connection.execute(sql, where.args).fetchall())
        return [PatientRecord(row["id"], row["name"], row["mrn"]) for row in rows]

    async def search_devices(self, query: DeviceQuery) -> list[DeviceEntry]:
        where = device_where(query, _DIALECT)
        sql = (
            f"SELECT {DEVICE_COLUMNS}, a.patient_id FROM devices d "  # noqa: S608 - placeholders only
            "LEFT JOIN device_assignments a ON a.device_resource_id = d.resource_id AND a.valid_to IS NULL "
            f"{where.sql()} ORDER BY d.device_id LIMIT {where.bind(query.count)}"
        )
        rows = await self._run("search devices", lambda connection: connection.execute(sql, where.args).fetchall())
        return [device_entry(dict(row)) for row in rows]

    async def get_observation(self, reading_key: uuid.UUID) -> str | None:
        row = await self._run(
            "read an observation",
            lambda connection: connection.execute(
                f"SELECT {_SERVED_RESOURCE} AS resource FROM observations WHERE reading_key = ? LIMIT 1", (str(reading_key),),  # noqa: S608 - constant expression
            ).fetchone(),
        )  # fmt: skip
        return None if row is None else str(row["resource"])

    # -- vitals, export, retention and rollups (SQL in sqlite_vitals) ---------------------------

    async def vitals_series(self, query: VitalsQuery) -> list[VitalsBucket]:
        return await self._run("read a vitals series", lambda connection: sqlite_vitals.vitals_series(connection, query))

    async def export_page(self, query: ExportQuery) -> list[ExportRow]:
        return await self._run("read an export page", lambda connection: sqlite_vitals.export_page(connection, query))

    async def run_maintenance(self, work: MaintenancePass) -> MaintenanceReport:
        """Rollups first, then retention in bounded batches (each its own transaction)."""
        refreshed = await self._transaction("refresh rollups", lambda connection: sqlite_vitals.refresh_rollups(connection, work))
        deleted = 0
        for kinds, before in work.retention.deletes:
            while True:
                delete = functools.partial(
                    sqlite_vitals.delete_expired,
                    kinds=kinds,
                    overridden=frozenset(work.retention.kind_before),
                    before=before,
                    limit=work.delete_batch_rows,
                )
                count = await self._transaction("apply retention", delete)
                deleted += count
                if count < work.delete_batch_rows:
                    break
        return MaintenanceReport(ran=True, buckets_refreshed=refreshed, rows_deleted=deleted)

    async def hourly_rollups(self, patient_id: str, kind: str, start: datetime, end: datetime) -> list[VitalsBucket]:
        return await self._run(
            "read hourly rollups", lambda connection: sqlite_vitals.hourly_rollups(connection, patient_id, kind, start, end)
        )

    async def list_quarantine(self, limit: int, reason: str | None = None) -> list[QuarantineRow]:
        rows = await self._run(
            "list quarantine",
            lambda connection: connection.execute(
                f"SELECT {_QUARANTINE_COLUMNS} FROM quarantine WHERE (? IS NULL OR reason = ?) "  # noqa: S608 - constant columns
                "ORDER BY last_seen DESC, id DESC LIMIT ?",
                (reason, reason, limit),
            ).fetchall(),
        )
        return [_quarantine_row(row) for row in rows]

    async def get_quarantine(self, row_id: int) -> QuarantineRow | None:
        row = await self._run(
            "read a quarantine row",
            lambda connection: connection.execute(
                f"SELECT {_QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?",  # noqa: S608 - constant columns
                (row_id,),
            ).fetchone(),
        )
        return None if row is None else _quarantine_row(row)

    async def delete_quarantine(self, row_id: int) -> None:
        await self._transaction(
            "delete a quarantine row", lambda connection: connection.execute("DELETE FROM quarantine WHERE id = ?", (row_id,))
        )

    # -- patients, devices and access (SQL in sqlite_access) ------------------------------------

    async def _read(self, work: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one ``sqlite_access`` function; an error names it (``add_account``: "add account")."""
        return await self._run(work.__name__.replace("_", " "), lambda connection: work(connection, *args, **kwargs))

    async def _write(self, work: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._transaction(work.__name__.replace("_", " "), lambda connection: work(connection, *args, **kwargs))

    async def add_account(self, account_id: str, role: str, display_name: str | None, patient_id: str | None) -> AccountRecord:
        return await self._write(sqlite_access.add_account, account_id, role, display_name, patient_id)

    async def get_account(self, account_id: str) -> AccountRecord | None:
        return await self._read(sqlite_access.get_account, account_id)

    async def add_care_team(self, team_id: str, name: str) -> None:
        return await self._write(sqlite_access.add_care_team, team_id, name)

    async def add_care_team_member(self, team_id: str, account_id: str) -> None:
        return await self._write(sqlite_access.add_care_team_member, team_id, account_id)

    async def add_care_team_patient(self, team_id: str, patient_id: str) -> None:
        return await self._write(sqlite_access.add_care_team_patient, team_id, patient_id)

    async def remove_care_team_patient(self, team_id: str, patient_id: str) -> None:
        return await self._write(sqlite_access.remove_care_team_patient, team_id, patient_id)

    async def delegate(self, patient_id: str, account_id: str) -> None:
        return await self._write(sqlite_access.delegate, patient_id, account_id)

    async def revoke_delegation(self, patient_id: str, account_id: str) -> None:
        return await self._write(sqlite_access.revoke_delegation, patient_id, account_id)

    async def relationships(self, account_id: str) -> Relationships:
        return await self._read(sqlite_access.relationships, account_id)

    async def add_patient_identifier(self, patient_id: str, system: str, value: str) -> None:
        return await self._write(sqlite_access.add_patient_identifier, patient_id, system, value)

    async def patient_by_identifier(self, system: str, value: str) -> str | None:
        return await self._read(sqlite_access.patient_by_identifier, system, value)

    async def identifiers_of(self, patient_ids: Collection[str]) -> dict[str, list[tuple[str, str]]]:
        return await self._read(sqlite_access.identifiers_of, list(patient_ids))

    async def assign_user_slot(self, device_id: str, user_slot: int, patient_id: str, valid_from: datetime | None) -> None:
        return await self._write(sqlite_access.assign_user_slot, device_id, user_slot, patient_id, valid_from)

    async def add_pairing_code(self, digest: bytes, grant: PairingGrant) -> None:
        return await self._write(sqlite_access.add_pairing_code, digest, grant)

    async def redeem_pairing_code(self, digest: bytes, device_id: str, now: datetime) -> PairingGrant | None:
        return await self._write(sqlite_access.redeem_pairing_code, digest, device_id, now)

    async def add_device_credential(self, device_id: str, kind: str, secret_hash: str) -> int:
        return await self._write(sqlite_access.add_device_credential, device_id, kind, secret_hash)

    async def device_credentials(self, device_id: str) -> list[DeviceCredentialRecord]:
        return await self._read(sqlite_access.device_credentials, device_id)

    async def revoke_device_credentials(self, device_id: str, now: datetime) -> int:
        return await self._write(sqlite_access.revoke_device_credentials, device_id, now)

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        return await self._write(sqlite_access.append_audit, records)

    async def audit_chain(self, after_id: int = 0, limit: int = 1000) -> list[tuple[int, ChainedRecord]]:
        return await self._read(sqlite_access.audit_chain, after_id, limit)

    async def search_audit(self, patient_id: str | None, limit: int) -> list[AuditRecord]:
        return await self._read(sqlite_access.search_audit, patient_id, limit)

    # -- the dashboard (SQL in sqlite_dashboard) ---------------------------------------------------

    async def set_account_password(self, account_id: str, password_hash: str) -> None:
        return await self._write(sqlite_dashboard.set_account_password, account_id, password_hash)

    async def account_password(self, account_id: str) -> str | None:
        return await self._read(sqlite_dashboard.account_password, account_id)

    async def patient_activity(self, query: ActivityQuery) -> PatientActivity:
        return await self._read(sqlite_dashboard.patient_activity, query)

    # -- the push outbox ---------------------------------------------------------------------------

    async def claim_outbox(
        self, destination: str, limit: int, now: datetime, lease: timedelta, *, consent: ConsentMode
    ) -> list[OutboxItem]:
        return await self._write(sqlite_outbox.claim, destination, limit, now, lease, consent=consent)

    async def finish_outbox(self, outcomes: Sequence[tuple[int, OutboxOutcome]], now: datetime) -> None:
        return await self._write(sqlite_outbox.finish, outcomes, now)

    async def outbox_status(self) -> list[OutboxCount]:
        return await self._read(sqlite_outbox.status)

    async def outbox_backlog(self) -> list[OutboxBacklog]:
        return await self._read(sqlite_outbox.backlog)

    async def dead_letters(self, destination: str | None, after_id: int, limit: int) -> list[DeadLetter]:
        return await self._read(sqlite_outbox.dead_letters, destination, after_id, limit)

    async def replay_dead_letters(self, ids: Sequence[int] | None, destination: str | None, now: datetime) -> int:
        return await self._write(sqlite_outbox.replay, ids, destination, now)

    # -- consent and corrections (SQL in sqlite_consent) ------------------------------------------

    async def set_consent(
        self, patient_id: str, destination: str, status: ConsentStatus, recorded_by: str, now: datetime
    ) -> ConsentRecord:
        return await self._write(sqlite_consent.set_consent, patient_id, destination, status, recorded_by=recorded_by, now=now)

    async def consents(self, patient_id: str) -> list[ConsentRecord]:
        return await self._read(sqlite_consent.consents, patient_id)

    async def consent_history(self, patient_id: str) -> list[ConsentRecord]:
        return await self._read(sqlite_consent.consent_history, patient_id)

    async def correct_observation(
        self, reading_key: uuid.UUID, revise: Reviser, destinations: Mapping[str, ConsentMode], now: datetime
    ) -> CorrectionOutcome | None:
        return await self._write(sqlite_consent.correct_observation, reading_key, revise, destinations, now)

    # -- edge hubs (SQL in sqlite_hubs) ------------------------------------------------------------

    async def pair_hub_device(self, hub_id: str, device_id: str, address: str, now: datetime) -> None:
        return await self._write(sqlite_hubs.pair, hub_id, device_id, address, now)

    async def unpair_hub_device(self, hub_id: str, device_id: str) -> bool:
        return await self._write(sqlite_hubs.unpair, hub_id, device_id)

    async def hub_devices(self, hub_ids: Collection[str] | None = None) -> list[HubDevice]:
        return await self._read(sqlite_hubs.devices, None if hub_ids is None else set(hub_ids))

    async def record_hub_presence(self, hub_id: str, online: bool, at: datetime) -> None:  # noqa: FBT001 - the state itself
        return await self._write(sqlite_hubs.presence, hub_id, online, at)

    async def record_hub_heartbeat(self, beat: HubHeartbeat) -> None:
        return await self._write(sqlite_hubs.heartbeat, beat)

    async def list_hubs(self) -> list[HubRecord]:
        return await self._read(sqlite_hubs.hubs)


def _stored(row: sqlite3.Row) -> StoredObservation:
    return StoredObservation(uuid.UUID(row["reading_key"]), _required_instant(row["time"]), row["resource"])


def _quarantine_row(row: sqlite3.Row) -> QuarantineRow:
    return QuarantineRow(
        **{**dict(row), "first_seen": _required_instant(row["first_seen"]), "last_seen": _required_instant(row["last_seen"])},
    )
