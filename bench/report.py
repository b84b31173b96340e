"""Write ``bench/RESULTS.md`` from the JSON lines ``make bench`` collected (mapping, queries, ingest).

Usage: ``python bench/report.py RESULTS.jsonl > bench/RESULTS.md``. Only formats: every figure
comes from the lines, which the benches printed in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson


def _cpu(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in cores.items())


def _ledger(ledger: dict[str, Any]) -> str:
    verdict = "exact" if ledger["match"] else "**MISMATCH**"
    return f"{verdict}: {ledger['published']:,} published, {ledger['rows']:,} rows, {ledger['distinct_keys']:,} keys"


def _ingest(lines: list[dict[str, Any]]) -> list[str]:
    header = (
        "| run | readings/s | same-run baseline | target | latency p50 / p95 / p99 (ms) | gateway RSS max (MB) "
        "| CPU, cores (gateway, broker, database, publishers) | ledger |"
    )
    out = [header, "|---|---|---|---|---|---|---|---|"]
    copy = next((line for line in lines if line.get("baseline", "").startswith("raw COPY")), None)
    bare = {line["readings_per_message"]: line for line in lines if line.get("baseline") == "bare aiomqtt receive loop"}
    summary = {line["summary"]: line for line in lines if "summary" in line}
    for line in lines:
        if "path" not in line:
            continue
        shape = line.get("readings_per_message", 1)
        if "latency" in line:
            run, rate = f"latency at half the maximum rate ({line['offered_per_s']:,}/s offered)", line["committed_per_s"]
            base = "—"
            target = f"p99 ≤ {line['target_p99_ms']} ms: {'met' if line['target_met'] else 'missed'}"
            latency = f"{line['p50_ms']} / {line['p95_ms']} / {line['p99_ms']} ({line['probes']} probes)"
        elif "backlog" in line:
            run, rate = f"backlog of {line['messages']:,} messages drained", line["drain_per_s"]
            base, latency = f"published in {line['published_in_s']} s, drained in {line['drained_in_s']} s", "—"
            target = f"RSS ≤ {line['target_rss_mb']} MB: {'met' if line['target_met'] else 'missed'}"
        else:
            run, rate, latency = f"{line['path']}, {shape} reading(s)/message", line["committed_per_s"], "—"
            ceiling = bare.get(shape)
            base = f"bare receive {ceiling['received_per_s']:,}/s ({rate / ceiling['received_per_s']:.0%})" if ceiling else "—"
            if copy and shape > 1:
                base += f"; raw COPY {copy['rows_per_s']:,} rows/s"
            verdict = summary.get(f"{shape} reading(s) per message, gateway x 1") if line["path"] == "gateway x 1" else None
            target = f"≥ {verdict['target_per_s']:,}/s: {'met' if verdict['target_met'] else 'missed'}" if verdict else "—"
            if verdict and "of_bare_met" in verdict:
                target += f"; ≥ 60% of bare: {'met' if verdict['of_bare_met'] else 'missed'}"
        cpu = _cpu(line.get("cpu_cores", {}))
        out.append(f"| {run} | {rate:,} | {base} | {target} | {latency} | {line['gateway_rss_max_mb']} | {cpu} | "
                   f"{_ledger(line['ledger'])} |")  # fmt: skip
    for line in lines:
        if "baseline" in line:
            rate = line.get("rows_per_s") or line.get("received_per_s")
            out.append(f"| baseline: {line['baseline']}, {line.get('readings_per_message', line.get('batch'))} "
                       f"{'reading(s)/message' if 'readings_per_message' in line else 'rows/batch'} | {rate:,} | — | — | — | — "
                       f"| {_cpu(line['cpu_cores'])} | — |")  # fmt: skip
    dropped = next((line["dropped"] for line in lines if "dropped" in line), None)
    out.append(f"\nBroker messages dropped over the whole run (`$SYS/broker/publish/messages/dropped`): {dropped}.")
    return out


def _profiles(lines: list[dict[str, Any]]) -> list[str]:
    """Where the gateway's CPU went in each profiled run, by pipeline stage (py-spy samples)."""
    profiles = [line for line in lines if "profile" in line]
    if not profiles:
        return []
    out = ["## Where the gateway's time goes (py-spy, by stage)", ""]
    for line in profiles:
        if "unavailable" in line:
            out.append(f"- {line['profile']}: no profile ({line['unavailable']})")
            continue
        stages = ", ".join(f"{stage} {share:.0%}" for stage, share in line["stages"].items())
        out.append(f"- {line['profile']} ({line['samples']:,} samples): {stages}")
    return [*out, ""]


def _load(loaded: dict[str, object] | None) -> list[str]:
    if loaded is None:
        return ["The database was loaded by an earlier run.", ""]
    sentence = (
        f"Loaded in this run: {loaded['seconds']} s ({loaded['rows_s']} s generating the rows in the server, "
        f"{loaded['vacuum_s']} s VACUUM ANALYZE, {loaded['index_s']} s building {loaded['indexes_rebuilt']} indexes)."
    )
    return [sentence, ""]


def main() -> None:
    lines = [orjson.loads(text) for text in Path(sys.argv[1]).read_text().splitlines() if text.startswith("{")]
    machine = next((line["machine"] for line in lines if isinstance(line.get("machine"), dict)), {})
    described = (
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, Python "
        f"{machine.get('python')}, {machine.get('broker')}, PostgreSQL 15 + TimescaleDB; broker, database, gateway and "
        f"publishers all on it. Load average when the ingest bench started: {machine.get('load_average_at_start')}."
    )
    mapping = [line for line in lines if line.get("bench") == "mapping" and "path" in line]
    queries = [line for line in lines if line.get("bench") == "queries" and "query" in line]
    rows = next((line["observations"] for line in lines if line.get("bench") == "queries" and "load" in line), None)
    loaded = next((line for line in lines if line.get("bench") == "queries" and line.get("load") == "generated"), None)
    whole = next((line["seconds"] for line in lines if line.get("bench") == "make bench"), None)
    out = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/report.py`) from the figures the benches printed in one run.",
        "",
        described,
        "",
        *([f"The whole `make bench` took {whole // 60} min {whole % 60} s.", ""] if whole is not None else []),
        "## Ingest: devices → Mosquitto (QoS 1) → gateway → TimescaleDB",
        "",
        *_ingest([line for line in lines if line.get("bench") == "ingest"]),
        "",
        *_profiles([line for line in lines if line.get("bench") == "ingest"]),
        "## Mapping throughput (one core)",
        "",
        "| path | observations/s |",
        "|---|---|",
        *[f"| {line['path']} | {line['observations_per_s']:,} |" for line in mapping],
        "",
        f"## Query latency on {rows:,} rows" if rows else "## Query latency",
        "",
        *_load(loaded),
        "| query | phase | p50 ms | p95 ms | max ms | p95 < 50 ms",
        "|---|---|---|---|---|---",
        *[
            f"| {line['query']} | {line['phase']} | {line['p50_ms']} | {line['p95_ms']} | {line['max_ms']} | {line['target_met']}"
            for line in queries
        ],
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
