"""A subscriber process for the manual-ack tests (run as ``python -m tests.mqtt_probe``).

It receives on a persistent session and prints one line per message; the test kills it with
SIGKILL and checks what the broker redelivers to the next process with the same client id.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_adapters.mqtt.source import MqttSource
from edge_config import MqttSettings


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--protocol", choices=["5", "3.1.1"], required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--mode", choices=["hold", "ack", "aiomqtt-default"], required=True)
    args = parser.parse_args()
    settings = MqttSettings(port=args.port, client_id=args.client_id, protocol=args.protocol)

    if args.mode == "aiomqtt-default":
        await _aiomqtt_default(args.port, args.client_id, args.protocol, args.topic)
        return

    source = MqttSource(settings, [args.topic])

    async def announce_ready() -> None:
        while not source.connected:
            await asyncio.sleep(0.02)
        print("ready", flush=True)

    ready = asyncio.create_task(announce_ready())
    async for delivery in source:
        print(f"message {delivery.frame.payload.decode()}", flush=True)
        if args.mode == "ack":
            delivery.ack()
    await ready


def _default_client(port: int, client_id: str, protocol: str) -> aiomqtt.Client:
    """The unsafe baseline: aiomqtt's own QoS 1 handling, which PUBACKs on arrival."""
    if protocol == "3.1.1":
        return aiomqtt.Client("127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho ships no annotations here
    properties.SessionExpiryInterval = 3600
    return aiomqtt.Client(
        "127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=properties,
    )  # fmt: skip


async def _aiomqtt_default(port: int, client_id: str, protocol: str, topic: str) -> None:
    async with _default_client(port, client_id, protocol) as client:
        await client.subscribe(topic, qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            print(f"message {bytes(message.payload).decode()}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
