"""Scenario 4 of reliability.md: SIGKILL Mosquitto in the middle of a 50,000-reading stream.

Mosquitto acknowledges a device's publish from memory and makes it durable only at its next
persistence save, so a broker crash may lose what it accepted since then: never silently. The
ledger counts the loss exactly (accepted by the broker, not in the database) and it must not
exceed what the broker accepted since its last save (autosave every second: the last second
and a margin; a snapshot only at shutdown: everything since start). Nothing is stored twice.
Mosquitto 2.0.11 here has no persist-sqlite plugin; the gateway has no device-level
application ack, so the "with app-level ack" half of the scenario is not built.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.conftest import truncate
from tests.faults.ledger import take_ledger
from tests.faults.support import Fleet, gateway_env, healthy, register_fleet, size, stored_keys, wait_pushed, wait_stored
from tests.fhir_receiver import FhirReceiver
from tests.services import GatewayProcess, mosquitto_broker

READINGS = int(size("s4_readings", 50_000, 2_000))
SECONDS = size("s4_seconds", 40, 12)
DEVICES = 50
PER_MESSAGE = 10
SAVE_MARGIN = 1.5
"""Seconds beyond the save interval a save may take on a loaded machine."""
CONFIGS = {"autosave-1s": ("autosave_interval 1\n", 1.0), "snapshot-at-shutdown": ("autosave_interval 1800\n", None)}


@pytest.mark.parametrize("config", sorted(CONFIGS))
async def test_s4_broker_sigkilled_mid_stream(timescale_url: str, tmp_path: Path, config: str) -> None:
    await truncate(timescale_url)
    extra, save_every = CONFIGS[config]
    with mosquitto_broker(tmp_path, extra, persistence=True) as broker:
        broker_started = time.monotonic()
        async with FhirReceiver() as receiver:
            patient_of = await register_fleet(timescale_url, [f"s4-dev-{n}" for n in range(DEVICES)], receiver)
            env = gateway_env(
                timescale_url, broker.port, f"s4-gateway-{config}", receiver, PULSEBRIDGE_MQTT__RECONNECT_MAX_SECONDS="1"
            )
            gateway = GatewayProcess(tmp_path, env)
            gateway.start()
            try:
                await healthy(gateway)
                fleet = Fleet(broker.port, patient_of, per_message=PER_MESSAGE)
                messages = READINGS // DEVICES // PER_MESSAGE
                pace = SECONDS / messages
                publishing = asyncio.create_task(fleet.run(messages, interval=pace, connect_within=pace))
                await wait_stored(timescale_url, READINGS // 2, timeout=600)
                assert not publishing.done(), "the devices finished before the kill"
                killed = time.monotonic()
                broker.kill()
                await asyncio.sleep(1.0)
                broker.start()
                await publishing
                await asyncio.sleep(5.0)  # the gateway reconnects and takes what the broker restored
                await wait_stored(timescale_url, await stored_keys(timescale_url), timeout=10)
                await wait_pushed(timescale_url, timeout=600)
            finally:
                gateway.stop()
            ledger = await take_ledger(f"4: broker SIGKILL ({config})", timescale_url, fleet.sent, receiver)
    since_save = fleet.accepted_since(killed - save_every - SAVE_MARGIN if save_every else broker_started)
    print(f"[ledger 4: broker SIGKILL ({config})] lost {ledger.lost}, accepted since the last possible save {since_save}")
    ledger.check(allowed_loss=since_save)
    assert ledger.generated == READINGS
