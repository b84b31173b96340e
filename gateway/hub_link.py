"""The gateway's side of its edge hubs: presence, heartbeats, clock answers and each hub's configuration.

Presence and heartbeats arrive through the gateway's own MQTT source (persistent session, acked
after the store wrote them). The configuration -- the devices paired with each hub and their
patients -- is read from the store every ``edge.config_publish_seconds`` and published retained on
``hubs/<hub>/config`` when it changed, so a pairing made through the API or the CLI reaches a
running hub within seconds, and a hub that connects later finds it waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from device_adapters.errors import StorageError
from device_adapters.mqtt.hub_topics import HubTopics, hub_status_topic
from device_adapters.mqtt.link import LinkDownError
from device_adapters.mqtt.source import MqttSource
from device_adapters.readings import Delivery
from edge_config import GatewaySettings
from edge_config.hub_config import HubConfig, HubDeviceConfig
from gateway.storage import ObservationStore
from gateway.storage.hubs import DeviceReport, HubHeartbeat, HubRecord

logger = logging.getLogger(__name__)


class HubChannel:
    def __init__(self, store: ObservationStore, settings: GatewaySettings, source: MqttSource) -> None:
        self._store = store
        self._settings = settings
        # The ingest connection publishes too: a second one would need a broker user of its own
        # (with use_username_as_clientid two connections of one user take each other's session).
        self._source = source
        self._published: dict[str, str] = {}
        self._generation = -1

    async def handle(self, delivery: Delivery) -> bool:
        """Take a hub status message (True), or leave the delivery to the ingest pipeline (False)."""
        found = hub_status_topic(delivery.frame.channel) if delivery.frame.source == "mqtt" else None
        if found is None:
            return False
        hub_id, what = found
        try:
            document = orjson.loads(delivery.frame.payload)
            if not isinstance(document, dict):
                raise TypeError("not a JSON object")  # noqa: TRY301 - one handler for every malformed status
            if what == "presence":
                await self._store.record_hub_presence(hub_id, document.get("state") == "online", delivery.frame.received_at)
            elif what == "heartbeat":
                await self._store.record_hub_heartbeat(heartbeat_from(hub_id, document, delivery.frame.received_at))
            else:
                await self._answer_clock(hub_id, document)
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            # A status message is not a reading: nothing to quarantine, and it must not block the stream.
            logger.warning("hub %s: %s message ignored: %s", hub_id, what, exc)
        except StorageError as exc:
            # Not acknowledged: the broker sends it again with the session; the next heartbeat supersedes it anyway.
            logger.warning("hub %s: %s not recorded (%s)", hub_id, what, exc)
            return True
        delivery.ack()
        return True

    async def _answer_clock(self, hub_id: str, request: dict[str, Any]) -> None:
        reply = {"id": int(request["id"]), "hub_time": str(request["hub_time"]), "gateway_time": datetime.now(UTC).isoformat()}
        with contextlib.suppress(LinkDownError):
            await self._source.publish(HubTopics(hub_id).clock_reply, orjson.dumps(reply))

    async def configurations(self) -> dict[str, HubConfig]:
        """Every known hub's configuration from the store: its paired devices and their patients now."""
        paired = await self._store.hub_devices()
        registrations = await self._store.registrations({device.device_id for device in paired})
        now = datetime.now(UTC)
        devices: dict[str, list[HubDeviceConfig]] = {hub.hub_id: [] for hub in await self._store.list_hubs()}
        for device in paired:
            registration = registrations.get(device.device_id)
            patient = registration.patient_at(now, None) if registration is not None else None
            devices.setdefault(device.hub_id, []).append(
                HubDeviceConfig(device_id=device.device_id, address=device.address, patient_id=patient)
            )
        return {hub_id: HubConfig(hub_id=hub_id, devices=tuple(found)) for hub_id, found in devices.items()}

    async def publish_configurations(self) -> int:
        """Publish the configurations that changed since last published; returns how many were sent."""
        sent = 0
        for hub_id, config in (await self.configurations()).items():
            if self._published.get(hub_id) == config.revision:
                continue
            await self._source.publish(HubTopics(hub_id).config, config.payload(), retain=True)
            self._published[hub_id] = config.revision
            logger.info("hub %s: configuration %s sent (%d device(s))", hub_id, config.revision, len(config.devices))
            sent += 1
        return sent

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.edge.config_publish_seconds)
            if not self._source.connected:
                continue
            if self._source.generation != self._generation:
                # A new connection: publish every configuration again (retained, so harmless).
                self._generation = self._source.generation
                self._published.clear()
            with contextlib.suppress(LinkDownError):
                await self.publish_configurations()


def heartbeat_from(hub_id: str, document: dict[str, Any], received_at: datetime) -> HubHeartbeat:
    skew = document.get("clock_skew_seconds")
    devices = tuple(
        DeviceReport(
            device_id=str(item["device_id"]),
            connected=bool(item.get("connected")),
            battery_percent=_small_int(item.get("battery_percent"), 0, 100),
            rssi=_small_int(item.get("rssi"), -127, 20),
            last_seen_at=_instant(item.get("last_seen_at")),
        )
        for item in document.get("devices", [])
    )
    return HubHeartbeat(
        hub_id=hub_id,
        received_at=received_at,
        version=str(document["version"])[:64],
        queue_depth=max(0, int(document["queue_depth"])),
        clock_skew_seconds=None if skew is None else float(skew),
        alarms=tuple(str(alarm)[:64] for alarm in document.get("alarms", []))[:16],
        devices=devices,
    )


def _small_int(value: object, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{value!r} is not an integer from {low} to {high}")
    return value


def _instant(value: object) -> datetime | None:
    if value is None:
        return None
    instant = datetime.fromisoformat(str(value))
    if instant.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return instant


def hub_state(hub: HubRecord, now: datetime, silent_after: timedelta) -> str:
    """``offline`` (its Last Will or goodbye), ``silent`` (no heartbeat for a while) or ``online``."""
    if not hub.online:
        return "offline"
    heard = max(filter(None, (hub.last_heartbeat_at, hub.presence_at)), default=None)
    return "online" if heard is not None and now - heard <= silent_after else "silent"
