"""Scenario 3 of reliability.md: the gateway is offline while 200 devices keep publishing 1/s.

The gateway's persistent session makes the broker queue for it. With Mosquitto's default cap
(1,000 queued messages per client) the broker drops the rest, and says so: the ledger's loss
equals ``$SYS/broker/publish/messages/dropped`` exactly. With the queue sized (no cap), nothing
is dropped, the ledger balances and the backlog drains at 1,000 readings/s or more.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.conftest import truncate
from tests.faults.ledger import take_ledger
from tests.faults.support import Fleet, gateway_env, healthy, register_fleet, size, stored_keys, wait_pushed
from tests.fhir_receiver import FhirReceiver
from tests.services import BrokerCounter, GatewayProcess, mosquitto

DEVICES = int(size("s3_devices", 200, 20))
OFFLINE_SECONDS = size("s3_offline_seconds", 180, 10)
CAPPED_OFFLINE_SECONDS = size("s3_capped_offline_seconds", 20, 10)
DRAIN_RATE = 1_000
QUEUES = {"broker-default-1000": "max_queued_messages 1000\n", "sized": ""}


@pytest.mark.parametrize("queue", sorted(QUEUES))
async def test_s3_gateway_offline_while_devices_publish(timescale_url: str, tmp_path: Path, queue: str) -> None:
    await truncate(timescale_url)
    capped = queue != "sized"
    offline = CAPPED_OFFLINE_SECONDS if capped else OFFLINE_SECONDS
    with mosquitto(tmp_path, "sys_interval 1\n" + QUEUES[queue]) as port:
        async with BrokerCounter(port) as dropped_counter, FhirReceiver() as receiver:
            patient_of = await register_fleet(timescale_url, [f"s3-dev-{n}" for n in range(DEVICES)], receiver)
            gateway = GatewayProcess(tmp_path, gateway_env(timescale_url, port, f"s3-gateway-{queue}", receiver))
            gateway.start()
            try:
                await healthy(gateway)  # subscribed once: from now on the broker keeps its session
                gateway.stop()
                fleet = Fleet(port, patient_of)
                await fleet.run(int(offline), interval=1.0, connect_within=1.0)
                queued = len(fleet.sent.accepted)
                dropped = await dropped_counter.value()
                gateway.start()
                await healthy(gateway)
                async with asyncio.timeout(600):
                    while (first := await stored_keys(timescale_url)) == 0:
                        await asyncio.sleep(0.02)
                    began = time.monotonic()
                    while (count := await stored_keys(timescale_url)) < queued - dropped:
                        await asyncio.sleep(0.05)
                drain_rate = (count - first) / max(time.monotonic() - began, 1e-3)
                await asyncio.sleep(1.0)
                await wait_pushed(timescale_url, timeout=600)
            finally:
                gateway.stop()
            ledger = await take_ledger(f"3: gateway offline ({queue})", timescale_url, fleet.sent, receiver)
    print(f"[ledger 3: gateway offline ({queue})] {queued} queued over {offline:.0f} s, broker dropped {dropped}, "
          f"drained at {drain_rate:.0f} readings/s")  # fmt: skip
    ledger.check(allowed_loss=dropped)
    assert ledger.lost == dropped  # whatever is missing, the broker said it dropped: never silent
    if capped:
        assert dropped > 0
    else:
        assert dropped == 0
        assert drain_rate >= DRAIN_RATE
