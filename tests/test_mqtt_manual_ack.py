"""Ack-after-commit over real Mosquitto: unacknowledged QoS 1 messages come back after a crash.

This guards ``device_adapters/mqtt/manual_ack.py``, which reaches into aiomqtt's paho client:
if a future aiomqtt or paho breaks manual acknowledgement, these tests fail. The
``aiomqtt-default`` control shows the loss the module exists to prevent (so the check can fail).
"""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pytest

from device_adapters.mqtt.publisher import ReadingPublisher

TOPIC = "probe/ack/readings"
COUNT = 20


class Probe:
    def __init__(self, port: int, client_id: str, protocol: str, mode: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.mqtt_probe", "--port", str(port), "--client-id", client_id, "--protocol", protocol,
             "--topic", TOPIC, "--mode", mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.put(line.decode().rstrip())

    def messages(self, want: int, timeout: float) -> list[str]:
        """Collect message lines until ``want`` arrived or ``timeout`` passed."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line.startswith("message "):
                got.append(line.removeprefix("message "))
            elif line != "ready":
                got.append(f"unexpected output: {line}")
        return got

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.lines.get(timeout=0.1) == "ready":
                    return
            except queue.Empty:
                if self.process.poll() is not None:
                    raise RuntimeError(f"probe exited with {self.process.returncode}") from None
        raise RuntimeError("probe did not connect")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def probe(port: int, client_id: str, protocol: str, mode: str) -> Iterator[Probe]:
    running = Probe(port, client_id, protocol, mode)
    try:
        yield running
    finally:
        running.kill()


async def _publish(port: int, start: int) -> list[str]:
    payloads = [f"m{start + i}" for i in range(COUNT)]
    async with ReadingPublisher("127.0.0.1", port) as publisher:
        for payload in payloads:
            await publisher.publish_raw(TOPIC, payload.encode())
    return payloads


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_unacknowledged_messages_are_redelivered_after_sigkill(broker_port: int, protocol: str) -> None:
    client_id = f"ack-probe-{protocol}"
    with probe(broker_port, client_id, protocol, "hold") as holder:
        holder.wait_ready()
        sent = await _publish(broker_port, 0)
        assert holder.messages(COUNT, timeout=10) == sent
        holder.kill()  # dies holding 20 unacknowledged messages

    with probe(broker_port, client_id, protocol, "ack") as acker:
        assert sorted(acker.messages(COUNT, timeout=10)) == sorted(sent)  # all 20 came back
        await asyncio.sleep(0.5)  # let the PUBACKs reach the broker
        acker.kill()

    with probe(broker_port, client_id, protocol, "ack") as after:
        after.wait_ready()
        assert after.messages(1, timeout=2) == []  # acknowledged means gone for good


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_aiomqtt_default_loses_messages_on_sigkill(broker_port: int, protocol: str) -> None:
    """The control: without manual acks, what the process had received is lost with it."""
    client_id = f"default-probe-{protocol}"
    with probe(broker_port, client_id, protocol, "aiomqtt-default") as holder:
        holder.wait_ready()
        sent = await _publish(broker_port, 100)
        assert holder.messages(COUNT, timeout=10) == sent
        await asyncio.sleep(0.3)
        holder.kill()
    with probe(broker_port, client_id, protocol, "aiomqtt-default") as again:
        assert again.messages(COUNT, timeout=3) == []
