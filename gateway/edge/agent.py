"""``pulsebridge edge``: the store-and-forward hub next to the patient.

Bluetooth devices (and, optionally, Wi-Fi devices on a local broker) -> readings -> the local
outbox (committed before the device is acknowledged) -> packs to the upstream broker (QoS 1,
TLS) -> deleted once acknowledged. The paired devices come from the gateway's retained
configuration topic and are kept in the outbox, so a hub restarted without uplink still knows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson

from device_adapters.ble.context import ClockBook
from device_adapters.ble.decoder import SOURCE as BLE_SOURCE
from device_adapters.ble.decoder import BleFrameDecoder
from device_adapters.ble.session import BleSessionManager, Connector, PairedDevice
from device_adapters.errors import ConfigError
from device_adapters.mqtt.hub_topics import HubTopics
from device_adapters.mqtt.link import LastWill, LinkDownError, LinkSettings, MqttLink
from device_adapters.mqtt.native import SENML_SUBSCRIPTION, SUBSCRIPTION
from device_adapters.mqtt.source import MqttSource
from device_adapters.readings import Delivery
from edge_config import GatewaySettings
from edge_config.hub_config import HubConfig, HubDeviceConfig
from gateway import __version__
from gateway.edge.clock import ClockProbe
from gateway.edge.forwarder import Forwarder
from gateway.edge.intake import EdgeIntake
from gateway.edge.outbox import EdgeOutbox
from gateway.pipeline import FrameDecoder, MqttFrameDecoder

logger = logging.getLogger(__name__)
CONFIG_STATE = "config"
LOCAL_BROKER_ADDRESS = "mqtt"
"""The address of a paired device that publishes to the hub's local broker instead of speaking Bluetooth."""


@dataclass(slots=True)
class _Links:
    """Which Bluetooth devices are connected now (the heartbeat's link state)."""

    up: dict[str, bool]

    def wrap(self, connect: Connector) -> Connector:
        async def connect_and_watch(device: PairedDevice, disconnected: Callable[[], None]) -> object:
            def lost() -> None:
                self.up[device.device_id] = False
                disconnected()

            client = await connect(device, lost)
            self.up[device.device_id] = True
            return client

        return connect_and_watch  # type: ignore[return-value] # returns the connector's own client


class EdgeAgent:
    def __init__(self, settings: GatewaySettings, outbox: EdgeOutbox, connector: Connector) -> None:
        self._settings = settings
        self._edge = settings.edge
        self._outbox = outbox
        self._topics = HubTopics(settings.edge.hub_id)
        self._links = _Links({})
        self._connector = self._links.wrap(connector)
        self._clocks = ClockBook(ZoneInfo(settings.ble.zone))
        self.config = HubConfig(
            hub_id=settings.edge.hub_id,
            devices=tuple(HubDeviceConfig(device_id=d.device_id, address=d.address) for d in settings.ble.devices if d.connect),
        )
        self._ble: BleSessionManager | None = None
        self._ble_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        decoders: dict[str, FrameDecoder] = {BLE_SOURCE: BleFrameDecoder(self._clocks), "mqtt": MqttFrameDecoder(settings.ingest)}
        self.intake = EdgeIntake(outbox, decoders, self._allowlist, self._connection_of, queue_size=settings.ingest.queue_size)
        upstream = settings.edge.upstream
        self.link = MqttLink(
            LinkSettings(
                host=upstream.host, port=upstream.port, client_id=f"hub-{settings.edge.hub_id}",
                username=upstream.username or settings.edge.hub_id,
                password=upstream.password.get_secret_value() if upstream.password else None,
                tls=upstream.tls, ca_file=upstream.ca_file, cert_file=upstream.cert_file, key_file=upstream.key_file,
                keepalive_seconds=upstream.keepalive_seconds, reconnect_max_seconds=upstream.reconnect_max_seconds,
                publish_timeout_seconds=upstream.publish_timeout_seconds, in_flight=settings.edge.packs_in_flight + 4,
            ),
            subscriptions=[self._topics.config, self._topics.clock_reply],
            on_message=self._on_message,
            on_connect=self._on_connect,
            will=LastWill(self._topics.presence, orjson.dumps({"state": "offline"})),
        )  # fmt: skip
        self.forwarder = Forwarder(outbox, self.link, self._topics, settings.edge.pack_readings, settings.edge.packs_in_flight)
        self.clock = ClockProbe(self.link, self._topics, outbox, settings.edge.clock_skew_alarm_seconds)

    def _allowlist(self) -> Mapping[str, HubDeviceConfig]:
        return {device.device_id: device for device in self.config.devices}

    def _connection_of(self, device_id: str) -> int:
        return 0 if self._ble is None else self._ble.connections.get(device_id, 0)

    async def run(self) -> None:
        saved = await self._outbox.load_state(CONFIG_STATE)
        if saved is not None:
            self.config = HubConfig.parse(saved)
        async with AsyncExitStack() as stack:
            tasks = [
                asyncio.create_task(self.link.run(), name="uplink"),
                asyncio.create_task(self.intake.run(), name="edge-intake"),
                asyncio.create_task(self.forwarder.run(), name="forwarder"),
                asyncio.create_task(self._heartbeats(), name="heartbeat"),
                asyncio.create_task(self.clock.run(self._edge.clock_check_seconds), name="clock"),
            ]
            if self._edge.local_mqtt:
                local = MqttSource(self._settings.mqtt, [SUBSCRIPTION, SENML_SUBSCRIPTION])
                tasks.append(asyncio.create_task(self._feed(local), name="local-mqtt"))
            stack.push_async_callback(_cancel, tasks)
            stack.push_async_callback(self._stop_ble)
            self._start_ble()
            logger.info("edge hub %s %s running: %d paired device(s)", self._edge.hub_id, __version__, len(self.config.devices))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a task that stopped is a bug: fail loudly, the service manager restarts the hub

    async def _feed(self, source: AsyncIterable[Delivery]) -> None:
        async for delivery in source:
            await self.intake.submit(delivery)
            self.forwarder.wake.set()

    def _start_ble(self) -> None:
        devices = [PairedDevice(d.device_id, d.address) for d in self.config.devices if d.address != LOCAL_BROKER_ADDRESS]
        if not devices:
            return
        self._ble = BleSessionManager(
            devices, self._connector, self._clocks, _OutboxCursors(self._outbox),
            set_clock=self._settings.ble.set_clock, transfer_timeout=self._settings.ble.transfer_timeout_seconds,
        )  # fmt: skip
        self._ble_task = asyncio.create_task(self._feed(self._ble), name="ble-sessions")

    async def _stop_ble(self) -> None:
        if self._ble_task is not None:
            await _cancel([self._ble_task])
        self._ble_task = self._ble = None

    async def _on_connect(self) -> None:
        # Not awaited here: the link's loop must go on reading to receive the PUBACKs it waits for.
        task = asyncio.get_running_loop().create_task(self._announce())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _announce(self) -> None:
        with contextlib.suppress(LinkDownError):
            presence = {"state": "online", "version": __version__, "at": datetime.now(UTC).isoformat()}
            await self.link.publish(self._topics.presence, orjson.dumps(presence), retain=True)
            await self.clock.probe()
            await self._heartbeat()

    async def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self._topics.clock_reply:
            self.clock.answer(payload)
        elif topic == self._topics.config:
            await self._apply_config(payload)

    async def _apply_config(self, payload: bytes) -> None:
        try:
            config = HubConfig.parse(payload)
        except ConfigError as exc:
            logger.error("%s; keeping revision %s", exc, self.config.revision)  # noqa: TRY400 - the message is the whole story
            return
        if config.hub_id != self._edge.hub_id:
            logger.error("configuration for hub %r on this hub's topic ignored", config.hub_id)
            return
        if config == self.config:
            return
        await self._outbox.save_state(CONFIG_STATE, config.payload())
        previous = {(d.device_id, d.address) for d in self.config.devices}
        self.config = config
        logger.info("configuration %s: %d paired device(s)", config.revision, len(config.devices))
        if previous != {(d.device_id, d.address) for d in config.devices}:
            await self._stop_ble()
            self._start_ble()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._edge.heartbeat_seconds)
            with contextlib.suppress(LinkDownError):
                await self._heartbeat()

    def alarms(self) -> list[str]:
        alarms = []
        if self._outbox.full_since is not None:
            alarms.append("outbox_full")
        if self.clock.alarm:
            alarms.append("clock_skew")
        return alarms

    def status(self) -> dict[str, object]:
        outbox = self._outbox
        devices = []
        for device in self.config.devices:
            seen = self.intake.devices.get(device.device_id)
            devices.append({
                "device_id": device.device_id,
                "connected": self._links.up.get(device.device_id, False),
                "battery_percent": seen.battery_percent if seen else None,
                "rssi": None,  # bleak reports no signal strength for a connected device
                "last_seen_at": seen.last_seen_at.isoformat() if seen and seen.last_seen_at else None,
            })  # fmt: skip
        return {
            "version": __version__,
            "sent_at": datetime.now(UTC).isoformat(),
            "config_revision": self.config.revision,
            "queue_depth": outbox.depth,
            "outbox_bytes": outbox.bytes_held,
            "outbox_max_bytes": outbox.max_bytes,
            "outbox_full_reason": outbox.full_reason,
            "counters": dict(outbox.counters),
            "alarms": self.alarms(),
            "clock_skew_seconds": self.clock.skew_seconds,
            "devices": devices,
        }

    async def _heartbeat(self) -> None:
        await self.link.publish(self._topics.heartbeat, orjson.dumps(self.status()))


class _OutboxCursors:
    """The RACP cursors the outbox committed: written in the outbox transaction, read here."""

    def __init__(self, outbox: EdgeOutbox) -> None:
        self._outbox = outbox

    def last(self, device_id: str) -> int | None:
        return self._outbox.cursors.get(device_id)

    def advance(self, device_id: str, sequence: int) -> None:
        """Already stored with the readings; nothing to add once the commit is acknowledged."""


async def run_edge(settings: GatewaySettings, connector: Connector | None = None) -> None:
    """Run the hub until cancelled; the outbox is closed on the way out."""
    if connector is None:
        from device_adapters.ble.connect import connect_with_backend, connect_with_retries  # noqa: PLC0415 - radio stack on demand

        connector = connect_with_backend(settings.edge.ble_backend) if settings.edge.ble_backend else connect_with_retries
    outbox = await EdgeOutbox.open(settings.edge.outbox_path, settings.edge.outbox_max_bytes, settings.edge.min_free_disk_bytes)
    try:
        await EdgeAgent(settings, outbox, connector).run()
    finally:
        await outbox.close()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
