"""Scenario 6 of reliability.md: SIGKILL the gateway between COMMIT and PUBACK, 100 times.

The gateway reaches the broker through the tests' proxy. Each round, the proxy swallows what the
gateway sends while a device publishes a reading: the gateway commits it and its PUBACK never
reaches the broker. Then the gateway is killed and restarted: the broker redelivers the reading,
the database is unchanged by it, and the restarted gateway counts it as a suppressed duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
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

KILLS = int(size("s6_kills", 100, 3))


@pytest.mark.quick
async def test_s6_kill_between_commit_and_puback(timescale_url: str, tmp_path: Path) -> None:
    await truncate(timescale_url)
    async with FhirReceiver() as receiver, contextlib.AsyncExitStack() as stack:
        patient_of = await register_fleet(timescale_url, ["s6-watch"], receiver, patients=1)
        port = stack.enter_context(mosquitto(tmp_path))
        link = await stack.enter_async_context(TcpProxy(port))
        gateway = GatewayProcess(tmp_path, gateway_env(timescale_url, link.port, "s6-gateway", receiver))
        fleet = Fleet(port, patient_of)
        suppressed: list[float] = []
        gateway.start()
        try:
            await healthy(gateway)
            for _ in range(KILLS):
                link.hold_upstream = True
                await fleet.device("s6-watch", 1)
                committed = await wait_stored(timescale_url, len(fleet.sent.accepted), timeout=60)
                gateway.kill()  # committed, and its PUBACK went nowhere
                link.hold_upstream = False
                gateway.start()
                await healthy(gateway)
                # The broker redelivers the one unacknowledged message on reconnect: wait for its duplicate.
                async with asyncio.timeout(60):
                    while (count := metric(await scrape(gateway), "pulsebridge_duplicates_suppressed_total")) < 1:
                        await asyncio.sleep(0.05)
                suppressed.append(count)
                assert await stored_keys(timescale_url) == committed
            await wait_pushed(timescale_url, timeout=120)
            await asyncio.sleep(1.0)
            suppressed[-1] = metric(await scrape(gateway), "pulsebridge_duplicates_suppressed_total")
        finally:
            gateway.stop()
        ledger = await take_ledger("6: kill between commit and ack", timescale_url, fleet.sent, receiver)
    print(f"[ledger 6: kill between commit and ack] kills {KILLS}, duplicates suppressed {sum(suppressed):.0f}")
    ledger.check()
    assert ledger.generated == KILLS
    assert suppressed == [1.0] * KILLS  # each restart suppressed exactly its one redelivery: +KILLS in all
