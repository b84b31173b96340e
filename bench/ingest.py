"""End-to-end ingest: devices publish QoS 1 to Mosquitto, the real gateway commits to TimescaleDB.

Starts a private Mosquitto (unbounded queues: nothing may be dropped), a database of its own
(``pulsebridge_bench_ingest``, dropped at the end) and ``python -m gateway serve`` processes,
all stopped by the handle or PID this run got when it started them. Publishers are
``bench/publish.py`` processes. Prints JSON lines:

- raw COPY into the same hypertable (the database's ceiling, no gateway);
- per shape (one reading per message, packs of 100): the bare aiomqtt receive loop on the same
  broker (``bench/receive.py``), then the gateway — committed readings/s (from the gateway's
  ``pulsebridge_readings_stored`` between 10 % and 90 % of the run), its RSS, the CPU split, and
  the ledger (published = acknowledged by the broker = rows = distinct reading keys);
- one reading per message through two gateways on a shared subscription;
- publish→commit latency at half the single-process maximum: every reading's device time is its
  publish instant; a probe device publishes 50 readings/s beside the load and a poll every 10 ms
  of its patient's rows sees them committed (each latency an upper bound, ≤ 10 ms high);
- a backlog of ``--backlog`` messages published while the gateway is stopped, then drained:
  drain rate and the gateway's largest RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson

from bench.ingest_support import (
    CpuWindow,
    Publishers,
    all_devices,
    bench_process,
    bucket_quantile,
    database_pids,
    machine,
    pid_of_config,
    profile_summary,
    profiler,
    rss_mb,
    scrape,
    steady_rate,
    stopped_on_exit,
)
from bench.publish import Clock, Publisher, mqtt_string, payload
from bench.queries import COLUMNS, Dataset, drop_database, ensure_database, rows
from edge_config import DatabaseSettings, IngestSettings
from gateway.storage.timescale import TimescaleStore
from tests.services import DROPPED_TOPIC, BrokerCounter, GatewayProcess, mosquitto

PROBE = "bench-probe"
PROBE_EVERY = 0.02
POLL_EVERY = 0.01
# Unbounded per-client queues and no memory cap: a backlog must be held, never dropped.
BROKER_CONFIG = "max_queued_bytes 0\nmemory_limit 0\nsys_interval 1\n"
TARGETS = {1: 10_000, 100: 50_000}
TARGET_OF_BARE = 0.6
TARGET_P99_MS = 500
TARGET_RSS_MB = 300
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def emit(line: dict[str, object]) -> None:
    print(orjson.dumps({"bench": "ingest", **line}).decode(), flush=True)


@dataclass
class Bench:
    args: argparse.Namespace
    folder: Path
    port: int
    broker_pid: int
    url: str
    http: httpx.AsyncClient

    def gateway(self, client_id: str, *, shared: bool = False) -> GatewayProcess:
        return GatewayProcess(self.folder, {
            "PULSEBRIDGE_DATABASE__URL": self.url,
            "PULSEBRIDGE_MQTT__PORT": str(self.port),
            "PULSEBRIDGE_MQTT__CLIENT_ID": client_id,
            **({"PULSEBRIDGE_MQTT__SHARED_GROUP": "bench"} if shared else {}),
            # The product's defaults, not the test suite's short batch wait.
            "PULSEBRIDGE_INGEST__BATCH_WAIT_MS": str(IngestSettings().batch_wait_ms),
            "PULSEBRIDGE_MAINTENANCE__ENABLED": "false",
            "PULSEBRIDGE_LOG_LEVEL": "WARNING",
        })  # fmt: skip

    async def sql(self, query: str) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.url)
        try:
            return await connection.fetch(query)
        finally:
            await connection.close()

    async def reset(self) -> None:
        await self.sql("TRUNCATE observations, quarantine, outbox")

    async def ledger(self, published: int, acked: int) -> dict[str, object]:
        row = (await self.sql("SELECT count(*) AS n, count(DISTINCT reading_key) AS k FROM observations"))[0]
        quarantined = (await self.sql("SELECT count(*) AS n FROM quarantine"))[0]["n"]
        return {"published": published, "acked_by_broker": acked, "rows": row["n"], "distinct_keys": row["k"],
                "quarantined": quarantined, "match": published == acked == row["n"] == row["k"] and not quarantined}  # fmt: skip

    async def cpu_window(self, gateways: list[GatewayProcess]) -> CpuWindow:
        groups = {"gateway": [g.pid for g in gateways if g.pid], "broker": [self.broker_pid]}
        return CpuWindow({**groups, **await database_pids(self.url, self.args.database)})

    async def until_stored(self, gateways: list[GatewayProcess], total: int, cpu: CpuWindow | None = None) -> Progress:
        """Scrape the gateways every 0.2 s until ``total`` readings are committed."""
        progress = Progress()
        deadline = time.monotonic() + self.args.timeout
        while True:
            stored = sum([(await scrape(self.http, gateway.base_url)).stored for gateway in gateways])
            progress.samples.append((time.monotonic(), stored))
            progress.rss_mb = max(progress.rss_mb, sum(rss_mb(gateway.pid) for gateway in gateways if gateway.pid))
            if cpu is not None:  # the pool opens connections as load rises
                cpu.add("database", (await database_pids(self.url, self.args.database))["database"])
            if stored >= total:
                return progress
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {stored} of {total} readings committed within {self.args.timeout} s")
            await asyncio.sleep(0.2)


@dataclass
class Progress:
    samples: list[tuple[float, int]] = field(default_factory=list)
    rss_mb: float = 0.0


async def started(gateways: list[GatewayProcess]) -> None:
    for gateway in gateways:
        gateway.start()
    for gateway in gateways:
        await asyncio.to_thread(gateway.wait_healthy, 60)


def stop_all(gateways: list[GatewayProcess]) -> None:
    for gateway in gateways:
        gateway.stop()


def publishers_cpu(reports: list[dict[str, object]]) -> float:
    return sum(float(str(report["cpu_seconds"])) for report in reports)


async def raw_copy(bench: Bench) -> dict[str, object]:
    """COPY the rows the gateway would write, batch by batch, each batch its own transaction."""
    await bench.reset()
    batch = IngestSettings().batch_size
    data = Dataset(bench.args.copy_rows, 1000, 1, datetime.now(UTC) - timedelta(days=2))
    records = list(rows(data))
    connection = await asyncpg.connect(bench.url)
    try:
        cpu = CpuWindow(await database_pids(bench.url, bench.args.database))
        cpu.start()
        began = time.perf_counter()
        for start in range(0, len(records), batch):
            await connection.copy_records_to_table("observations", records=records[start : start + batch], columns=COLUMNS)
        elapsed = time.perf_counter() - began
        cores = cpu.stop({"bench_process": elapsed})
    finally:
        await connection.close()
    return {"baseline": "raw COPY into the observations hypertable", "rows": len(records), "batch": batch,
            "rows_per_s": round(len(records) / elapsed), "cpu_cores": cores}  # fmt: skip


async def bare_receive(bench: Bench, per_message: int, readings: int) -> dict[str, object]:
    receiver = bench_process("receive", "--port", bench.port, "--readings", readings, "--per-message", per_message)
    with stopped_on_exit([receiver]):
        assert receiver.stdout is not None  # noqa: S101 - piped just above
        if (await asyncio.to_thread(receiver.stdout.readline)).strip() != "ready":
            raise RuntimeError(f"the bare receiver did not start: {receiver.communicate()[1][-2000:]}")
        cpu = CpuWindow({"broker": [bench.broker_pid]})
        cpu.start()
        publishers = Publishers.start(bench.port, bench.args.publishers, readings // per_message, per_message)
        with stopped_on_exit(publishers.processes):
            reports = await asyncio.to_thread(publishers.results, bench.args.timeout)
            out, err = await asyncio.to_thread(receiver.communicate, timeout=bench.args.timeout)
    if receiver.returncode != 0:
        raise RuntimeError(f"the bare receiver failed: {err[-2000:]}")
    result = orjson.loads(out.splitlines()[-1])
    cores = cpu.stop({"bare_receiver": result["cpu_seconds"], "publishers": publishers_cpu(reports)})
    rate = (readings * 9 // 10 - readings // 10) / (result["at_90"] - result["at_10"])
    return {"baseline": "bare aiomqtt receive loop", "readings_per_message": per_message, "readings": result["readings"],
            "received_per_s": round(rate), "cpu_cores": cores}  # fmt: skip


async def through_gateway(bench: Bench, per_message: int, readings: int, processes: int = 1) -> dict[str, object]:
    await bench.reset()
    gateways = [bench.gateway(f"bench-gw-{per_message}-{processes}-{n}", shared=processes > 1) for n in range(processes)]
    try:
        await started(gateways)
        cpu = await bench.cpu_window(gateways)
        profile = (bench.args.profile or bench.folder) / f"gateway-{per_message}-{processes}.txt"
        spy = [profiler(gateways[0].pid, profile, bench.args.profile_rate)] if bench.args.profile and gateways[0].pid else []
        cpu.start()
        began = time.monotonic()
        publishers = Publishers.start(bench.port, bench.args.publishers, readings // per_message, per_message)
        with stopped_on_exit(publishers.processes + spy):
            progress = await bench.until_stored(gateways, readings, cpu)
            reports = await asyncio.to_thread(publishers.results, bench.args.timeout)
            for process in spy:
                process.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
                await asyncio.to_thread(process.wait, 30)
        cores = cpu.stop({"publishers": publishers_cpu(reports)})
        sampled = f"gateway x {processes}" + (" (the first of them)" if processes > 1 else "")
        if spy and profile.exists():
            emit({"profile": f"{sampled}, {per_message} reading(s) per message", **profile_summary(profile)})
        elif spy:  # py-spy needs ptrace: a container without it still gets every other figure
            reason = spy[0].stderr.read().strip() if spy[0].stderr else ""
            emit({"profile": f"{sampled}, {per_message} reading(s) per message", "unavailable": reason or "py-spy wrote nothing"})
        overall = readings / (progress.samples[-1][0] - began)
    finally:
        stop_all(gateways)
    acked = sum(int(str(report["readings_acked"])) for report in reports)
    return {"path": f"gateway x {processes}" + (" (shared subscription)" if processes > 1 else ""),
            "readings_per_message": per_message, "readings": readings,
            "committed_per_s": round(steady_rate(progress.samples, readings)), "committed_per_s_whole_run": round(overall),
            "gateway_rss_max_mb": round(progress.rss_mb), "cpu_cores": cores,
            "ledger": await bench.ledger(readings, acked)}  # fmt: skip


async def latency(bench: Bench, rate: int) -> dict[str, object]:
    """Load at ``rate`` readings/s; probe readings' publish→commit latency seen by polling their patient's rows."""
    await bench.reset()
    gateway = bench.gateway("bench-gw-latency")
    messages = int(rate * bench.args.latency_seconds)
    probe = Publisher(bench.port, "bench-probe-client")
    topic = mqtt_string(f"pulsebridge/v1/devices/{PROBE}/readings")
    outstanding: dict[int, float] = {}
    latencies: list[float] = []
    try:
        await started([gateway])
        before = await scrape(bench.http, gateway.base_url)
        publishers = Publishers.start(bench.port, bench.args.publishers, messages, 1, rate=rate)
        connection = await asyncpg.connect(bench.url)
        clock, sequence, began, largest = Clock(), 0, time.monotonic(), 0.0
        with stopped_on_exit(publishers.processes):
            while any(process.poll() is None for process in publishers.processes) or outstanding:
                if publishers.processes[0].poll() is None and time.monotonic() - began > sequence * PROBE_EVERY:
                    micros = clock.next(1)
                    probe.publish([(topic, payload(micros, sequence, 1))])  # one small packet: not worth a thread
                    outstanding[micros] = time.monotonic() - began
                    sequence += 1
                probe.read_acks(0)
                largest = max(largest, rss_mb(gateway.pid or 0))
                if outstanding:
                    polled = time.time()
                    oldest = _EPOCH + timedelta(microseconds=min(outstanding))
                    for row in await connection.fetch("SELECT time FROM observations WHERE patient_id = $1 AND time >= $2",
                                                      PROBE, oldest):  # fmt: skip
                        micros = (row["time"] - _EPOCH) // timedelta(microseconds=1)
                        if (sent_at := outstanding.pop(micros, None)) is not None and sent_at > bench.args.warm_up:
                            latencies.append(polled - micros / 1e6)
                if time.monotonic() - began > bench.args.latency_seconds + bench.args.timeout:
                    raise RuntimeError(f"{len(outstanding)} probe readings never committed")
                await asyncio.sleep(POLL_EVERY)
            reports = await asyncio.to_thread(publishers.results, bench.args.timeout)
        elapsed = time.monotonic() - began
        await connection.close()
        after = await scrape(bench.http, gateway.base_url)
    finally:
        probe.close()
        stop_all([gateway])
    latencies.sort()
    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    gateway_p99 = bucket_quantile(before.latency_buckets, after.latency_buckets, 0.99)
    acked = sum(int(str(report["readings_acked"])) for report in reports)
    return {"path": "gateway x 1", "latency": "publish→commit at half the maximum rate", "offered_per_s": rate,
            "committed_per_s": round((after.stored - before.stored) / elapsed), "probes": len(latencies),
            "p50_ms": round(cut[49] * 1000, 1), "p95_ms": round(cut[94] * 1000, 1), "p99_ms": round(cut[98] * 1000, 1),
            "max_ms": round(latencies[-1] * 1000, 1), "target_p99_ms": TARGET_P99_MS,
            "target_met": cut[98] * 1000 <= TARGET_P99_MS,
            "gateway_histogram_receive_to_commit_p99_le_s": gateway_p99, "gateway_rss_max_mb": round(largest),
            "ledger": await bench.ledger(messages + sequence, acked + probe.acked)}  # fmt: skip


async def backlog(bench: Bench, messages: int) -> dict[str, object]:
    """Queue ``messages`` for a stopped gateway's persistent session, then start it and watch it drain."""
    await bench.reset()
    gateway = bench.gateway("bench-gw-backlog")
    try:
        await started([gateway])  # the broker now holds this client id's session
        gateway.stop()
        began = time.monotonic()
        publishers = Publishers.start(bench.port, bench.args.publishers, messages, 1)
        with stopped_on_exit(publishers.processes):
            reports = await asyncio.to_thread(publishers.results, bench.args.timeout)
        published_in = time.monotonic() - began
        cpu = await bench.cpu_window([])
        cpu.start()
        began = time.monotonic()
        gateway.start()
        cpu.add("gateway", [gateway.pid] if gateway.pid else [])
        await asyncio.to_thread(gateway.wait_healthy, 60)
        progress = await bench.until_stored([gateway], messages, cpu)
        cores = cpu.stop()
    finally:
        stop_all([gateway])
    acked = sum(int(str(report["readings_acked"])) for report in reports)
    return {"path": "gateway x 1", "backlog": "published while the gateway was stopped, then drained", "messages": messages,
            "published_in_s": round(published_in, 1), "drained_in_s": round(progress.samples[-1][0] - began, 1),
            "drain_per_s": round(steady_rate(progress.samples, messages)), "gateway_rss_max_mb": round(progress.rss_mb),
            "target_rss_mb": TARGET_RSS_MB, "target_met": progress.rss_mb <= TARGET_RSS_MB, "cpu_cores": cores,
            "ledger": await bench.ledger(messages, acked)}  # fmt: skip


async def register(url: str, devices: list[str]) -> None:
    store = await TimescaleStore.open(DatabaseSettings(url=url, pool_max=2))
    try:
        await store.migrate()
        for device in devices:
            await store.add_patient(device, None, None)  # one patient per device: the probe's rows are its patient's alone
            await store.add_device(device, "watch", None)
            await store.assign_device(device, device, None)
    finally:
        await store.close()


def _summary(single: dict[str, object], bare: dict[str, object], per_message: int) -> None:
    rate, ceiling = int(str(single["committed_per_s"])), int(str(bare["received_per_s"]))
    ratio = {"target_of_bare": TARGET_OF_BARE, "of_bare_met": rate >= TARGET_OF_BARE * ceiling} if per_message == 1 else {}
    emit({"summary": f"{per_message} reading(s) per message, gateway x 1", "committed_per_s": rate,
          "target_per_s": TARGETS[per_message], "target_met": rate >= TARGETS[per_message],
          "of_bare_receive": round(rate / ceiling, 2), **ratio})  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    emit({"machine": machine()})
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    url = await ensure_database(args.database)
    devices = [*all_devices(args.publishers, 20), PROBE]
    try:
        await register(url, devices)
        with tempfile.TemporaryDirectory(prefix="pulsebridge-bench-") as folder, mosquitto(Path(folder), BROKER_CONFIG) as port:
            broker = pid_of_config(Path(folder) / f"mosquitto-{port}.conf")
            async with BrokerCounter(port) as dropped_counter, httpx.AsyncClient() as http:
                bench = Bench(args, Path(folder), port, broker, url, http)
                phases = set(args.only.split(","))
                if "copy" in phases:
                    emit(await raw_copy(bench))
                single_rate = args.latency_rate
                for phase, per_message, readings in (("single", 1, args.readings), ("packs", 100, args.pack_readings)):
                    if phase in phases:
                        bare = await bare_receive(bench, per_message, readings)
                        emit(bare)
                        result = await through_gateway(bench, per_message, readings)
                        emit(result)
                        _summary(result, bare, per_message)
                        single_rate = int(str(result["committed_per_s"])) if per_message == 1 else single_rate
                if "shared" in phases:
                    emit(await through_gateway(bench, 1, args.readings, processes=2))
                if "latency" in phases:
                    emit(await latency(bench, single_rate // 2))
                if "backlog" in phases:
                    emit(await backlog(bench, args.backlog))
                emit({"broker": f"messages dropped ({DROPPED_TOPIC})", "dropped": await dropped_counter.value()})
    finally:
        await drop_database(args.database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=300_000, help="one-per-message run size")
    parser.add_argument("--pack-readings", type=int, default=1_000_000, help="packs-of-100 run size")
    parser.add_argument("--copy-rows", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=1_000_000, help="messages queued while the gateway is stopped")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--warm-up", type=float, default=2.0, help="seconds of probes not counted at the start")
    parser.add_argument("--publishers", type=int, default=4, help="publisher processes")
    parser.add_argument("--latency-rate", type=int, default=10_000, help="twice the latency run's rate when 'single' is not run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a phase may take before the run fails")
    parser.add_argument("--database", default="pulsebridge_bench_ingest")
    parser.add_argument("--profile", type=Path, help="sample the gateway with py-spy into this folder; print where its time goes")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second (its cost grows with it)")
    parser.add_argument("--only", default="copy,single,packs,shared,latency,backlog", help="comma-separated phases to run")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
