"""One bench publisher process: simulated devices publishing native v1 readings at QoS 1.

Run by ``bench/ingest.py``, several at once, so the publishing side is not the bottleneck. It
speaks MQTT 3.1.1 itself over one socket, writing packets in bursts and counting PUBACKs in
bulk: about 5 µs of CPU per message, where paho's publish costs about 45 µs and aiomqtt's more —
and these processes share the machine's two cores with the broker, database and gateway.
Every reading's device time is the wall-clock instant it was published (microseconds, strictly
increasing per device), so each row in the database carries its own publish time. Prints one
JSON line: what the broker acknowledged, and the CPU spent.
"""

from __future__ import annotations

import argparse
import select
import socket
import struct
import time
from datetime import UTC, datetime, timedelta

import orjson

# (kind, unit, values): a watch's traffic, values cycled so payloads differ.
KINDS = (
    ("heart_rate", "/min", tuple(range(55, 110, 3))),
    ("spo2", "%", tuple(range(93, 100))),
    ("respiratory_rate", "/min", tuple(range(12, 20))),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BURST = 64  # messages per socket write


def device_ids(prefix: str, process: int, devices: int) -> list[str]:
    """The devices one publisher process speaks for (the bench registers the same list)."""
    return [f"{prefix}-{process}-{device}" for device in range(devices)]


class Clock:
    """Publish instants in microseconds, strictly increasing so that every reading key differs."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, count: int) -> int:
        now = max(time.time_ns() // 1000, self._last + 1)
        self._last = now + count - 1
        return now


def payload(micros: int, sequence: int, per_message: int) -> bytes:
    items = []
    for offset in range(per_message):
        kind, unit, values = KINDS[(sequence + offset) % len(KINDS)]
        at = (_EPOCH + timedelta(microseconds=micros + offset)).isoformat()
        items.append(f'{{"type":"{kind}","value":{values[(sequence * 7 + offset) % len(values)]},"unit":"{unit}","time":"{at}"}}')
    return (items[0] if per_message == 1 else f"[{','.join(items)}]").encode()


def _packet(kind: int, body: bytes) -> bytes:
    length, remaining = bytearray(), len(body)
    while True:
        remaining, digit = divmod(remaining, 128)
        length.append(digit | (0x80 if remaining else 0))
        if not remaining:
            return bytes([kind, *length]) + body


def mqtt_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


class Publisher:
    """MQTT 3.1.1 QoS 1 publishing over one socket: packets written in bursts, PUBACKs counted in bulk."""

    def __init__(self, port: int, client_id: str) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # protocol name, level 4, clean session, keep-alive 0 (the run is bounded: no pings needed)
        self._socket.sendall(_packet(0x10, mqtt_string("MQTT") + bytes([4, 0x02, 0, 0]) + mqtt_string(client_id)))
        if self._socket.recv(4) != b"\x20\x02\x00\x00":
            raise SystemExit("the broker refused the connection")
        self._buffer = b""
        self._mid = 0
        self.acked = 0

    def publish(self, packets: list[tuple[bytes, bytes]]) -> None:
        out = []
        for topic, body in packets:
            self._mid = self._mid % 0xFFFF + 1
            out.append(_packet(0x32, topic + struct.pack("!H", self._mid) + body))
        self._socket.sendall(b"".join(out))

    def read_acks(self, timeout: float) -> None:
        if not select.select([self._socket], [], [], timeout)[0]:
            return
        data = self._buffer + self._socket.recv(1 << 16)
        if not data:
            raise SystemExit("the broker closed the connection")
        whole = len(data) - len(data) % 4
        # Only PUBACKs (0x40 0x02 mid) come back to a QoS 1 publisher that never pings.
        if any(data[index] != 0x40 for index in range(0, whole, 4)):
            raise SystemExit(f"unexpected packet from the broker: {data[:8]!r}")
        self.acked += whole // 4
        self._buffer = data[whole:]

    def close(self) -> None:
        self._socket.sendall(b"\xe0\x00")
        self._socket.close()


def run(args: argparse.Namespace) -> dict[str, object]:
    publisher = Publisher(args.port, f"bench-pub-{args.prefix}-{args.process}")
    devices = device_ids(args.prefix, args.process, args.devices)
    topics = [mqtt_string(f"pulsebridge/v1/devices/{device}/readings") for device in devices]
    clocks = [Clock() for _ in devices]
    interval = args.per_message / args.rate if args.rate > 0 else 0.0
    started = time.monotonic()
    cpu_started = time.process_time()
    sent = 0
    while sent < args.messages:
        allowed = min(args.messages, publisher.acked + args.window, BURST + sent)
        if interval:
            allowed = min(allowed, int((time.monotonic() - started) / interval) + 1)
        if allowed <= sent:
            publisher.read_acks(0.002)
            continue
        packets = []
        for sequence in range(sent, allowed):
            device = sequence % len(devices)
            packets.append((topics[device], payload(clocks[device].next(args.per_message), sequence, args.per_message)))
        publisher.publish(packets)
        sent = allowed
        publisher.read_acks(0)
    deadline = time.monotonic() + 120
    while publisher.acked < sent and time.monotonic() < deadline:
        publisher.read_acks(0.05)
    elapsed = time.monotonic() - started
    publisher.close()
    return {"process": args.process, "messages": sent, "acked": publisher.acked,
            "readings_acked": publisher.acked * args.per_message, "seconds": round(elapsed, 3),
            "cpu_seconds": round(time.process_time() - cpu_started, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--process", type=int, default=0)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="readings per second from this process (0: as fast as acked)")
    parser.add_argument("--window", type=int, default=1000, help="QoS 1 messages in flight (published, not yet acked)")
    parser.add_argument("--start-at", type=float, default=0.0, help="time.time() to start at, so processes start together")
    args = parser.parse_args()
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    print(orjson.dumps(run(args)).decode(), flush=True)


if __name__ == "__main__":
    main()
