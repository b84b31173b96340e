"""What the ingest bench measures with: CPU and memory from /proc, the gateway's metrics, processes it starts.

Every process is started here and stopped by the handle or PID it returned; nothing is found or
killed by name.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson

from bench.publish import device_ids

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
_STORED = re.compile(r"^pulsebridge_readings_stored_total (\S+)$", re.MULTILINE)
_BUCKET = re.compile(r'^pulsebridge_ingest_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.MULTILINE)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of one process; 0 once it is gone (its share is then lost, not guessed)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pid_of_config(config: Path) -> int:
    """The broker this bench started with ``config`` (tests.services.mosquitto keeps its handle to itself)."""
    wanted = str(config).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if wanted in (entry / "cmdline").read_bytes().split(b"\0"):
                    return int(entry.name)
    raise RuntimeError(f"no process runs with {config}")


async def database_pids(url: str, database: str) -> dict[str, list[int]]:
    """The backends serving ``database`` and the cluster's WAL writer and checkpointer (shared with other users)."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND (datname = $1 OR backend_type IN ('walwriter', 'checkpointer', 'background writer'))",
            database,
        )
    finally:
        await connection.close()
    return {
        "database": [row["pid"] for row in rows if row["datname"] == database],
        "database_wal_and_checkpoints": [row["pid"] for row in rows if row["datname"] != database],
    }


@dataclass
class CpuWindow:
    """CPU each group of processes used between :meth:`start` and :meth:`stop`, in cores (seconds per second)."""

    groups: dict[str, list[int]]
    _started: dict[int, float] = field(default_factory=dict)
    _wall: float = 0.0

    def start(self) -> None:
        self._started = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        self._wall = time.monotonic()

    def add(self, group: str, pids: Iterable[int]) -> None:
        """Processes that appear mid-window (a restarted gateway, a new pool connection) count from now."""
        for pid in pids:
            if pid not in self._started:
                self.groups.setdefault(group, []).append(pid)
                self._started[pid] = cpu_seconds(pid)

    def stop(self, extra: dict[str, float] | None = None) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        cores = {
            group: sum(max(0.0, cpu_seconds(pid) - self._started.get(pid, 0.0)) for pid in pids) / wall
            for group, pids in self.groups.items()
        }
        cores.update({group: seconds / wall for group, seconds in (extra or {}).items()})
        return {group: round(value, 2) for group, value in cores.items()}


@dataclass(frozen=True, slots=True)
class Scrape:
    stored: int
    latency_buckets: dict[float, float]


async def scrape(http: httpx.AsyncClient, base_url: str) -> Scrape:
    text = (await http.get(f"{base_url}/metrics", timeout=5)).text
    stored = _STORED.search(text)
    buckets = {float(bound): float(count) for bound, count in _BUCKET.findall(text)}
    return Scrape(int(float(stored.group(1))) if stored else 0, buckets)


def bucket_quantile(before: dict[float, float], after: dict[float, float], quantile: float) -> float | None:
    """The histogram bucket bound below which ``quantile`` of the window's observations fell (an upper bound)."""
    window = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = window[-1][1] if window else 0.0
    if not total:
        return None
    return next(bound for bound, count in window if count >= quantile * total)


def steady_rate(samples: Sequence[tuple[float, int]], total: int) -> float:
    """Readings per second between 10 % and 90 % of ``total`` committed: no warm-up, no tail."""
    low = next(at for at, count in samples if count >= total // 10)
    high = next(at for at, count in samples if count >= total * 9 // 10)
    counts = dict(samples)
    return (counts[high] - counts[low]) / (high - low) if high > low else 0.0


def bench_process(module: str, *args: object) -> subprocess.Popen[str]:
    """A bench helper (publisher, bare receiver) as its own process: the bench's CPU is not theirs."""
    command = [sys.executable, "-m", f"bench.{module}", *(str(arg) for arg in args)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@dataclass
class Publishers:
    """Publisher processes started together; :meth:`results` waits for their reports."""

    processes: list[subprocess.Popen[str]]

    @classmethod
    def start(cls, port: int, count: int, messages: int, per_message: int, *, rate: float = 0.0, devices: int = 20) -> Publishers:
        start_at = time.time() + 0.5  # all of them start together, after their imports
        share, rest = divmod(messages, count)
        return cls([
            bench_process("publish", "--port", port, "--process", number, "--devices", devices,
                          "--messages", share + (number < rest), "--per-message", per_message,
                          "--rate", rate / count, "--start-at", start_at)
            for number in range(count)
        ])  # fmt: skip

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def results(self, timeout: float) -> list[dict[str, object]]:
        reports = []
        for process in self.processes:
            out, err = process.communicate(timeout=timeout)
            if process.returncode != 0:
                raise RuntimeError(f"publisher failed ({process.returncode}): {err[-2000:]}")
            reports.append(orjson.loads(out.splitlines()[-1]))
        return reports

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def all_devices(processes: int, devices: int) -> list[str]:
    return [device for process in range(processes) for device in device_ids("bench", process, devices)]


def machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())  # fmt: skip
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout.split("\n", 1)[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory / 2**20), "python": platform.python_version(),
            "broker": mosquitto.strip(), "load_average_at_start": [round(load, 2) for load in os.getloadavg()]}  # fmt: skip


@contextlib.contextmanager
def stopped_on_exit(processes: list[subprocess.Popen[str]]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


# A sample counts for the first stage whose frames are on its stack, in this order (an alert rule
# runs inside the event bus's delivery, a decoder inside the pipeline's preparation).
PROFILE_STAGES = (
    ("alert rules", ("gateway/alerts/",)),
    ("observation events", ("gateway/events.py",)),
    ("decode", ("IngestPipeline._decode", "device_adapters/mqtt/native.py", "device_adapters/mqtt/senml.py")),
    ("map to FHIR", ("fhir_mapper/",)),
    ("database writes (asyncpg encoding, transactions)", ("asyncpg/", "gateway/storage/")),
    ("MQTT receive and acks", ("paho/", "aiomqtt/", "device_adapters/mqtt/")),
    ("batching and queues", ("gateway/pipeline.py", "asyncio/queues.py")),
    ("HTTP (metrics scrapes)", ("starlette/", "fastapi/", "prometheus_client/", "uvicorn/protocols/")),
)


def profiler(pid: int, output: Path, rate: int = 200) -> subprocess.Popen[str]:
    """py-spy sampling the gateway in raw (collapsed stacks) form, without pausing it."""
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
               "--nonblocking", "--output", str(output)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def profile_summary(collapsed: Path, top: int = 15) -> dict[str, object]:
    """Where the gateway's samples went: the functions most often on top of the stack, and most often anywhere on it."""
    own: dict[str, int] = {}
    anywhere: dict[str, int] = {}
    stages: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \((?:.*/)?([^/]+)\)$", r" (\1)", frame) for frame in stack.split(";")]
        samples = int(count)
        total += samples
        stage = next((name for name, marks in PROFILE_STAGES if any(mark in stack for mark in marks)), "event loop and the rest")
        stages[stage] = stages.get(stage, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            anywhere[frame] = anywhere.get(frame, 0) + samples

    def share(table: dict[str, int]) -> dict[str, float]:
        return {frame: round(count / total, 3) for frame, count in sorted(table.items(), key=lambda item: -item[1])[:top]}

    return {"samples": total, "stages": share(stages), "self": share(own), "inclusive": share(anywhere)}
