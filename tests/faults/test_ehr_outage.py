"""Scenario 9 of reliability.md: the EHR is down while readings keep arriving.

A real gateway process ingests a steady MQTT stream; the FHIR receiver standing in for the EHR is
stopped for ``PULSEBRIDGE_FAULT_S9_OUTAGE_SECONDS`` (``make faults``: 600, the issue's ten
minutes, in ``make test`` as well). The backlog must live in the outbox only (gateway memory flat), the
outbox-age metric must rise, the API must keep serving, and after the EHR is back everything
drains: every reading once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import truncate
from tests.faults.ledger import take_ledger
from tests.faults.support import Fleet, gateway_env, healthy, metric, register_fleet, size, wait_pushed
from tests.fhir_receiver import FhirReceiver
from tests.services import GatewayProcess, mosquitto, rss_kib

# Ten minutes in `make test` too: it is the EHR push issue's own done-when.
OUTAGE_SECONDS = size("s9_outage_seconds", 600, 600)
RATE = 20  # readings per second, one per message
DEVICE = "s9-watch"


@pytest.mark.quick
async def test_s9_an_ehr_outage_under_steady_ingest_is_held_in_the_outbox_and_drains_exactly_once(
    timescale_url: str, tmp_path: Path
) -> None:
    await truncate(timescale_url)
    with mosquitto(tmp_path) as broker:
        async with FhirReceiver() as receiver:
            patient_of = await register_fleet(timescale_url, [DEVICE], receiver, patients=1)
            gateway = GatewayProcess(tmp_path, gateway_env(timescale_url, broker, "s9-gateway", receiver))
            gateway.start()
            stop = asyncio.Event()
            fleet = Fleet(broker, patient_of)
            try:
                await healthy(gateway)
                assert gateway.pid is not None
                headers = {"Authorization": f"Bearer {gateway.token()}"}
                async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers, timeout=10) as api:
                    publishing = asyncio.create_task(fleet.device(DEVICE, 10**9, interval=1 / RATE, stop=stop))
                    await asyncio.sleep(10)
                    assert receiver.creates > 0, gateway.log()  # pushing before the outage

                    await receiver.__aexit__(None, None, None)  # the EHR goes down
                    outage_started = time.monotonic()
                    rss: list[int] = []
                    ages: list[float] = []
                    while (elapsed := time.monotonic() - outage_started) < OUTAGE_SECONDS:
                        await asyncio.sleep(min(5.0, OUTAGE_SECONDS - elapsed))
                        rss.append(rss_kib(gateway.pid))
                        ages.append(
                            metric(
                                (await api.get("/metrics")).text,
                                "pulsebridge_outbox_oldest_pending_age_seconds",
                                destination="ehr",
                            )
                        )
                        read = await api.get("/fhir/Observation", params={"patient": patient_of[DEVICE], "_count": "1"})
                        assert read.status_code == 200  # care teams still read while the EHR is away
                    backlog = metric((await api.get("/metrics")).text, "pulsebridge_outbox_pending", destination="ehr")

                    await receiver.__aenter__()  # back, on the same address
                    await asyncio.sleep(5)
                    stop.set()
                    await publishing
                    await wait_pushed(timescale_url, timeout=120 + OUTAGE_SECONDS / 5)
                    await asyncio.sleep(1.0)
            finally:
                stop.set()
                gateway.stop()
            ledger = await take_ledger("9: EHR down", timescale_url, fleet.sent, receiver)

    settle = len(rss) // 5  # the first fifth warms caches and pools
    steady = rss[settle:]
    print(  # the figures behind the verdicts, for the log
        f"[ledger 9: EHR down] outage {OUTAGE_SECONDS:.0f} s at {RATE}/s: backlog {backlog:.0f}, "
        f"oldest age max {max(ages):.0f} s, RSS {min(steady)}..{max(steady)} KiB"
    )
    ledger.check()
    assert {o["subject"]["reference"] for o in receiver.observations.values()} == {f"Patient/ehr-{patient_of[DEVICE]}"}
    assert backlog >= RATE * OUTAGE_SECONDS * 0.8  # the backlog was in the outbox
    assert ages[-1] >= OUTAGE_SECONDS - 15
    assert ages == sorted(ages)  # the age only rose while the EHR was away
    assert max(steady) <= steady[0] * 1.10, f"gateway RSS grew during the outage: {steady}"
