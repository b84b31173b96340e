"""The read-latency bench at a tiny size, on the real TimescaleDB, so it keeps working."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import orjson

BENCH = Path(__file__).parent.parent / "bench" / "queries.py"


def _observation_indexes(url: str) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(url)
        try:
            found: int = await connection.fetchval("SELECT count(*) FROM pg_index WHERE indrelid = 'observations'::regclass")
        finally:
            await connection.close()
        return found

    return asyncio.run(count())


def test_query_bench_smoke(timescale_url: str) -> None:
    database = f"pulsebridge_bench_smoke_{os.getpid()}"
    arguments = ["--observations", "20000", "--patients", "100", "--runs", "5", "--ingest-rate", "500", "--database", database]
    result = subprocess.run(
        [sys.executable, str(BENCH), *arguments, "--drop"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["load"] == "generated"
    assert lines[0]["indexes_rebuilt"] == _observation_indexes(timescale_url)  # as many as the migrations make
    measured = {(line["query"], line["phase"]) for line in lines if "query" in line}
    queries = {"search_7d_one_code", "lastn_per_kind", "vitals_30d_hourly"}
    assert measured == {(query, phase) for query in queries for phase in ("baseline (ingest stopped)", "with ingest")}
    assert all(line["p50_ms"] <= line["p95_ms"] <= line["max_ms"] for line in lines if "query" in line)
    assert lines[-1]["achieved_per_s"] > 0
