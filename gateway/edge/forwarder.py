"""Forwarding the outbox upstream: packs of one device's readings, QoS 1, deleted only once acknowledged.

Oldest first; a few packs in flight at once. A pack the broker did not acknowledge (link down, no
PUBACK in time, the hub killed) stays in the outbox and is sent again: the gateway stores a reading
once whatever the number of copies (the reading key), so at-least-once here is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from device_adapters.mqtt.hub_topics import HubTopics
from device_adapters.mqtt.link import LinkDownError, MqttLink
from gateway.edge.outbox import EdgeOutbox, Pending

logger = logging.getLogger(__name__)
MAX_PACK_BYTES = 48 * 1024  # under the gateway's default 64 KiB payload limit
IDLE_POLL_SECONDS = 1.0
RETRY_PAUSE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Pack:
    device_id: str
    seqs: tuple[int, ...]
    payload: bytes


def packs_of(pending: Sequence[Pending], most: int, max_bytes: int = MAX_PACK_BYTES) -> list[Pack]:
    """Group readings by device, oldest first, into JSON arrays of at most ``most`` readings and ``max_bytes``."""
    by_device: dict[str, list[Pending]] = {}
    for item in pending:
        by_device.setdefault(item.device_id, []).append(item)
    packs: list[Pack] = []
    for device_id, items in by_device.items():
        chunk: list[Pending] = []
        size = 2
        for item in items:
            if chunk and (len(chunk) >= most or size + len(item.body) + 1 > max_bytes):
                packs.append(_pack(device_id, chunk))
                chunk, size = [], 2
            chunk.append(item)
            size += len(item.body) + 1
        if chunk:
            packs.append(_pack(device_id, chunk))
    return packs


def _pack(device_id: str, items: Sequence[Pending]) -> Pack:
    return Pack(device_id, tuple(item.seq for item in items), b"[" + b",".join(item.body for item in items) + b"]")


class Forwarder:
    def __init__(self, outbox: EdgeOutbox, link: MqttLink, topics: HubTopics, pack_readings: int, packs_in_flight: int) -> None:
        self._outbox = outbox
        self._link = link
        self._topics = topics
        self._pack_readings = pack_readings
        self._in_flight = packs_in_flight
        self.wake = asyncio.Event()
        self.packs_sent = 0

    async def run(self) -> None:
        while True:
            await self._link.wait_connected()
            pending = await self._outbox.oldest(self._pack_readings * self._in_flight)
            if not pending:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), IDLE_POLL_SECONDS)
                continue
            packs = packs_of(pending, self._pack_readings)
            sent = await asyncio.gather(*(self._send(pack) for pack in packs))
            acknowledged = [seq for pack, ok in zip(packs, sent, strict=True) if ok for seq in pack.seqs]
            if acknowledged:
                await self._outbox.remove(acknowledged)
            if not all(sent):
                await asyncio.sleep(RETRY_PAUSE_SECONDS)

    async def _send(self, pack: Pack) -> bool:
        try:
            await self._link.publish(self._topics.readings(pack.device_id), pack.payload)
        except LinkDownError as exc:
            logger.info("pack of %d reading(s) from %s kept for later: %s", len(pack.seqs), pack.device_id, exc)
            return False
        self.packs_sent += 1
        return True
