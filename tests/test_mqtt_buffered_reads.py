"""Chunked socket reads deliver every message intact and in order, over real Mosquitto.

Guards ``device_adapters/mqtt/buffered_reads.py``, which serves paho's reads from one chunk:
a stream mixing tiny messages, messages that straddle chunk boundaries and one larger than a
whole chunk must arrive byte for byte, in publish order, with deferred acknowledgements, with
reads paused and resumed in between — and nothing may wait in the chunk unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil

import aiomqtt
import pytest
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_adapters.mqtt.buffered_reads import PACKETS_PER_EVENT, READ_SIZE, BufferedReadClient, enable_buffered_reads
from device_adapters.mqtt.flow import ReadPause
from device_adapters.mqtt.manual_ack import acknowledge, enable_manual_ack
from device_adapters.mqtt.publisher import ReadingPublisher

TOPIC = "probe/buffered/readings"
RECEIVE_MAXIMUM = 100


def _payloads() -> list[bytes]:
    sizes = [3, 0, 17, 1_000, 5, READ_SIZE + 12_345, 7, 40_000, 1, 127, 128, 16_383, 16_384, 2_097_152]
    sizes += [(number * 7919) % 300 for number in range(3_000)]
    return [hashlib.sha256(b"%d" % number).digest()[:1] * size + b"|%d" % number for number, size in enumerate(sizes)]


def _client(port: int, identifier: str, *, receive_maximum: int = RECEIVE_MAXIMUM, session: bool = False) -> aiomqtt.Client:
    """A buffered-read client; with ``session`` the broker keeps its subscriptions and messages while it is away."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho ships no annotations here
    properties.ReceiveMaximum = receive_maximum
    if session:
        properties.SessionExpiryInterval = 300
    client = aiomqtt.Client(
        "127.0.0.1", port, identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5, clean_start=not session,
        properties=properties,
    )  # fmt: skip
    enable_manual_ack(client)
    enable_buffered_reads(client)
    return client


async def _receive_and_ack(client: aiomqtt.Client, count: int) -> int:
    """Take ``count`` messages (or what came in 30 s), acknowledging each; returns how many came."""
    received = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            async for message in client.messages:
                received += 1
                acknowledge(client, message.mid, message.qos)
                if received == count:
                    break
    return received


async def test_every_message_arrives_whole_and_in_order(broker_port: int) -> None:
    payloads = _payloads()
    client = _client(broker_port, "buffered-probe")
    reads = ReadPause(client, pause_at=RECEIVE_MAXIMUM, resume_at=RECEIVE_MAXIMUM // 2)  # as the source has it
    received: list[bytes] = []
    most_held = 0
    async with client:
        await client.subscribe(TOPIC, qos=1)
        async with ReadingPublisher("127.0.0.1", broker_port) as publisher:
            # One at a time: publish order is then the broker's delivery order.
            for payload in payloads:
                await publisher.publish_raw(TOPIC, payload)
        async with asyncio.timeout(60):
            async for message in client.messages:
                assert isinstance(message.payload, bytes | bytearray)
                received.append(bytes(message.payload))
                most_held = max(most_held, reads.unacknowledged)
                if len(received) % 50 == 0:
                    await asyncio.sleep(0.005)  # a commit's worth of time: reads pause and resume
                acknowledge(client, message.mid, message.qos)
                reads.acknowledged()
                if len(received) == len(payloads):
                    break
        paho = client._client
        assert isinstance(paho, BufferedReadClient)
        assert paho.buffered() == 0
    assert [len(payload) for payload in received] == [len(payload) for payload in payloads]
    assert received == payloads
    assert reads.pauses > 0
    assert most_held <= RECEIVE_MAXIMUM  # the rest of a chunk waits while reads are paused


async def test_a_stream_of_small_messages_is_read_in_chunks(broker_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many messages per system call: far fewer socket reads than messages."""
    count = 5_000
    calls = 0
    socket_read = PahoClient._sock_recv

    def counting_read(paho: PahoClient, size: int) -> bytes:
        nonlocal calls
        calls += isinstance(paho, BufferedReadClient)  # not the publisher's reads of its PUBACKs
        return socket_read(paho, size)

    monkeypatch.setattr(PahoClient, "_sock_recv", counting_read)
    client = _client(broker_port, "buffered-count")
    async with client:
        await client.subscribe(TOPIC, qos=1)
        async with ReadingPublisher("127.0.0.1", broker_port) as publisher:
            await asyncio.gather(*(publisher.publish_raw(TOPIC, b"%d" % number) for number in range(count)))
        received = await _receive_and_ack(client, count)
    assert received == count
    assert calls < count / 5, f"{calls} socket reads for {count} messages"


async def test_a_paho_client_of_another_kind_is_refused() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)
    enable_buffered_reads(client)
    with pytest.raises(TypeError, match="needs updating"):
        enable_buffered_reads(client)


async def test_a_flood_does_not_hold_the_event_loop(broker_port: int) -> None:
    """One socket read per readable event: other tasks run while a broker floods the client."""
    count = 60_000
    client = _client(broker_port, "buffered-flood")
    gaps: list[float] = []

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    async def flood() -> None:
        # Another process (Mosquitto's own client, one message per line): no GIL shared with the receiver.
        lines = b"".join(b"%d\n" % number for number in range(count))
        publisher = await asyncio.create_subprocess_exec(
            shutil.which("mosquitto_pub") or "mosquitto_pub", "-p", str(broker_port), "-t", TOPIC, "-q", "0", "-l",
            stdin=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await publisher.communicate(lines)
        assert publisher.returncode == 0

    async with client:
        await client.subscribe(TOPIC, qos=0)
        ticker = asyncio.create_task(tick())
        flooding = asyncio.create_task(flood())
        received = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                async for _ in client.messages:
                    received += 1
                    if received == count:
                        break
        await flooding
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    assert received > count // 2  # QoS 0: the broker may drop some under a flood, but most arrive
    assert gaps, "the ticker never ran"
    # Reading the socket on for as long as the broker sends would hold the loop for the whole
    # flood (many seconds); a garbage collection of the received backlog can take about a second.
    assert max(gaps) < 3.0, f"the event loop was held for {max(gaps):.2f} s"


async def test_a_backlog_of_large_packs_is_read_many_per_event(broker_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its chunk an event reads on, up to PACKETS_PER_EVENT: packs of 8 KB are not read two per event-loop turn."""
    count, pack = 500, b"r" * 8_000
    events = 0
    read_event = BufferedReadClient.loop_read

    def counting_event(paho: BufferedReadClient, max_packets: int = 1) -> MQTTErrorCode:
        nonlocal events
        events += 1
        return read_event(paho, max_packets)

    async with _client(broker_port, "buffered-packs", receive_maximum=1_000, session=True) as client:
        await client.subscribe(TOPIC, qos=1)
    async with ReadingPublisher("127.0.0.1", broker_port) as publisher:  # queued for the session while it is away
        await asyncio.gather(*(publisher.publish_raw(TOPIC, pack + b"%d" % number) for number in range(count)))
    monkeypatch.setattr(BufferedReadClient, "loop_read", counting_event)
    async with _client(broker_port, "buffered-packs", receive_maximum=1_000, session=True) as client:
        received = await _receive_and_ack(client, count)
    assert received == count
    assert events < count / 8, f"{events} read events for {count} packs of {len(pack)} bytes (up to {PACKETS_PER_EVENT} each)"
