"""The hub's clock against the gateway's: an NTP-style probe over the uplink.

The hub sends its time; the gateway answers with its own; the skew is the gateway's time minus the
midpoint of the hub's send and receive times. It is recorded (outbox state, heartbeat, the
gateway's hub table) and alarmed past a threshold. It corrects nothing: a reading's key keeps the
device-reported time, and the gateway keys Bluetooth readings by the device's own clock text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from datetime import UTC, datetime

import orjson

from device_adapters.mqtt.hub_topics import HubTopics
from device_adapters.mqtt.link import LinkDownError, MqttLink
from gateway.edge.outbox import EdgeOutbox

logger = logging.getLogger(__name__)
CLOCK_STATE = "clock"


class ClockProbe:
    def __init__(self, link: MqttLink, topics: HubTopics, outbox: EdgeOutbox, alarm_seconds: float) -> None:
        self._link = link
        self._topics = topics
        self._outbox = outbox
        self._alarm_seconds = alarm_seconds
        self._ids = itertools.count(1)
        self._asked: dict[int, datetime] = {}
        self.skew_seconds: float | None = None
        self.checked_at: datetime | None = None
        self._saving: set[asyncio.Task[None]] = set()

    @property
    def alarm(self) -> bool:
        return self.skew_seconds is not None and abs(self.skew_seconds) > self._alarm_seconds

    async def run(self, every_seconds: float) -> None:
        saved = await self._outbox.load_state(CLOCK_STATE)
        if saved is not None:
            self.skew_seconds = orjson.loads(saved)["skew_seconds"]
        while True:
            await asyncio.sleep(every_seconds)
            with contextlib.suppress(LinkDownError):
                await self.probe()

    async def probe(self) -> None:
        probe_id = next(self._ids)
        sent = datetime.now(UTC)
        self._asked = {probe_id: sent}  # only the latest probe counts: a late answer to an old one is stale
        await self._link.publish(self._topics.clock_request, orjson.dumps({"id": probe_id, "hub_time": sent.isoformat()}))

    def answer(self, payload: bytes) -> None:
        received = datetime.now(UTC)
        try:
            reply = orjson.loads(payload)
            sent = self._asked.pop(int(reply["id"]))
            gateway_time = datetime.fromisoformat(reply["gateway_time"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("clock reply ignored (%r): %s", payload[:200], exc)
            return
        if gateway_time.tzinfo is None:
            logger.warning("clock reply ignored: gateway_time has no offset")
            return
        midpoint = sent + (received - sent) / 2
        self.skew_seconds = round((gateway_time - midpoint).total_seconds(), 3)
        self.checked_at = received
        if self.alarm:
            logger.warning("hub clock is %.3f s off the gateway's (alarm above %.1f s)", -self.skew_seconds, self._alarm_seconds)
        state = {"skew_seconds": self.skew_seconds, "checked_at": received.isoformat()}
        task = asyncio.get_running_loop().create_task(self._outbox.save_state(CLOCK_STATE, orjson.dumps(state)))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)
