"""Real services for the tests: a private Mosquitto, the gateway as a process, a test database.

Nothing here is a stand-in: a missing service fails the test with a message that says how to
provide it (``make test`` installs and starts them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ADMIN_DSN = os.environ.get("PULSEBRIDGE_TEST_ADMIN_DSN", "postgresql:///postgres?host=/var/run/postgresql")
SERVICES_HINT = "run `make test` (scripts/setup-services.sh installs and starts TimescaleDB and Mosquitto)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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


@contextmanager
def mosquitto(folder: Path, extra_config: str = "", *, anonymous: bool = True) -> Iterator[int]:
    """A private Mosquitto on a free loopback port, stopped by its PID afterwards."""
    port = free_port()
    config = folder / f"mosquitto-{port}.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        f"allow_anonymous {'true' if anonymous else 'false'}\n"
        "persistence false\n"
        # Test files live in root-only temp folders: keep the private broker's user (it binds loopback only).
        f"{'user root' + chr(10) if os.geteuid() == 0 else ''}"
        # The broker's default of 1000 queued messages per offline session silently drops.
        "max_queued_messages 0\n"
        f"{extra_config}",
    )
    log = (folder / f"mosquitto-{port}.log").open("wb")
    process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


class GatewayProcess:
    """``pulsebridge serve`` as a real process, configured through PULSEBRIDGE_* variables."""

    def __init__(self, folder: Path, env: Mapping[str, str]) -> None:
        self.http_port = free_port()
        self._env = {
            **os.environ,
            "PULSEBRIDGE_HTTP__PORT": str(self.http_port),
            "PULSEBRIDGE_INGEST__BATCH_WAIT_MS": "10",
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
