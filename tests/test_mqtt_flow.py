"""A consumer that acknowledges late holds a bounded number of messages, over real Mosquitto.

This guards ``device_adapters/mqtt/flow.py``, which reaches into aiomqtt to pause its socket
reads: if a future aiomqtt or paho breaks the pause, the bound is exceeded and this fails. The
receive maximum alone does not bound it on this broker once acknowledgements flow (the module
docstring has the measurement); the test does not depend on that, only on the bound.
"""

from __future__ import annotations

import asyncio

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_adapters.mqtt.flow import ReadPause
from device_adapters.mqtt.manual_ack import acknowledge, enable_manual_ack
from device_adapters.mqtt.publisher import ReadingPublisher

TOPIC = "probe/flow/readings"
COUNT = 3_000
RECEIVE_MAXIMUM = 50


async def _publish(port: int) -> None:
    async with ReadingPublisher("127.0.0.1", port) as publisher:
        for first in range(0, COUNT, 500):
            await asyncio.gather(*(publisher.publish_raw(TOPIC, b"%d" % number) for number in range(first, first + 500)))


async def test_late_acknowledgements_pause_reads_at_the_bound(broker_port: int) -> None:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho ships no annotations here
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    properties.SessionExpiryInterval = 600
    client = aiomqtt.Client(
        "127.0.0.1", broker_port, identifier="flow-probe", protocol=aiomqtt.ProtocolVersion.V5, clean_start=True,
        properties=properties,
    )  # fmt: skip
    enable_manual_ack(client)
    reads = ReadPause(client, pause_at=2 * RECEIVE_MAXIMUM, resume_at=RECEIVE_MAXIMUM)
    held: list[aiomqtt.Message] = []
    received = most_held = 0

    async def acknowledge_slowly() -> None:
        while True:
            await asyncio.sleep(0.02)  # a commit's worth of time, then a batch of acknowledgements
            batch, held[:] = held[:20], held[20:]
            for message in batch:
                acknowledge(client, message.mid, message.qos)
                reads.acknowledged()

    async with client:
        await client.subscribe(TOPIC, qos=1)
        acking = asyncio.create_task(acknowledge_slowly())
        publishing = asyncio.create_task(_publish(broker_port))
        try:
            async with asyncio.timeout(60):
                async for message in client.messages:
                    received += 1
                    held.append(message)
                    most_held = max(most_held, reads.unacknowledged)
                    if received == COUNT:
                        break
            await publishing
        finally:
            acking.cancel()
            await asyncio.gather(acking, return_exceptions=True)
    assert received == COUNT
    assert most_held <= 2 * RECEIVE_MAXIMUM
