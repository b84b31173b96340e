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
COPY_BATCH = 20_000
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


async def load(url: str, observations: int, patients: int, days: int) -> Dataset:
    """Fill the database once; a later run with the same sizes reuses it (and removes earlier ingest rows)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (observations bigint, patients integer, days integer, end_time timestamptz)"
        )
        row = await connection.fetchrow("SELECT observations, patients, days, end_time FROM bench_dataset")
        if row is not None and (row["observations"], row["patients"], row["days"]) == (observations, patients, days):
            data = Dataset(observations, patients, days, row["end_time"])
            removed = await connection.execute("DELETE FROM observations WHERE time > $1", data.end)
            _emit({"bench": "queries", "load": "skipped: already loaded with the same sizes", "observations": observations,
                   "patients": patients, "earlier_ingest_rows_removed": int(removed.rsplit(" ", 1)[1])})  # fmt: skip
            return data
        await connection.execute("TRUNCATE observations, observation_rollups_hourly, bench_dataset")
        data = Dataset(observations, patients, days, datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
        started = time.perf_counter()
        pending: asyncio.Task[str] | None = None
        batch: list[tuple[object, ...]] = []
        for record in rows(data):
            batch.append(record)
            if len(batch) == COPY_BATCH:
                if pending is not None:
                    await pending
                # COPY runs in the server while the next batch is generated here.
                pending = asyncio.create_task(connection.copy_records_to_table("observations", records=batch, columns=COLUMNS))
                batch = []
        if pending is not None:
            await pending
        if batch:
            await connection.copy_records_to_table("observations", records=batch, columns=COLUMNS)
        # As autovacuum would on a live server: hint bits and the visibility map set, statistics fresh
        # (otherwise the first reads of each page write it back, and the baseline measures that).
        await connection.execute("VACUUM (ANALYZE) observations")
        await connection.execute("INSERT INTO bench_dataset VALUES ($1, $2, $3, $4)", observations, patients, days, data.end)
        elapsed = time.perf_counter() - started
        _emit({"bench": "queries", "load": "copied", "observations": observations, "patients": patients, "days": days,
               "seconds": round(elapsed, 1), "rows_per_s": round(observations / elapsed)})  # fmt: skip
        return data
    finally:
        await connection.close()


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
    url = await ensure_database(args.database)
    store = await TimescaleStore.open(DatabaseSettings(url=url, pool_max=4))
    try:
        await store.migrate()
        data = await load(url, args.observations, args.patients, args.days)
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
