"""Building blocks of the fault suite: sizes, the device fleet with its sent-ledger, the EHR, metrics.

Sizes come from ``PULSEBRIDGE_FAULT_<NAME>`` variables; without one, ``make faults``
(``PULSEBRIDGE_FAULTS=full``) uses the issue's size and ``make test`` a small one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiomqtt
import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from device_adapters.mqtt.native import encode_readings, topic_for
from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings
from fhir_mapper.identity import reading_key
from gateway.storage import open_store
from tests.faults.ledger import SentLedger
from tests.fhir_receiver import FhirReceiver
from tests.services import GatewayProcess

FULL = os.environ.get("PULSEBRIDGE_FAULTS", "quick") == "full"
MRN = "urn:oid:2.16.840.1.113883.19.5"


def size(name: str, full: float, quick: float) -> float:
    """A scenario size: ``PULSEBRIDGE_FAULT_<NAME>`` if set, else the full or the quick default."""
    return float(os.environ.get(f"PULSEBRIDGE_FAULT_{name.upper()}", full if FULL else quick))


def destination(receiver: FhirReceiver, **overrides: Any) -> str:
    """The EHR destination as ``PULSEBRIDGE_DESTINATIONS`` takes it: patients found by their MRN."""
    settings = {
        "name": "ehr",
        "base_url": receiver.base_url,
        "patient": {"match": "identifier_search", "identifier_system": MRN},
        "retry_base_seconds": 0.5,
        "retry_cap_seconds": 5,
        "breaker_cool_down_seconds": 2,
        "poll_seconds": 0.2,
        # A killed gateway's claimed rows wait out their lease (2 x timeout + 15 s): keep it short.
        "timeout_seconds": 2,
    } | overrides
    return orjson.dumps([settings]).decode()


async def register_fleet(url: str, devices: Sequence[str], receiver: FhirReceiver | None, patients: int = 10) -> dict[str, str]:
    """Patients (known to the EHR by MRN) and devices assigned to them; returns device → patient."""
    store = await open_store(DatabaseSettings(url=url))
    patient_of = {device: f"fault-patient-{n % patients}" for n, device in enumerate(devices)}
    try:
        await store.migrate()
        for patient in sorted(set(patient_of.values())):
            await store.add_patient(patient, None, None)
            await store.add_patient_identifier(patient, MRN, f"MRN-{patient}")
            if receiver is not None:
                receiver.patients[(MRN, f"MRN-{patient}")] = [f"ehr-{patient}"]
        for device, patient in patient_of.items():
            await store.add_device(device, None, None)
            await store.assign_device(device, patient, None)
    finally:
        await store.close()
    return patient_of


@dataclass
class Fleet:
    """Devices, each on its own MQTT connection, publishing heart rates at QoS 1.

    A device counts a reading accepted when the broker's PUBACK for it arrived; when a send fails
    it reconnects and sends again (the reading key makes that harmless) until ``give_up_seconds``
    pass, and then counts the reading rejected: the device saw the error.
    """

    port: int
    patient_of: dict[str, str]
    per_message: int = 1
    start: datetime = datetime(2026, 6, 1, tzinfo=UTC)
    give_up_seconds: float = 120.0
    sent: SentLedger = field(default_factory=SentLedger)
    next_index: dict[str, int] = field(default_factory=dict)
    publishes: int = 0
    accepted_at: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, readings) of every PUBACK: what a broker crash can have taken since its last save."""

    def accepted_since(self, moment: float) -> int:
        return sum(count for at, count in self.accepted_at if at >= moment)

    def pack(self, device: str) -> tuple[list[Reading], list[str]]:
        first = self.next_index.get(device, 0)
        self.next_index[device] = first + self.per_message
        readings = [
            Reading(device, "heart_rate", self.start + timedelta(seconds=i), quantity=Quantity(Decimal(55 + i % 50), "/min"))
            for i in range(first, first + self.per_message)
        ]
        keys = [str(reading_key(device, self.patient_of[device], "heart_rate", r.time)) for r in readings]
        self.sent.generated.update(keys)
        return readings, keys

    async def device(self, device: str, messages: int, *, interval: float = 0.0, stop: asyncio.Event | None = None) -> None:
        """Publish ``messages`` packs (or until ``stop``), one every ``interval`` seconds at most."""
        client: aiomqtt.Client | None = None
        began = time.monotonic()
        sent = 0
        try:
            while sent < messages and not (stop is not None and stop.is_set()):
                readings, keys = self.pack(device)
                client = await self._send(device, client, encode_readings(readings), keys)
                sent += 1
                if interval:
                    await asyncio.sleep(max(0.0, began + sent * interval - time.monotonic()))
        finally:
            await _close(client)

    async def _send(self, device: str, client: aiomqtt.Client | None, payload: bytes, keys: list[str]) -> aiomqtt.Client | None:
        deadline = time.monotonic() + self.give_up_seconds
        while True:
            try:
                if client is None:
                    client = aiomqtt.Client("127.0.0.1", self.port, identifier=f"dev-{device}", timeout=5)
                    await client.__aenter__()
                async with asyncio.timeout(10):
                    await client.publish(topic_for(device), payload, qos=1)
            except (aiomqtt.MqttError, TimeoutError):
                await _close(client)
                client = None
                if time.monotonic() > deadline:
                    self.sent.rejected.update(keys)
                    return None
                await asyncio.sleep(0.5)
            else:
                self.sent.accepted.update(keys)
                self.accepted_at.append((time.monotonic(), len(keys)))
                self.publishes += 1
                return client

    async def run(self, messages: int, *, interval: float = 0.0, connect_within: float = 0.0) -> None:
        """Every device publishes ``messages`` packs; devices connect spread over ``connect_within`` seconds."""
        devices = sorted(self.patient_of)

        async def one(number: int, device: str) -> None:
            await asyncio.sleep(connect_within * number / len(devices))
            await self.device(device, messages, interval=interval)

        await asyncio.gather(*(one(n, d) for n, d in enumerate(devices)))


async def _close(client: aiomqtt.Client | None) -> None:
    if client is not None:
        with contextlib.suppress(aiomqtt.MqttError, RuntimeError, OSError):
            await client.__aexit__(None, None, None)


async def stored_keys(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count: int = await connection.fetchval("SELECT count(DISTINCT reading_key) FROM observations")
        return count
    finally:
        await connection.close()


async def wait_stored(url: str, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (count := await stored_keys(url)) < at_least:
        assert time.monotonic() < deadline, f"only {count} of {at_least} readings stored within {timeout} s"
        await asyncio.sleep(0.05)
    return count


async def wait_pushed(url: str, timeout: float) -> None:
    """Until no outbox row is pending (every stored reading pushed or dead-lettered)."""
    deadline = time.monotonic() + timeout
    while True:
        connection = await asyncpg.connect(url)
        try:
            pending = await connection.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
        finally:
            await connection.close()
        if pending == 0:
            return
        assert time.monotonic() < deadline, f"{pending} outbox rows still pending after {timeout} s"
        await asyncio.sleep(0.5)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample from a Prometheus exposition (0 when the series has not been born yet)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def gateway_env(url: str, broker: int, client_id: str, receiver: FhirReceiver | None, **extra: str) -> dict[str, str]:
    env = {"PULSEBRIDGE_DATABASE__URL": url, "PULSEBRIDGE_MQTT__PORT": str(broker), "PULSEBRIDGE_MQTT__CLIENT_ID": client_id}
    if receiver is not None:
        env["PULSEBRIDGE_DESTINATIONS"] = destination(receiver)
    return env | extra


async def scrape(gateway: GatewayProcess) -> str:
    """The gateway's /metrics, read as an administrator."""
    headers = {"Authorization": f"Bearer {gateway.token()}"}
    async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=10) as api:
        response = await api.get("/metrics")
        response.raise_for_status()
        return response.text


async def healthy(gateway: GatewayProcess) -> None:
    await asyncio.to_thread(gateway.wait_healthy, 60.0)
