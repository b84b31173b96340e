"""Read latency on a realistic TimescaleDB, with ingest running beside it.

Fills a database of its own (``pulsebridge_bench`` by default, created here) with
``--observations`` rows for ``--patients`` patients over ``--days`` days through COPY, once: a
later run with the same sizes reuses it. Then measures, over ``--runs`` runs each, three reads a
dashboard or an EHR makes — a patient's last 7 days of one code (the FHIR search's SQL, through
the store), the latest reading of every kind (``$lastn``-style) and a 30-day hourly vitals
series (the vitals store method) — first with ingest stopped (the baseline), then while a
background task writes batches through the real mapper and store write path at a steady rate.
Prints JSON lines: each query's p50 / p95 / max in ms against the target p95 < 50 ms, and the
ingest rate achieved.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import orjson

from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings
from fhir_mapper.catalogue import CATALOGUE
from fhir_mapper.observation import Attribution, MapperContext, MappingInput, ObservationMapper
from gateway.storage import ObservationQuery, TimeCondition, VitalsQuery
from gateway.storage.timescale import TimescaleStore

TARGET_P95_MS = 50.0
ADMIN_DSN = os.environ.get("PULSEBRIDGE_BENCH_ADMIN_DSN", "postgresql:///postgres?host=/var/run/postgresql")
LOAD_SOURCE = "bench-load"
GENERATE_BATCH = 500_000
LOAD_CONNECTIONS = 2  # the server generates and inserts on as many cores
WARM_UP = 20

# (kind, LOINC code, unit, values): heart rate dominates, as it does from watches.
KINDS = (
    *[("heart_rate", "8867-4", "/min", tuple(Decimal(v) for v in range(55, 100, 3)))] * 12,
    *[("spo2", "2708-6", "%", tuple(Decimal(v) for v in range(93, 100)))] * 4,
    ("body_temperature", "8310-5", "Cel", (Decimal("36.6"), Decimal("36.9"), Decimal("37.2"))),
    ("body_weight", "29463-7", "kg", (Decimal("70.2"), Decimal("70.4"), Decimal("81.0"))),
    ("blood_glucose", "41653-7", "mg/dL", (Decimal(95), Decimal(110), Decimal(140))),
    ("steps", "55423-8", "{steps}", (Decimal(120), Decimal(640), Decimal(2200))),
)
COLUMNS = (
    "time",
    "reading_key",
    "patient_id",
    "device_resource_id",
    "kind",
    "code",
    "value",
    "unit",
    "resource",
    "received_at",
    "source",
)

# The rows of `rows()` below, generated in the server in arrival (time) order: slot n // patients,
# patient n % patients.
GENERATE_SQL = """
WITH kinds AS (
    SELECT position - 1 AS position, kind, code, unit, choices::jsonb AS choices
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS k (kind, code, unit, choices, position)
), placed AS (
    SELECT gen_random_uuid() AS key, n / $6 AS slot, n % $6 AS patient,
           $5::timestamptz + (n / $6) * $9::interval + ((n % $6) * $9::interval) / $6 AS at
    FROM generate_series($7::bigint, $8::bigint) AS n
), reading AS (
    SELECT p.key, p.at, 'bench-' || lpad(p.patient::text, greatest(5, length(p.patient::text)), '0') AS patient_id,
           ('00000000-0000-0000-0000-' || lpad(to_hex(p.patient + 1), 12, '0'))::uuid AS device, k.kind, k.code, k.unit,
           (k.choices ->> ((p.slot * 7 + p.patient) % jsonb_array_length(k.choices))::int)::numeric AS value
    FROM placed AS p JOIN kinds AS k ON k.position = (p.slot + p.patient) % $10
)
INSERT INTO observations (time, reading_key, patient_id, device_resource_id, kind, code, value, unit, resource,
                          received_at, source)
SELECT at, key, patient_id, device, kind, code, value, unit,
       jsonb_build_object(
           'resourceType', 'Observation', 'id', key, 'status', 'final',
           'code', jsonb_build_object(
               'coding', jsonb_build_array(jsonb_build_object('system', 'http://loinc.org', 'code', code))
           ),
           'subject', jsonb_build_object('reference', 'Patient/' || patient_id),
           'effectiveDateTime', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
           'valueQuantity', jsonb_build_object('value', value, 'unit', unit, 'system', 'http://unitsofmeasure.org', 'code', unit)
       ),
       at + interval '30 seconds', $11
FROM reading
"""

# Mirrors the store's $lastn (the latest reading per kind for one patient): one LATERAL probe per
# kind down the (patient_id, kind, time DESC) index, newest chunk first.
LASTN_SQL = """
SELECT k.kind, o.time, o.resource::text AS resource
FROM unnest($2::text[]) AS k (kind)
CROSS JOIN LATERAL (
    SELECT time, resource FROM observations
    WHERE patient_id = $1 AND kind = k.kind ORDER BY time DESC LIMIT 1
) AS o
"""


@dataclass(frozen=True, slots=True)
class Dataset:
    observations: int
    patients: int
    days: int
    end: datetime

    def patient(self, index: int) -> str:
        return f"bench-{index:05d}"


def rows(data: Dataset) -> Iterator[tuple[object, ...]]:
    """Rows in time order (as they arrive), every patient reading at its own offset in each slot."""
    per_patient = data.observations // data.patients
    span = timedelta(days=data.days)
    step = span / per_patient
    start = data.end - span
    devices = [uuid.UUID(int=index + 1) for index in range(data.patients)]
    for slot in range(per_patient):
        base = start + slot * step
        for index in range(data.patients):
            kind, code, unit, values = KINDS[(slot + index) % len(KINDS)]
            at = base + (index * step) / data.patients
            value = values[(slot * 7 + index) % len(values)]
            key = uuid.uuid4()
            resource = (
                f'{{"resourceType":"Observation","id":"{key}","status":"final",'
                f'"code":{{"coding":[{{"system":"http://loinc.org","code":"{code}"}}]}},'
                f'"subject":{{"reference":"Patient/{data.patient(index)}"}},"effectiveDateTime":"{at.isoformat()}",'
                f'"valueQuantity":{{"value":{value},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}}}'
            )
            yield (at, key, data.patient(index), devices[index], kind, code, value, unit, resource, at + timedelta(seconds=30),
                   LOAD_SOURCE)  # fmt: skip


async def ensure_database(name: str) -> str:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgresql:///{name}?host=/var/run/postgresql"


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _loaded(url: str, observations: int, patients: int, days: int) -> Dataset | None:
    """The dataset already in the database with these sizes (earlier ingest rows removed), or None."""
    connection = await asyncpg.connect(url)
    try:
        if await connection.fetchval("SELECT to_regclass('bench_dataset')") is None:
            return None
        row = await connection.fetchrow("SELECT observations, patients, days, end_time FROM bench_dataset")
        if row is None or (row["observations"], row["patients"], row["days"]) != (observations, patients, days):
            return None
        data = Dataset(observations, patients, days, row["end_time"])
        removed = await connection.execute("DELETE FROM observations WHERE time > $1", data.end)
    finally:
        await connection.close()
    _emit({"bench": "queries", "load": "skipped: already loaded with the same sizes", "observations": observations,
           "patients": patients, "earlier_ingest_rows_removed": int(removed.rsplit(" ", 1)[1])})  # fmt: skip
    return data


async def load(name: str, observations: int, patients: int, days: int) -> Dataset:
    """Fill the database once; a later run with the same sizes reuses it (and removes earlier ingest rows)."""
    url = await ensure_database(name)
    found = await _loaded(url, observations, patients, days)
    if found is not None:
        return found
    # A new database, migrated: a load interrupted earlier (rows half there, indexes dropped) is
    # never reused; the dataset row, written last, says a load finished.
    await drop_database(name)
    url = await ensure_database(name)
    store = await TimescaleStore.open(DatabaseSettings(url=url))
    try:
        await store.migrate()
    finally:
        await store.close()
    data = Dataset(observations, patients, days, datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    connections = [await asyncpg.connect(url) for _ in range(LOAD_CONNECTIONS)]
    try:
        started = time.perf_counter()
        # Built once over the loaded rows, the indexes cost a fraction of keeping them up to date
        # row by row (the load ran at ~21,000 rows/s with them on a 2-core machine).
        indexes = await _drop_indexes(connections[0])
        await _generate(connections, data)
        copied = time.perf_counter()
        # As autovacuum would on a live server: hint bits and the visibility map set, statistics fresh
        # (otherwise the first reads of each page write it back, and the baseline measures that).
        # Chunk by chunk, on every connection, and before the indexes exist (nothing to scan in them).
        chunks = [str(row[0]) for row in await connections[0].fetch("SELECT show_chunks('observations')")]
        await _each(connections, [f"VACUUM (ANALYZE) {chunk}" for chunk in chunks])
        vacuumed = time.perf_counter()
        await _each(connections, indexes, "SET maintenance_work_mem = '1GB'")
        indexed = time.perf_counter()
        await connections[0].execute(
            "CREATE TABLE bench_dataset (observations bigint, patients integer, days integer, end_time timestamptz)"
        )
        await connections[0].execute("INSERT INTO bench_dataset VALUES ($1, $2, $3, $4)", observations, patients, days, data.end)
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    _emit({"bench": "queries", "load": "generated", "observations": observations, "patients": patients, "days": days,
           "seconds": round(elapsed, 1), "rows_per_s": round(observations / elapsed), "rows_s": round(copied - started, 1),
           "vacuum_s": round(vacuumed - copied, 1), "index_s": round(indexed - vacuumed, 1),
           "indexes_rebuilt": len(indexes)})  # fmt: skip
    return data


async def _each(connections: list[asyncpg.Connection], statements: list[str], setup: str = "") -> None:
    """Run ``statements`` spread over ``connections``, one at a time on each."""
    waiting = iter(statements)

    async def work(connection: asyncpg.Connection) -> None:
        if setup:
            await connection.execute(setup)
        for statement in waiting:
            await connection.execute(statement)

    await asyncio.gather(*(work(connection) for connection in connections))


async def _drop_indexes(connection: asyncpg.Connection) -> list[str]:
    """Drop the observations table's indexes and unique constraints; returns the statements that build them again."""
    found = await connection.fetch(
        "SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition, c.conname AS constraint_name, "
        "pg_get_constraintdef(c.oid) AS constraint_definition "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid "
        "WHERE x.indrelid = 'observations'::regclass"
    )
    rebuild = []
    for row in found:
        if row["constraint_name"] is not None:
            await connection.execute(f'ALTER TABLE observations DROP CONSTRAINT "{row["constraint_name"]}"')
            rebuild.append(f'ALTER TABLE observations ADD CONSTRAINT "{row["constraint_name"]}" {row["constraint_definition"]}')
        else:
            await connection.execute(f'DROP INDEX "{row["name"]}"')
            rebuild.append(row["definition"])
    return rebuild


async def _generate(connections: list[asyncpg.Connection], data: Dataset) -> None:
    """The rows of :func:`rows`, made by the server (random keys aside), a slice per connection at a time."""
    per_patient = data.observations // data.patients
    step = timedelta(days=data.days) / per_patient
    total = per_patient * data.patients
    kinds = [list(column) for column in zip(*KINDS, strict=True)]
    choices = [orjson.dumps([str(value) for value in values]).decode() for values in kinds[3]]
    slices = iter(range(0, total, GENERATE_BATCH))

    async def work(connection: asyncpg.Connection) -> None:
        for first in slices:
            await connection.execute(
                GENERATE_SQL, kinds[0], kinds[1], kinds[2], choices, data.end - timedelta(days=data.days), data.patients,
                first, min(first + GENERATE_BATCH, total) - 1, step, len(KINDS), LOAD_SOURCE,
            )  # fmt: skip

    await asyncio.gather(*(work(connection) for connection in connections))


class Ingest:
    """Writes batches through the real mapper and ``write_batch`` at a steady rate until stopped."""

    def __init__(self, store: TimescaleStore, data: Dataset, rate: int, batch: int) -> None:
        self._store, self._data, self._rate, self._batch = store, data, rate, batch
        self._mapper = ObservationMapper(MapperContext(gateway_device_id=uuid.UUID(int=0xBE)))
        self.inserted = 0
        self._sequence = 0

    def _inputs(self) -> list[MappingInput]:
        received = datetime.now(UTC)
        items = []
        for _ in range(self._batch):
            self._sequence += 1
            index = self._sequence % self._data.patients
            at = self._data.end + timedelta(milliseconds=self._sequence)  # new readings, in the newest chunk
            reading = Reading(
                f"bench-dev-{index}", "heart_rate", at, quantity=Quantity(Decimal(60 + self._sequence % 40), "/min")
            )
            attribution = Attribution(self._data.patient(index), uuid.UUID(int=index + 1), f"bench-dev-{index}")
            items.append(MappingInput(reading, attribution, max(received, at), "bench-ingest"))
        return items

    async def run(self) -> None:
        interval = self._batch / self._rate
        next_at = time.perf_counter()
        while True:
            mapped, _ = self._mapper.map_batch(self._inputs())
            self.inserted += (await self._store.write_batch(mapped, [])).inserted
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def _measure(runs: int, query: Callable[[int], Awaitable[object]], first: int, pause: float = 0.0) -> dict[str, float]:
    timings = []
    for run in range(first, first + runs):
        started = time.perf_counter()
        await query(run)
        timings.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(pause)  # requests spread over time, so ingest runs through the whole measurement
    timings.sort()
    p95 = statistics.quantiles(timings, n=20, method="inclusive")[18] if runs > 1 else timings[0]
    return {"p50_ms": round(statistics.median(timings), 2), "p95_ms": round(p95, 2), "max_ms": round(timings[-1], 2)}


def _queries(store: TimescaleStore, data: Dataset, seed: int, calls: int) -> dict[str, Callable[[int], Awaitable[object]]]:
    """Each call of a query reads another patient (a seeded pick), so no phase reads pages another phase cached."""
    picks = random.Random(seed)  # noqa: S311 - patient picks for a benchmark, not secrets
    patients = [data.patient(picks.randrange(data.patients)) for _ in range(calls)]
    kinds = sorted(CATALOGUE)
    week = (TimeCondition(">=", data.end - timedelta(days=7)), TimeCondition("<", data.end + timedelta(days=1)))

    async def search_7d(run: int) -> object:
        # A FHIR page (count + 1, as the API asks) of GET /fhir/Observation?patient=…&code=8867-4&date=ge…
        query = ObservationQuery(patient_id=patients[run], kinds=frozenset({"heart_rate", "pulse_rate"}), time=week, count=51)
        return await store.search_observations(query)

    async def lastn(run: int) -> object:
        return await store._pool.fetch(LASTN_SQL, patients[run], kinds)  # noqa: SLF001 - the bench reads through the store's pool

    async def vitals_30d(run: int) -> object:
        query = VitalsQuery(patients[run], "heart_rate", data.end - timedelta(days=30), data.end, timedelta(hours=1))
        return await store.vitals_series(query)

    return {"search_7d_one_code": search_7d, "lastn_per_kind": lastn, "vitals_30d_hourly": vitals_30d}


def _emit(line: dict[str, object]) -> None:
    print(orjson.dumps(line).decode(), flush=True)


async def bench(args: argparse.Namespace) -> None:
    data = await load(args.database, args.observations, args.patients, args.days)
    url = await ensure_database(args.database)
    store = await TimescaleStore.open(DatabaseSettings(url=url, pool_max=4))
    try:
        await store.migrate()
        machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        queries = _queries(store, data, seed=6, calls=WARM_UP + 2 * args.runs)
        for query in queries.values():  # warm the connections and the catalogue caches, like a running server
            await _measure(WARM_UP, query, first=0)
        for number, phase in enumerate(("baseline (ingest stopped)", "with ingest"), start=1):
            ingest = Ingest(store, data, args.ingest_rate, args.ingest_batch) if phase == "with ingest" else None
            task = asyncio.create_task(ingest.run(), name="bench-ingest") if ingest else None
            started = time.perf_counter()
            await asyncio.sleep(0.5 if task else 0)  # let ingest reach its pace
            for name, query in queries.items():
                figures = await _measure(args.runs, query, first=WARM_UP + (number - 1) * args.runs, pause=args.pause_ms / 1000)
                _emit({"bench": "queries", "query": name, "phase": phase, "runs": args.runs, **figures,
                       "target_p95_ms": TARGET_P95_MS, "target_met": figures["p95_ms"] < TARGET_P95_MS})  # fmt: skip
            if task is not None and ingest is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                elapsed = time.perf_counter() - started
                achieved = round(ingest.inserted / elapsed)
                _emit({"bench": "queries", "ingest": "beside the queries", "target_per_s": args.ingest_rate,
                       "achieved_per_s": achieved, "batch": args.ingest_batch, "machine": machine})  # fmt: skip
    finally:
        await store.close()
    if args.drop:
        await drop_database(args.database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--observations", type=int, default=10_000_000)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60, help="the loaded history ends now and starts this many days ago")
    parser.add_argument("--runs", type=int, default=200, help="runs of each query per phase")
    parser.add_argument("--pause-ms", type=float, default=10.0, help="pause between two runs of a query")
    parser.add_argument("--ingest-rate", type=int, default=2_000, help="readings per second written beside the queries")
    parser.add_argument("--ingest-batch", type=int, default=200)
    parser.add_argument("--database", default="pulsebridge_bench")
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards (the smoke test does)")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
