"""Scenario 1 of reliability.md: SIGKILL the gateway three times while readings are in flight.

200 devices publish 100,000 readings at QoS 1 (packs of 10) through a private Mosquitto; the
gateway (ack-after-commit, persistent session) is killed three times mid-stream and restarted.
The database holds exactly the keys the broker accepted, each once, the EHR holds each once, the
restarted gateway suppresses what it had stored but not acknowledged, and it consumes again
within 10 s of each restart. The gateway reaches the broker through a proxy adding 100 ms each
way, as a network between them would: a kill then always finds acknowledgements on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from tests.conftest import truncate
from tests.faults.ledger import take_ledger
from tests.faults.proxy import TcpProxy
from tests.faults.support import (
    Fleet,
    gateway_env,
    healthy,
    metric,
    register_fleet,
    scrape,
    size,
    stored_keys,
    wait_pushed,
    wait_stored,
)
from tests.fhir_receiver import FhirReceiver
from tests.services import GatewayProcess, mosquitto

READINGS = int(size("s1_readings", 100_000, 3_000))
DEVICES = int(size("s1_devices", 200, 20))
PER_MESSAGE = 10
SECONDS = size("s1_seconds", 60, 45)
"""How long the devices take to publish everything: the kills land while they still publish.

Three kills with a restart each (about 8 s on a slow 2-core machine: interpreter start, then the
broker's session) must fit in it, so the quick size is no shorter than 45 s.
"""
KILLS = 3
RESUME_SECONDS = 10


@pytest.mark.quick
async def test_s1_gateway_sigkilled_three_times_in_flight(timescale_url: str, tmp_path: Path) -> None:
    await truncate(timescale_url)
    async with FhirReceiver() as receiver, contextlib.AsyncExitStack() as stack:
        patient_of = await register_fleet(timescale_url, [f"s1-dev-{n}" for n in range(DEVICES)], receiver)
        with mosquitto(tmp_path) as port:
            link = await stack.enter_async_context(TcpProxy(port))
            link.latency = 0.1
            gateway = GatewayProcess(tmp_path, gateway_env(timescale_url, link.port, "s1-gateway", receiver))
            gateway.start()
            suppressed = 0.0
            resumed: list[float] = []
            try:
                await healthy(gateway)
                fleet = Fleet(port, patient_of, per_message=PER_MESSAGE)
                messages = READINGS // DEVICES // PER_MESSAGE
                publishing = asyncio.create_task(
                    fleet.run(messages, interval=SECONDS / messages, connect_within=SECONDS / messages)
                )
                for kill in range(1, KILLS + 1):
                    await wait_stored(timescale_url, READINGS * kill // (KILLS + 2), timeout=600)
                    assert not publishing.done(), "the devices finished before the kill"
                    suppressed += metric(await scrape(gateway), "pulsebridge_duplicates_suppressed_total")
                    gateway.kill()
                    await asyncio.sleep(1.0)  # devices keep publishing into the broker meanwhile
                    before = await stored_keys(timescale_url)
                    restarted = time.monotonic()
                    gateway.start()
                    while await stored_keys(timescale_url) == before:
                        assert time.monotonic() - restarted < 60, gateway.log()
                        await asyncio.sleep(0.1)
                    resumed.append(time.monotonic() - restarted)
                await publishing
                await wait_stored(timescale_url, len(fleet.sent.accepted), timeout=600)
                await healthy(gateway)
                await wait_pushed(timescale_url, timeout=600)
                await asyncio.sleep(1.0)  # a late redelivery would show up as an extra row or create
                suppressed += metric(await scrape(gateway), "pulsebridge_duplicates_suppressed_total")
            finally:
                gateway.stop()
        ledger = await take_ledger("1: gateway SIGKILL x3", timescale_url, fleet.sent, receiver)
    print(f"[ledger 1: gateway SIGKILL x3] duplicates_suppressed_total {suppressed:.0f}; consuming again after "
          f"{', '.join(f'{s:.1f}' for s in resumed)} s")  # fmt: skip
    ledger.check()
    assert ledger.generated == READINGS
    assert suppressed > 0
    assert max(resumed) <= RESUME_SECONDS
