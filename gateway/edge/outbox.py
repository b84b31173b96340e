"""The hub's local outbox: SQLite in WAL mode, ``synchronous=FULL``, one writer thread.

A reading is committed here before its device is acknowledged (RACP cursor, local PUBACK), in the
same transaction as the device's new cursor and the duplicate filter's high-water mark, and is
deleted only after the upstream broker acknowledged the pack that carried it.

Duplicate filter (HL7 PHD IG): per device, patient, destination and kind, the latest device time
accepted for forwarding. A reading at or before it is a record the device re-sent from its memory:
it is counted and dropped. (Per kind, because a cuff's blood pressure and pulse share one time.)

Disk budget: when the readings held would pass ``max_bytes``, or the file system's free space
falls under ``min_free_bytes``, a batch is refused whole: nothing of it is stored and nothing is
acknowledged, so it stays on the device, which sends it again later. What the outbox holds is
never evicted to make room. Every refusal is counted and raises the ``outbox_full`` alarm.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Self, TypeVar

from device_adapters.errors import StorageError
from gateway.storage.sqlite_time import micros

T = TypeVar("T")
UPSTREAM = "upstream"
"""The one destination a hub forwards to (the filter keeps the IG's destination column for more)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL,
    body       BLOB NOT NULL,
    size       INTEGER NOT NULL,
    taken_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (device_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS forwarded_marks (
    device_id    TEXT NOT NULL,
    patient_id   TEXT NOT NULL,
    destination  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    last_time    INTEGER NOT NULL,
    PRIMARY KEY (device_id, patient_id, destination, kind)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT,
    channel   TEXT NOT NULL,
    payload   BLOB NOT NULL,
    reason    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    taken_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
COUNTERS = ("stored", "duplicates_dropped", "refused_full", "quarantined", "forwarded")


@dataclass(frozen=True, slots=True)
class OutboxReading:
    """One reading to keep until the broker acknowledged it."""

    device_id: str
    patient_id: str
    kind: str
    time: datetime
    body: bytes
    """The reading as one native v1 object (JSON)."""
    device_time: str | None = None
    """The device's zone-less clock text (Bluetooth), when it gave one."""


def _mark(reading: OutboxReading) -> tuple[tuple[str, str, str, str], int]:
    """The filter's key and time: the device's own clock where it has one (re-anchoring must not make a record new)."""
    if reading.device_time is not None:
        device_clock = datetime.fromisoformat(reading.device_time).replace(tzinfo=UTC)
        # Kept apart from reception-time readings of the same kind: the two clocks are not comparable.
        return (reading.device_id, reading.patient_id, UPSTREAM, f"{reading.kind}|device-clock"), micros(device_clock)
    return (reading.device_id, reading.patient_id, UPSTREAM, reading.kind), micros(reading.time)


@dataclass(frozen=True, slots=True)
class LocalQuarantine:
    device_id: str | None
    channel: str
    payload: bytes
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Intake:
    """What one delivery became: its readings, the cursor it moves, or its quarantine row."""

    readings: Sequence[OutboxReading] = ()
    cursors: dict[str, int] = field(default_factory=dict)
    quarantine: Sequence[LocalQuarantine] = ()


@dataclass(frozen=True, slots=True)
class CommitResult:
    stored: int
    duplicates: int
    accepted: int
    """How many of the intakes (the oldest) were committed; the rest were refused."""
    reason: str | None = None
    """Why the rest were refused (the disk budget)."""


class _Selection(NamedTuple):
    accepted: list[Intake]
    kept: list[OutboxReading]
    marks: dict[tuple[str, str, str, str], int]
    adding: int
    duplicates: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    device_id: str
    body: bytes


class EdgeOutbox:
    """Open with :meth:`open`; every call runs on the one writer thread."""

    def __init__(self, path: Path, max_bytes: int, min_free_bytes: int) -> None:
        self._path = path
        self.max_bytes = max_bytes
        self._min_free_bytes = min_free_bytes
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-outbox")
        self._connection: sqlite3.Connection | None = None
        self.bytes_held = 0
        self.depth = 0
        self.cursors: dict[str, int] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._marks: dict[tuple[str, str, str, str], int] = {}
        self.full_since: datetime | None = None
        self.full_reason: str | None = None

    @classmethod
    async def open(cls, path: Path, max_bytes: int, min_free_bytes: int = 0) -> Self:
        outbox = cls(path, max_bytes, min_free_bytes)
        await outbox._call(outbox._open)
        return outbox

    async def close(self) -> None:
        if self._connection is not None:
            await self._call(self._connection.close)
            self._connection = None
        self._worker.shutdown(wait=True)

    async def _call(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, work)
        except sqlite3.Error as exc:
            raise StorageError(f"edge outbox {self._path}: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StorageError(f"edge outbox {self._path} is closed")
        return self._connection

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # a reading acknowledged to a device survives a power cut
        connection.executescript(_SCHEMA)
        self._connection = connection
        held, depth = connection.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM readings").fetchone()
        self.bytes_held, self.depth = int(held), int(depth)
        self.cursors = dict(connection.execute("SELECT device_id, sequence FROM cursors").fetchall())
        self.counters.update(connection.execute("SELECT name, value FROM counters").fetchall())
        for device, patient, destination, kind, last in connection.execute(
            "SELECT device_id, patient_id, destination, kind, last_time FROM forwarded_marks"
        ):
            self._marks[device, patient, destination, kind] = last

    # -- intake ------------------------------------------------------------------------------------

    def _no_room(self, adding: int) -> str | None:
        if self.bytes_held + adding > self.max_bytes:
            return f"outbox budget reached: {self.bytes_held} + {adding} bytes > {self.max_bytes}"
        free = shutil.disk_usage(self._path.parent).free
        if free < self._min_free_bytes:
            return f"file system nearly full: {free} bytes free < {self._min_free_bytes}"
        return None

    async def commit(self, intakes: Sequence[Intake], now: datetime | None = None) -> CommitResult:
        """Commit the oldest intakes that fit the budget, in one transaction."""
        return await self._call(lambda: self._commit(intakes, now or datetime.now(UTC)))

    def _fitting(self, intakes: Sequence[Intake]) -> _Selection:
        """The oldest intakes that fit the budget, their new readings and the filter's new marks."""
        marks: dict[tuple[str, str, str, str], int] = {}
        kept: list[OutboxReading] = []
        accepted: list[Intake] = []
        adding = duplicates = 0
        reason: str | None = None
        for intake in intakes:
            # Oldest first: a delivery that does not fit is refused with every one after it.
            fresh: list[OutboxReading] = []
            fresh_marks: dict[tuple[str, str, str, str], int] = {}
            for reading in intake.readings:
                key, at = _mark(reading)
                if at <= fresh_marks.get(key, marks.get(key, self._marks.get(key, -(2**62)))):
                    continue
                fresh_marks[key] = at
                fresh.append(reading)
            size = sum(len(reading.body) for reading in fresh)
            if fresh and (reason := self._no_room(adding + size)) is not None:
                break
            accepted.append(intake)
            kept.extend(fresh)
            marks.update(fresh_marks)
            adding += size
            duplicates += len(intake.readings) - len(fresh)
        return _Selection(accepted, kept, marks, adding, duplicates, reason)

    def _commit(self, intakes: Sequence[Intake], now: datetime) -> CommitResult:
        accepted, kept, marks, adding, duplicates, reason = self._fitting(intakes)
        db = self._db()
        refused = len(intakes) - len(accepted)
        if reason is not None:
            self._bump(db, {"refused_full": refused})
            self.full_since = self.full_since or now
            self.full_reason = reason
        cursors: dict[str, int] = {}
        for intake in accepted:
            for device_id, sequence in intake.cursors.items():
                cursors[device_id] = max(sequence, cursors.get(device_id, sequence))
        quarantine = [entry for intake in accepted for entry in intake.quarantine]
        if not accepted:
            return CommitResult(0, 0, 0, reason)
        counts = {"stored": len(kept), "duplicates_dropped": duplicates, "quarantined": len(quarantine)}
        stamp = micros(now)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO readings (device_id, body, size, taken_at) VALUES (?, ?, ?, ?)",
                [(reading.device_id, reading.body, len(reading.body), stamp) for reading in kept],
            )
            db.executemany(
                "INSERT INTO forwarded_marks VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET last_time = max(last_time, excluded.last_time)",
                [(*key, at) for key, at in marks.items()],
            )
            db.executemany(
                "INSERT INTO cursors VALUES (?, ?) ON CONFLICT DO UPDATE SET sequence = max(sequence, excluded.sequence)",
                list(cursors.items()),
            )
            db.executemany(
                "INSERT INTO quarantine (device_id, channel, payload, reason, detail, taken_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(q.device_id, q.channel, q.payload, q.reason, q.detail, stamp) for q in quarantine],
            )
            self._bump(db, counts, commit=False)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.bytes_held += adding
        self.depth += len(kept)
        self._marks.update(marks)
        for device_id, sequence in cursors.items():
            self.cursors[device_id] = max(sequence, self.cursors.get(device_id, sequence))
        self._count(counts)
        if reason is None and self.full_since is not None and self._no_room(0) is None:
            self.full_since = self.full_reason = None
        return CommitResult(len(kept), duplicates, len(accepted), reason)

    async def count_refused(self, count: int) -> None:
        """Values refused without a commit attempt (the rest of a refused Bluetooth connection)."""
        await self._call(lambda: self._bump(self._db(), {"refused_full": count}))

    def _bump(self, db: sqlite3.Connection, counts: dict[str, int], *, commit: bool = True) -> None:
        rows = [(name, value) for name, value in counts.items() if value]
        db.executemany(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT DO UPDATE SET value = value + excluded.value", rows
        )  # outside a transaction (refusals) this is its own autocommit statement
        if commit:
            self._count(counts)

    def _count(self, counts: dict[str, int]) -> None:
        for name, value in counts.items():
            self.counters[name] = self.counters.get(name, 0) + value

    # -- forwarding --------------------------------------------------------------------------------

    async def oldest(self, limit: int) -> list[Pending]:
        def read() -> list[Pending]:
            rows = self._db().execute("SELECT seq, device_id, body FROM readings ORDER BY seq LIMIT ?", (limit,)).fetchall()
            return [Pending(seq, device_id, bytes(body)) for seq, device_id, body in rows]

        return await self._call(read)

    async def remove(self, seqs: Sequence[int]) -> None:
        """Forget readings the upstream broker acknowledged."""

        def delete() -> None:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                freed = 0
                removed = 0
                for seq in seqs:
                    row = db.execute("DELETE FROM readings WHERE seq = ? RETURNING size", (seq,)).fetchone()
                    if row is not None:
                        freed += row[0]
                        removed += 1
                self._bump(db, {"forwarded": removed}, commit=False)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self.bytes_held -= freed
            self.depth -= removed
            self._count({"forwarded": removed})
            if self.full_since is not None and self._no_room(0) is None:
                self.full_since = self.full_reason = None

        await self._call(delete)

    # -- small state: the last configuration from the gateway, the clock skew ----------------------

    async def save_state(self, name: str, value: bytes) -> None:
        await self._call(
            lambda: self._db().execute(
                "INSERT INTO state VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value", (name, value)
            )
        )

    async def load_state(self, name: str) -> bytes | None:
        def read() -> bytes | None:
            row = self._db().execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._call(read)
