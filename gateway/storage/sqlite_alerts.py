"""SQLite SQL of the alerts (see :mod:`gateway.storage.alerts`): one writer, so no row locks are needed."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from gateway.storage.alerts import (
    SEVERITY_RANK,
    AlertCandidate,
    AlertKey,
    AlertQuery,
    AlertRecord,
    DeviceActivity,
    RuleRecord,
)
from gateway.storage.sqlite_time import instant, micros, required_instant

P = ParamSpec("P")
T = TypeVar("T")


class Runner(Protocol):
    """The store's way to run one function on its connection (a read, or a write in a transaction)."""

    def __call__(
        self, work: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[T]: ...


def _record(row: sqlite3.Row) -> AlertRecord:
    return AlertRecord(
        uuid.UUID(row["id"]), AlertKey(row["patient_id"], row["rule"], row["kind"]), row["severity"], row["status"],
        row["summary"], required_instant(row["raised_at"]), required_instant(row["updated_at"]), instant(row["cleared_at"]),
        row["acknowledged_by"], instant(row["acknowledged_at"]), instant(row["snoozed_until"]), json.loads(row["detail"]),
    )  # fmt: skip


def _unresolved(connection: sqlite3.Connection, key: AlertKey) -> sqlite3.Row | None:
    row: sqlite3.Row | None = connection.execute(
        "SELECT * FROM alerts WHERE patient_id = ? AND rule = ? AND kind = ? AND status <> 'resolved'",
        (key.patient_id, key.rule, key.kind),
    ).fetchone()
    return row


def raise_alert(connection: sqlite3.Connection, candidate: AlertCandidate) -> tuple[AlertRecord, bool]:
    key, at, detail = candidate.key, micros(candidate.at), json.dumps(dict(candidate.detail))
    current = _unresolved(connection, key)
    if current is None:
        row = connection.execute(
            "INSERT INTO alerts (id, patient_id, rule, kind, severity, status, summary, raised_at, updated_at, detail) "
            "VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?) RETURNING *",
            (str(uuid.uuid4()), key.patient_id, key.rule, key.kind, candidate.severity, candidate.summary, at, at, detail),
        ).fetchone()
        return _record(row), True
    if current["severity"] == candidate.severity:
        return _record(current), False
    # A rise in severity needs someone to look again: an acknowledged alert opens again.
    reopen = SEVERITY_RANK[candidate.severity] > SEVERITY_RANK[current["severity"]]
    row = connection.execute(
        "UPDATE alerts SET severity = ?, summary = ?, detail = ?, updated_at = ?, "
        "status = CASE WHEN ? AND status = 'acknowledged' THEN 'open' ELSE status END WHERE id = ? RETURNING *",
        (candidate.severity, candidate.summary, detail, at, reopen, current["id"]),
    ).fetchone()
    return _record(row), True


def resolve_alert(connection: sqlite3.Connection, key: AlertKey, at: datetime) -> AlertRecord | None:
    row = connection.execute(
        "UPDATE alerts SET status = 'resolved', cleared_at = ?, updated_at = ?, snoozed_until = NULL "
        "WHERE patient_id = ? AND rule = ? AND kind = ? AND status <> 'resolved' RETURNING *",
        (micros(at), micros(at), key.patient_id, key.rule, key.kind),
    ).fetchone()
    return None if row is None else _record(row)


def list_alerts(connection: sqlite3.Connection, query: AlertQuery) -> list[AlertRecord]:
    where, parameters = ["1 = 1"], []
    for column, values in (("patient_id", query.patient_ids), ("status", query.statuses)):
        if values is not None:
            where.append(f"{column} IN ({', '.join('?' for _ in values) or 'NULL'})")
            parameters.extend(sorted(values))
    rows = connection.execute(
        f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY raised_at DESC, id LIMIT ?",  # noqa: S608 - placeholders only
        (*parameters, query.limit),
    ).fetchall()
    return [_record(row) for row in rows]


def get_alert(connection: sqlite3.Connection, alert_id: uuid.UUID) -> AlertRecord | None:
    row = connection.execute("SELECT * FROM alerts WHERE id = ?", (str(alert_id),)).fetchone()
    return None if row is None else _record(row)


def acknowledge_alert(connection: sqlite3.Connection, alert_id: uuid.UUID, by: str, at: datetime) -> AlertRecord | None:
    row = connection.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, updated_at = ?, "
        "snoozed_until = NULL WHERE id = ? AND status <> 'resolved' RETURNING *",
        (by, micros(at), micros(at), str(alert_id)),
    ).fetchone()
    return None if row is None else _record(row)


def snooze_alert(
    connection: sqlite3.Connection, alert_id: uuid.UUID, until: datetime, by: str, at: datetime
) -> AlertRecord | None:
    row = connection.execute(
        "UPDATE alerts SET status = 'snoozed', snoozed_until = ?, acknowledged_by = ?, acknowledged_at = ?, updated_at = ? "
        "WHERE id = ? AND status <> 'resolved' RETURNING *",
        (micros(until), by, micros(at), micros(at), str(alert_id)),
    ).fetchone()
    return None if row is None else _record(row)


def wake_snoozed(connection: sqlite3.Connection, at: datetime) -> list[AlertRecord]:
    rows = connection.execute(
        "UPDATE alerts SET status = 'open', snoozed_until = NULL, updated_at = ? "
        "WHERE status = 'snoozed' AND snoozed_until <= ? RETURNING *",
        (micros(at), micros(at)),
    ).fetchall()
    return [_record(row) for row in rows]


def alert_rules(connection: sqlite3.Connection, patient_id: str) -> RuleRecord | None:
    row = connection.execute("SELECT * FROM alert_rules WHERE patient_id = ?", (patient_id,)).fetchone()
    return (
        None
        if row is None
        else RuleRecord(row["patient_id"], row["rules"], row["updated_by"], required_instant(row["updated_at"]))
    )


def set_alert_rules(connection: sqlite3.Connection, patient_id: str, rules: str | None, by: str, at: datetime) -> None:
    if rules is None:
        connection.execute("DELETE FROM alert_rules WHERE patient_id = ?", (patient_id,))
        return
    connection.execute(
        "INSERT INTO alert_rules (patient_id, rules, updated_by, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (patient_id) "
        "DO UPDATE SET rules = excluded.rules, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        (patient_id, rules, by, micros(at)),
    )


def device_activity(connection: sqlite3.Connection, now: datetime, since: datetime) -> list[DeviceActivity]:
    rows = connection.execute(
        "SELECT d.device_id, a.patient_id, coalesce(a.valid_from, a.created_at) AS watched_from, "
        "(SELECT max(o.time) FROM observations o WHERE o.device_resource_id = d.resource_id AND o.time > :since) "
        "AS last_time, "
        "(SELECT o.value FROM observations o WHERE o.device_resource_id = d.resource_id AND o.kind = 'battery_level' "
        " AND o.time > :since ORDER BY o.time DESC LIMIT 1) AS battery "
        "FROM device_assignments a JOIN devices d ON d.resource_id = a.device_resource_id "
        "WHERE (a.valid_from IS NULL OR a.valid_from <= :now) AND (a.valid_to IS NULL OR a.valid_to > :now) ORDER BY d.device_id",
        {"now": micros(now), "since": micros(since)},
    ).fetchall()
    return [
        DeviceActivity(
            row["device_id"],
            row["patient_id"],
            required_instant(row["watched_from"]),
            instant(row["last_time"]),
            None if row["battery"] is None else Decimal(str(row["battery"])),
        )
        for row in rows
    ]


class SqliteAlerts:
    def __init__(self, read: Runner, write: Runner) -> None:
        self._read = read
        self._write = write

    async def raise_alert(self, candidate: AlertCandidate) -> tuple[AlertRecord, bool]:
        return await self._write(raise_alert, candidate)

    async def resolve_alert(self, key: AlertKey, at: datetime) -> AlertRecord | None:
        return await self._write(resolve_alert, key, at)

    async def list_alerts(self, query: AlertQuery) -> list[AlertRecord]:
        return await self._read(list_alerts, query)

    async def get_alert(self, alert_id: uuid.UUID) -> AlertRecord | None:
        return await self._read(get_alert, alert_id)

    async def acknowledge_alert(self, alert_id: uuid.UUID, by: str, at: datetime) -> AlertRecord | None:
        return await self._write(acknowledge_alert, alert_id, by, at)

    async def snooze_alert(self, alert_id: uuid.UUID, until: datetime, by: str, at: datetime) -> AlertRecord | None:
        return await self._write(snooze_alert, alert_id, until, by, at)

    async def wake_snoozed(self, at: datetime) -> list[AlertRecord]:
        return await self._write(wake_snoozed, at)

    async def alert_rules(self, patient_id: str) -> RuleRecord | None:
        return await self._read(alert_rules, patient_id)

    async def set_alert_rules(self, patient_id: str, rules: str | None, by: str, at: datetime) -> None:
        await self._write(set_alert_rules, patient_id, rules, by, at)

    async def device_activity(self, now: datetime, since: datetime) -> list[DeviceActivity]:
        return await self._read(device_activity, now, since)
