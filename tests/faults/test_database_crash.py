"""Scenario 5 of reliability.md: ``pg_ctl stop -m immediate`` twice during a 100,000-reading ingest.

A private cluster (ours to crash) stops without a checkpoint while devices publish; the gateway
must ride it out without exiting, hold back its acknowledgements, reconnect its pool within 30 s of
the database being up again, and store every reading once, each with its outbox row (no batch
half-written), all pushed to the EHR.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.ledger import take_ledger
from tests.faults.support import Fleet, gateway_env, healthy, register_fleet, size, stored_keys, wait_pushed, wait_stored
from tests.fhir_receiver import FhirReceiver
from tests.services import GatewayProcess, mosquitto, private_postgres_cluster

READINGS = int(size("s5_readings", 100_000, 3_000))
SECONDS = size("s5_seconds", 90, 20)
DEVICES = 50
PER_MESSAGE = 10
CRASHES = 2
DOWN_SECONDS = 3.0
RECOVER_SECONDS = 30


@pytest.mark.quick
async def test_s5_database_crashes_twice_during_ingest(tmp_path: Path) -> None:
    with private_postgres_cluster() as database, mosquitto(tmp_path) as port:
        async with FhirReceiver() as receiver:
            patient_of = await register_fleet(database.url, [f"s5-dev-{n}" for n in range(DEVICES)], receiver)
            gateway = GatewayProcess(tmp_path, gateway_env(database.url, port, "s5-gateway", receiver))
            gateway.start()
            recovered: list[float] = []
            try:
                await healthy(gateway)
                fleet = Fleet(port, patient_of, per_message=PER_MESSAGE)
                messages = READINGS // DEVICES // PER_MESSAGE
                pace = SECONDS / messages
                publishing = asyncio.create_task(fleet.run(messages, interval=pace, connect_within=pace))
                for crash in range(1, CRASHES + 1):
                    await wait_stored(database.url, READINGS * crash // (CRASHES + 2), timeout=600)
                    assert not publishing.done(), "the devices finished before the crash"
                    await asyncio.to_thread(database.crash)
                    await asyncio.sleep(DOWN_SECONDS)
                    assert gateway.running, gateway.log()
                    await asyncio.to_thread(database.start)
                    up = time.monotonic()
                    before = await stored_keys(database.url)
                    while await stored_keys(database.url) == before:
                        assert time.monotonic() - up < 120, gateway.log()
                        await asyncio.sleep(0.1)
                    recovered.append(time.monotonic() - up)
                await publishing
                await wait_stored(database.url, len(fleet.sent.accepted), timeout=600)
                await wait_pushed(database.url, timeout=600)
                await asyncio.sleep(1.0)
                assert gateway.running, gateway.log()
            finally:
                gateway.stop()
            ledger = await take_ledger("5: database crash x2", database.url, fleet.sent, receiver)
    print(f"[ledger 5: database crash x2] storing again {', '.join(f'{s:.1f}' for s in recovered)} s after the database was up")
    ledger.check()
    assert ledger.generated == READINGS
    assert max(recovered) <= RECOVER_SECONDS
