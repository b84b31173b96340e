"""The receive baseline: a bare aiomqtt loop that only counts what the broker sends.

Subscribes as the gateway does (MQTT 5, QoS 1, the same receive maximum) and does nothing else
with a message — no decoding, no database, aiomqtt's own immediate PUBACK — so its rate is the
ceiling the gateway's MQTT path can reach on this broker and machine. Prints ``ready`` once
subscribed, then one JSON line when ``--readings`` have arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


async def receive(args: argparse.Namespace) -> dict[str, object]:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho ships no annotations here
    properties.ReceiveMaximum = args.receive_maximum
    client = aiomqtt.Client(
        "127.0.0.1", args.port, identifier="bench-bare-receiver", protocol=aiomqtt.ProtocolVersion.V5, properties=properties
    )
    tenth, nine_tenths = args.readings // 10, args.readings * 9 // 10
    readings = messages = 0
    at_10 = at_90 = 0.0
    async with client:
        await client.subscribe("pulsebridge/v1/devices/+/readings", qos=1)
        print("ready", flush=True)
        cpu_started = time.process_time()
        first = 0.0
        async for _ in client.messages:
            if not first:
                first = time.time()
            messages += 1
            readings += args.per_message
            if not at_10 and readings >= tenth:
                at_10 = time.time()
            if not at_90 and readings >= nine_tenths:
                at_90 = time.time()
            if readings >= args.readings:
                break
        last = time.time()
    return {"readings": readings, "messages": messages, "first": first, "last": last, "at_10": at_10, "at_90": at_90,
            "cpu_seconds": round(time.process_time() - cpu_started, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--readings", type=int, required=True)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--receive-maximum", type=int, default=1000)
    args = parser.parse_args()
    print(orjson.dumps(asyncio.run(receive(args))).decode(), flush=True)


if __name__ == "__main__":
    main()
