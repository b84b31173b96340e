"""Real services for the tests: a private Mosquitto, the gateway as a process, a test database.

Nothing here is a stand-in: a missing service fails the test with a message that says how to
provide it (``make test`` installs and starts them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import aiomqtt
import httpx

from edge_config import AuthSettings
from gateway.auth.tokens import LocalIssuer, Role

ADMIN_DSN = os.environ.get("PULSEBRIDGE_TEST_ADMIN_DSN", "postgresql:///postgres?host=/var/run/postgresql")
ADMIN_SCOPE = "user/*.cruds"
"""What the tests' administrator may do: everything, for every patient."""
SERVICES_HINT = "run `make test` (scripts/setup-services.sh installs and starts TimescaleDB and Mosquitto)"


def _ephemeral_ports() -> range:
    try:
        low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port() -> int:
    """A free loopback port outside the kernel's ephemeral range.

    Services here are stopped and started again on the same port (a gateway restarted, a broker
    killed); a port the kernel hands out for outgoing connections could meanwhile be the source
    port of one of the test's own device connections, and the restart would fail to bind.
    """
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(10_000, 32_768) if port not in ephemeral]
    for port in random.sample(candidates, k=min(200, len(candidates))):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port outside the ephemeral range")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout} s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        raise RuntimeError(f"mosquitto is not installed: {SERVICES_HINT}")
    return found


class PrivateMosquitto:
    """A Mosquitto of our own on a fixed free port: it can be SIGKILLed and started again on that port."""

    def __init__(self, folder: Path, extra_config: str = "", *, anonymous: bool = True, persistence: bool = False) -> None:
        self.port = free_port()
        self.folder = folder
        self.config = folder / f"mosquitto-{self.port}.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            f"persistence {'true' if persistence else 'false'}\n"
            f"persistence_location {folder}/\n"
            f"persistence_file mosquitto-{self.port}.db\n"
            # Test files live in root-only temp folders: keep the private broker's user (it binds loopback only).
            f"{'user root' + chr(10) if os.geteuid() == 0 else ''}"
            # The broker's default of 1000 queued messages per offline session silently drops.
            "max_queued_messages 0\n"
            f"{extra_config}",
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.folder / f"mosquitto-{self.port}.log").open("ab") as log:
            self._process = subprocess.Popen([mosquitto_binary(), "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


@contextmanager
def mosquitto_broker(
    folder: Path, extra_config: str = "", *, anonymous: bool = True, persistence: bool = False
) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(folder, extra_config, anonymous=anonymous, persistence=persistence)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextmanager
def mosquitto(folder: Path, extra_config: str = "", *, anonymous: bool = True) -> Iterator[int]:
    """A private Mosquitto on a free loopback port, stopped by its PID afterwards."""
    with mosquitto_broker(folder, extra_config, anonymous=anonymous) as broker:
        yield broker.port


DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class BrokerCounter:
    """Follows one of a private Mosquitto's ``$SYS`` counters from the broker's first minute on.

    Mosquitto (2.0) publishes a ``$SYS`` counter only when it changes, retained with a 60 s
    expiry: a reader that subscribes more than a minute after the last change gets nothing (a
    dropped count that stayed 0 is never heard again). So this subscribes while the broker is
    new, keeps the latest value, and fails loudly if the broker never said one.
    """

    def __init__(self, port: int, topic: str = DROPPED_TOPIC, *, sys_interval: float = 1.0) -> None:
        self._port, self._topic, self._sys_interval = port, topic, sys_interval
        self._client = aiomqtt.Client("127.0.0.1", port, identifier=f"sys-reader-{time.monotonic_ns()}")
        self._value: int | None = None
        self._first = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        await self._client.subscribe(self._topic)
        self._task = asyncio.create_task(self._follow())
        try:
            async with asyncio.timeout(15):
                await self._first.wait()
        except TimeoutError:
            await self.__aexit__(None, None, None)
            raise RuntimeError(f"the broker on port {self._port} published no {self._topic} (is sys_interval set?)") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _follow(self) -> None:
        async for message in self._client.messages:
            if isinstance(message.payload, bytes):
                self._value = int(message.payload)
                self._first.set()

    async def value(self) -> int:
        """The counter now: after two ``sys_interval`` periods, so that the latest change is in."""
        await asyncio.sleep(2.5 * self._sys_interval)
        if self._task is not None and self._task.done():
            raise RuntimeError(f"lost the broker's {self._topic}: {self._task.exception()!r}")
        assert self._value is not None
        return self._value


class GatewayProcess:
    """``pulsebridge serve`` as a real process, configured through PULSEBRIDGE_* variables."""

    def __init__(self, folder: Path, env: Mapping[str, str]) -> None:
        self.http_port = free_port()
        self.signing_key_file = folder / "signing-key.pem"
        self._env = {
            **os.environ,
            "PULSEBRIDGE_HTTP__PORT": str(self.http_port),
            "PULSEBRIDGE_INGEST__BATCH_WAIT_MS": "10",
            "PULSEBRIDGE_AUTH__SIGNING_KEY_FILE": str(self.signing_key_file),
            **env,
        }
        self._log_path = folder / f"gateway-{self.http_port}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=self._env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self._process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not healthy within {timeout} s:\n{self.log()}")

    def token(
        self, role: Role = Role.ADMIN, scope: str = ADMIN_SCOPE, patient_id: str | None = None, *, subject: str | None = None
    ) -> str:
        """A bearer token signed with the gateway's own key (the file it shares with the tests)."""
        settings = AuthSettings()
        issuer = LocalIssuer.from_key_file(settings.issuer, settings.audience, self.signing_key_file)
        return issuer.issue(subject or f"test-{role}", role, scope, patient_id=patient_id)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")[-4000:] if self._log_path.exists() else ""


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``pulsebridge`` as a user would (through the installed module)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL 15 cluster of our own (TimescaleDB preloaded, trust auth), to pause, crash and restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c shared_preload_libraries=timescaledb -c fsync=off"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: no checkpoint, crash recovery at the next start."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")


@contextmanager
def private_postgres_cluster() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 binaries not found in {PG_BIN}: {SERVICES_HINT}")
    folder = Path(tempfile.mkdtemp(prefix="pulsebridge-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    cluster = PrivatePostgres(folder)
    try:
        cluster._as_postgres(str(PG_BIN / "initdb"), "-D", str(cluster.data), "--auth=trust", "-U", "postgres", "--no-sync")
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cluster.crash()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[str]:
    """A private cluster's URL, for tests that pause or crash it."""
    with private_postgres_cluster() as cluster:
        yield cluster.url


def postgres_pids(url: str) -> list[int]:
    """The private cluster serving ``url``: its postmaster (found by port) and every child process."""
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    postmasters, parents = [], {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if command and command[0].endswith(b"postgres") and f"-p {port}".encode() in b" ".join(command):
                postmasters.append(int(entry.name))
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return postmasters + [pid for pid, parent in parents.items() if parent in postmasters]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
