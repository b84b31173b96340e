"""Processes for the edge hub tests: a broker that can be stopped and started again, and the hub itself."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import asyncpg

from tests.fake_glucose import METERS_ENV
from tests.services import free_port, mosquitto_binary, wait_for_port

REPO = Path(__file__).resolve().parent.parent


class RestartableBroker:
    """A private Mosquitto on one port that keeps its sessions and queued messages across a stop (persistence)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self._folder = folder / f"broker-{self.port}"
        self._folder.mkdir(parents=True, exist_ok=True)
        self._config = self._folder / "mosquitto.conf"
        self._config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self._folder}/\nautosave_interval 1\n"
            f"{'user root' + chr(10) if os.geteuid() == 0 else ''}max_queued_messages 0\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self._folder / "mosquitto.log").open("ab")
        self._process = subprocess.Popen([mosquitto_binary(), "-c", str(self._config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its sessions and queued messages before it exits."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=15)
        self._process = None


class HubProcess:
    """``pulsebridge edge`` as a real process, its meters faked behind bleak's client interface."""

    def __init__(
        self, folder: Path, hub_id: str, upstream_port: int, meters_file: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.outbox = folder / f"{hub_id}-outbox.db"
        self._log_path = folder / f"{hub_id}.log"
        self._env = {
            **os.environ,
            "PULSEBRIDGE_EDGE__HUB_ID": hub_id,
            "PULSEBRIDGE_EDGE__OUTBOX_PATH": str(self.outbox),
            "PULSEBRIDGE_EDGE__UPSTREAM__PORT": str(upstream_port),
            "PULSEBRIDGE_EDGE__UPSTREAM__TLS": "false",
            "PULSEBRIDGE_EDGE__UPSTREAM__RECONNECT_MAX_SECONDS": "1",
            "PULSEBRIDGE_EDGE__UPSTREAM__PUBLISH_TIMEOUT_SECONDS": "5",
            "PULSEBRIDGE_EDGE__HEARTBEAT_SECONDS": "1",
            "PULSEBRIDGE_EDGE__MIN_FREE_DISK_BYTES": "0",
            "PULSEBRIDGE_EDGE__BLE_BACKEND": "tests.fake_glucose:FileMeterBackend",
            METERS_ENV: str(meters_file),
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self._log_path.open("ab")
        self._process = subprocess.Popen([sys.executable, "-m", "gateway", "edge"], env=self._env, cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT)  # fmt: skip
        log.close()

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=15)

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Read the hub's outbox beside the running hub (WAL lets a reader in)."""
        if not self.outbox.exists():
            return []
        connection = sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []  # the hub has not created its tables yet
        finally:
            connection.close()

    def counter(self, name: str) -> int:
        rows = self.query("SELECT value FROM counters WHERE name = ?", name)
        return int(rows[0][0]) if rows else 0  # type: ignore[call-overload] # sqlite3 rows are untyped: these columns are integers

    def held(self) -> int:
        rows = self.query("SELECT COUNT(*) FROM readings")
        return int(rows[0][0]) if rows else 0  # type: ignore[call-overload] # sqlite3 rows are untyped: these columns are integers

    def cursor(self, device_id: str) -> int | None:
        rows = self.query("SELECT sequence FROM cursors WHERE device_id = ?", device_id)
        return int(rows[0][0]) if rows else None  # type: ignore[call-overload] # sqlite3 rows are untyped: these columns are integers


async def central_count(url: str, patient_id: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM observations WHERE patient_id = $1", patient_id))
    finally:
        await connection.close()


def wait_until(condition: object, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(poll)
    raise AssertionError(f"not within {timeout} s: {what}")
