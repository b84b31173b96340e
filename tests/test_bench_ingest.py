"""The end-to-end ingest bench at a tiny size, on the real broker, database and gateway, so it keeps working.

Speed is not asserted (the machine is shared): only that every figure and its baseline is printed
and that every ledger balances.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_ingest_bench_smoke(tmp_path: Path) -> None:
    arguments = ["--readings", "3000", "--pack-readings", "20000", "--copy-rows", "5000", "--backlog", "3000",
                 "--latency-seconds", "3", "--warm-up", "0.5", "--publishers", "2", "--timeout", "120",
                 "--database", f"pulsebridge_bench_ingest_smoke_{os.getpid()}", "--profile", str(tmp_path / "profile"),
                 "--profile-rate", "200"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    baselines = {(line["baseline"], line.get("readings_per_message")) for line in lines if "baseline" in line}
    assert baselines == {
        ("raw COPY into the observations hypertable", None),
        ("bare aiomqtt receive loop", 1),
        ("bare aiomqtt receive loop", 100),
    }
    runs = [line for line in lines if "path" in line]
    assert [(line["path"], line.get("readings_per_message")) for line in runs if "committed_per_s" in line and "latency" not in line] == [
        ("gateway x 1", 1), ("gateway x 1", 100), ("gateway x 2 (shared subscription)", 1),
    ]  # fmt: skip
    assert all(line["ledger"]["match"] for line in runs), runs
    latency = next(line for line in runs if "latency" in line)
    assert latency["probes"] > 0
    assert latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    backlog = next(line for line in runs if "backlog" in line)
    assert backlog["drain_per_s"] > 0
    assert backlog["gateway_rss_max_mb"] > 0
    assert {"gateway", "broker", "database"} <= set(runs[0]["cpu_cores"])
    assert {line["summary"] for line in lines if "summary" in line} == {
        "1 reading(s) per message, gateway x 1", "100 reading(s) per message, gateway x 1",
    }  # fmt: skip
    assert any("dropped" in line for line in lines)
    profiles = {line["profile"]: line for line in lines if "profile" in line}
    assert set(profiles) == {
        "gateway x 1, 1 reading(s) per message", "gateway x 1, 100 reading(s) per message",
        "gateway x 2 (the first of them), 1 reading(s) per message",
    }  # fmt: skip
    for profile in profiles.values():
        assert profile["samples"] > 0, profile
        assert sum(profile["stages"].values()) == pytest.approx(1, abs=0.01)  # every sample in exactly one stage
    (tmp_path / "results.jsonl").write_text(result.stdout)
    report = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), str(tmp_path / "results.jsonl")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "| gateway x 1, 1 reading(s)/message |" in report.stdout
    assert "## Where the gateway's time goes (py-spy, by stage)" in report.stdout
