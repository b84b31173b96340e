"""Scenario 9 of reliability.md: the EHR is down while readings keep arriving.

A real gateway process ingests a steady MQTT stream; the FHIR receiver standing in for the EHR is
stopped for ``PULSEBRIDGE_PUSH_OUTAGE_SECONDS`` (default 600: the issue's ten minutes). The
backlog must live in the outbox only (gateway memory flat), the outbox-age metric must rise, the
API must keep serving, and after the EHR is back everything drains: every reading once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import truncate
from tests.fhir_receiver import FhirReceiver
from tests.services import GatewayProcess, cli, mosquitto, rss_kib

OUTAGE_SECONDS = float(os.environ.get("PULSEBRIDGE_PUSH_OUTAGE_SECONDS", "600"))
RATE = 20  # readings per second, one per message
MRN = "urn:oid:2.16.840.1.113883.19.5"
PATIENT = "outage-patient"
DEVICE = "outage-watch"


class Publisher:
    """One reading per QoS 1 message at a steady rate; counts what the broker acknowledged."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self._first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="outage-publisher") as client:
            started = time.monotonic()
            while True:
                reading = {
                    "type": "heart_rate",
                    "value": 60 + self.sent % 40,
                    "unit": "/min",
                    "time": (self._first + timedelta(seconds=self.sent)).isoformat(),
                }
                await client.publish(f"pulsebridge/v1/devices/{DEVICE}/readings", orjson.dumps(reading), qos=1)
                self.sent += 1
                await asyncio.sleep(max(0.0, started + self.sent / RATE - time.monotonic()))


@contextlib.asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def gauge(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("destination") == "ehr":
                return sample.value
    raise AssertionError(f"no {name} in /metrics")


async def register(env: dict[str, str]) -> None:
    """The patient (with the identifier the EHR knows) and the device, through the command line."""
    for args in (
        ("patients", "add", "--id", PATIENT),
        ("patients", "identifier", PATIENT, MRN, "MRN-7"),
        ("devices", "add", DEVICE, "--kind", "watch"),
        ("devices", "assign", DEVICE, PATIENT),
    ):
        done = await asyncio.to_thread(cli, env, *args)
        assert done.returncode == 0, done.stderr


async def drained(api: httpx.AsyncClient, sent: int, timeout: float) -> dict[str, int]:
    """Outbox counts by status once every reading sent is done (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        status = {row["status"]: row["count"] for row in (await api.get("/api/v1/outbox")).json()}
        if status.get("done") == sent and not status.get("pending"):
            return status
        assert time.monotonic() < deadline, f"not drained: {status}, sent {sent}"
        await asyncio.sleep(0.5)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    with mosquitto(tmp_path) as port:
        yield port


async def test_an_ehr_outage_under_steady_ingest_is_held_in_the_outbox_and_drains_exactly_once(
    timescale_url: str, broker: int, tmp_path: Path
) -> None:
    await truncate(timescale_url)
    async with FhirReceiver() as receiver:
        receiver.patients[(MRN, "MRN-7")] = ["ehr-patient-7"]
        destination = {
            "name": "ehr",
            "base_url": receiver.base_url,
            "patient": {"match": "identifier_search", "identifier_system": MRN},
            "retry_base_seconds": 0.5,
            "retry_cap_seconds": 10,
            "breaker_cool_down_seconds": 5,
            "poll_seconds": 0.2,
        }
        env = {
            "PULSEBRIDGE_DATABASE__URL": timescale_url,
            "PULSEBRIDGE_MQTT__PORT": str(broker),
            "PULSEBRIDGE_MQTT__CLIENT_ID": "outage-gateway",
            "PULSEBRIDGE_DESTINATIONS": orjson.dumps([destination]).decode(),
        }
        await register(env)
        gateway = GatewayProcess(tmp_path, env)
        gateway.start()
        try:
            await asyncio.to_thread(gateway.wait_healthy)
            assert gateway.pid is not None
            headers = {"Authorization": f"Bearer {gateway.token()}"}
            async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=10) as api:
                publisher = Publisher(broker)
                async with running(publisher.run()):
                    await asyncio.sleep(10)
                    assert receiver.creates > 0, gateway.log()  # pushing before the outage

                    await receiver.__aexit__(None, None, None)  # the EHR goes down
                    outage_started = time.monotonic()
                    rss: list[int] = []
                    ages: list[float] = []
                    while (elapsed := time.monotonic() - outage_started) < OUTAGE_SECONDS:
                        await asyncio.sleep(min(5.0, OUTAGE_SECONDS - elapsed))
                        rss.append(rss_kib(gateway.pid))
                        ages.append(gauge((await api.get("/metrics")).text, "pulsebridge_outbox_oldest_pending_age_seconds"))
                        read = await api.get("/fhir/Observation", params={"patient": PATIENT, "_count": "1"})
                        assert read.status_code == 200  # care teams still read while the EHR is away
                    backlog = gauge((await api.get("/metrics")).text, "pulsebridge_outbox_pending")

                    await receiver.__aenter__()  # back, on the same address
                    await asyncio.sleep(5)
                sent = publisher.sent
                status = await drained(api, sent, timeout=120 + OUTAGE_SECONDS / 5)
        finally:
            gateway.stop()

    settle = len(rss) // 5  # the first fifth warms caches and pools
    steady = rss[settle:]
    print(  # the figures behind the verdicts, for the log
        f"outage {OUTAGE_SECONDS:.0f} s at {RATE}/s: sent {sent}, backlog {backlog:.0f}, "
        f"oldest age max {max(ages):.0f} s, RSS {min(steady)}..{max(steady)} KiB"
    )
    assert status == {"done": sent}
    assert receiver.creates == len(receiver.observations) == sent
    assert {o["subject"]["reference"] for o in receiver.observations.values()} == {"Patient/ehr-patient-7"}
    assert backlog >= RATE * OUTAGE_SECONDS * 0.8  # the backlog was in the outbox
    assert ages[-1] >= OUTAGE_SECONDS - 15
    assert ages == sorted(ages)  # the age only rose while the EHR was away
    assert max(steady) <= steady[0] * 1.10, f"gateway RSS grew during the outage: {steady}"
