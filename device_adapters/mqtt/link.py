"""One MQTT connection that publishes with QoS 1 and listens: an edge hub's uplink, the gateway's hub channel.

``publish`` returns only after the broker's PUBACK (aiomqtt resolves a QoS 1 publish on it), so a
caller can delete what it sent only then. The connection comes back by itself with capped back-off;
the Last Will (if any) tells the others when it drops without a goodbye.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from device_adapters.errors import PulseBridgeError

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], Awaitable[None]]


class LinkDownError(PulseBridgeError):
    """The broker is not reachable now, or did not acknowledge in time: send again later."""


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_seconds: int = 30
    reconnect_max_seconds: float = 30.0
    publish_timeout_seconds: float = 30.0
    in_flight: int = 20


def tls_context(settings: LinkSettings) -> ssl.SSLContext | None:
    """Verified TLS (the system's CAs, or ``ca_file``), with a client certificate when one is configured."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.cert_file is not None and settings.key_file is not None:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    return context


class MqttLink:
    """Run :meth:`run` as a task; :meth:`publish` from any other task."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler | None = None,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        will: LastWill | None = None,
    ) -> None:
        self._settings = settings
        self._subscriptions = tuple(subscriptions)
        self._on_message = on_message
        self._on_connect = on_connect
        self._will = will
        self._tls = tls_context(settings)
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self.last_error: str | None = None
        self.connections = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def _new_client(self) -> aiomqtt.Client:
        settings = self._settings
        will = aiomqtt.Will(self._will.topic, self._will.payload, qos=1, retain=self._will.retain) if self._will else None
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=settings.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,  # what must survive lives in the caller's outbox, not in a broker session
            will=will,
            keepalive=settings.keepalive_seconds,
            tls_context=self._tls,
            max_inflight_messages=settings.in_flight,
        )
        client.pending_calls_threshold = 10_000  # aiomqtt warns (costly) past this many calls at once
        return client

    async def run(self) -> None:
        backoff = 0.5
        while True:
            client = self._new_client()
            try:
                async with client:
                    self._client = client
                    for subscription in self._subscriptions:
                        await client.subscribe(subscription, qos=1)
                    self.connections += 1
                    self.last_error = None
                    self._connected.set()
                    logger.info("mqtt link to %s:%s up as %s", self._settings.host, self._settings.port, self._settings.client_id)
                    backoff = 0.5
                    if self._on_connect is not None:
                        await self._on_connect()
                    async for message in client.messages:
                        if self._on_message is not None:
                            await self._on_message(str(message.topic), bytes(message.payload))
            except (aiomqtt.MqttError, LinkDownError, OSError) as exc:
                self.last_error = str(exc)
                logger.warning(
                    "mqtt link to %s:%s down (%s); again in %.1f s", self._settings.host, self._settings.port, exc, backoff
                )
            finally:
                self._connected.clear()
                self._client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._settings.reconnect_max_seconds)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1; returns after the broker's PUBACK, raises :class:`LinkDownError` otherwise."""
        client = self._client
        if client is None or not self._connected.is_set():
            raise LinkDownError(f"not connected to {self._settings.host}:{self._settings.port}")
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=self._settings.publish_timeout_seconds)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise LinkDownError(f"publish to {topic} not acknowledged: {exc}") from exc
