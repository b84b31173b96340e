"""The MQTT source: deliveries from a broker, acknowledged only after the store commits.

A fixed client id and a persistent session (MQTT 5 ``clean_start=False`` with a session
expiry, or MQTT 3.1.1 ``clean_session=False``) make the broker keep every message this
gateway has not acknowledged and send it again after a crash or a reconnect. With MQTT 5 the
``receive_maximum`` bounds how many unacknowledged messages the broker sends at once: that is
the ingest back-pressure.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_adapters.mqtt.buffered_reads import enable_buffered_reads
from device_adapters.mqtt.flow import ReadPause
from device_adapters.mqtt.link import LinkDownError
from device_adapters.mqtt.manual_ack import acknowledge, enable_manual_ack
from device_adapters.readings import Delivery, RawFrame
from edge_config import MqttSettings

logger = logging.getLogger(__name__)
PUBLISH_TIMEOUT_SECONDS = 30.0


class MqttSource:
    """Async iterator over :class:`Delivery` values; reconnects until cancelled."""

    def __init__(self, settings: MqttSettings, topic_filters: Sequence[str]) -> None:
        self._settings = settings
        self._share = f"$share/{settings.shared_group}/" if settings.shared_group else ""
        self._subscriptions = [f"{self._share}{topic_filter}" for topic_filter in topic_filters]
        self._client: aiomqtt.Client | None = None
        self._generation = 0
        self.connected = False
        self.last_error: str | None = None

    def _new_client(self) -> aiomqtt.Client:
        settings = self._settings
        password = settings.password.get_secret_value() if settings.password is not None else None
        common = {
            "hostname": settings.host,
            "port": settings.port,
            "username": settings.username,
            "password": password,
            "identifier": settings.client_id,
            "keepalive": settings.keepalive_seconds,
        }
        if settings.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho ships no annotations here
            properties.SessionExpiryInterval = settings.session_expiry_seconds
            properties.ReceiveMaximum = settings.receive_maximum
            client = aiomqtt.Client(
                **common,  # type: ignore[arg-type] # keyword bundle shared by both protocol versions
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=settings.clean_start or settings.client_id is None,
                properties=properties,
            )
        else:
            client = aiomqtt.Client(
                **common,  # type: ignore[arg-type] # keyword bundle shared by both protocol versions
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=settings.clean_start or settings.client_id is None,
            )
        enable_manual_ack(client)
        enable_buffered_reads(client)
        return client

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        backoff = 0.5
        while True:
            client = self._new_client()
            # At the receive maximum, so that no more are ever held than the broker was told; reads
            # go on at half of it, once a commit's acknowledgements have gone out.
            maximum = self._settings.receive_maximum
            reads = ReadPause(client, pause_at=maximum, resume_at=maximum // 2, armed=False)
            try:
                async with client:
                    for subscription in self._subscriptions:
                        await client.subscribe(subscription, qos=self._settings.qos)
                    reads.arm()
                    self._generation += 1
                    self._client, self.connected, self.last_error = client, True, None
                    logger.info(
                        "mqtt connected to %s:%s as %s", self._settings.host, self._settings.port, self._settings.client_id
                    )
                    backoff = 0.5
                    generation = self._generation
                    async for message in client.messages:
                        frame = RawFrame("mqtt", str(message.topic), bytes(message.payload), datetime.now(UTC))
                        yield Delivery(frame, functools.partial(self._acknowledge, generation, message.mid, message.qos, reads))
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                logger.warning("mqtt connection lost (%s); reconnecting in %.1f s", exc, backoff)
            finally:
                self.connected = False
                self._client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._settings.reconnect_max_seconds)

    async def add_topic_filters(self, topic_filters: Sequence[str]) -> None:
        """Subscribe to more topics now (mapping templates reloaded) and on every reconnect."""
        new = [f"{self._share}{topic}" for topic in topic_filters if f"{self._share}{topic}" not in self._subscriptions]
        self._subscriptions.extend(new)
        if self._client is not None and self.connected:
            for subscription in new:
                await self._client.subscribe(subscription, qos=self._settings.qos)

    @property
    def generation(self) -> int:
        """Counts connections: a new value means a new session on the broker."""
        return self._generation

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1 on this connection (the gateway's answers to hubs); raises LinkDownError when not acknowledged."""
        client = self._client
        if client is None or not self.connected:
            raise LinkDownError(f"not connected to {self._settings.host}:{self._settings.port}")
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=PUBLISH_TIMEOUT_SECONDS)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise LinkDownError(f"publish to {topic} not acknowledged: {exc}") from exc

    def _acknowledge(self, generation: int, mid: int, qos: int, reads: ReadPause) -> None:
        # A message from an earlier connection is redelivered by the broker; its message id may
        # already name a different message on this connection, so it must not be acked here.
        if generation == self._generation and self._client is not None and self.connected:
            acknowledge(self._client, mid, qos)
            if qos > 0:
                reads.acknowledged()
