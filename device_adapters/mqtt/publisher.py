"""Publish native v1 readings over MQTT QoS 1 (simulator, edge forwarders, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Self

import aiomqtt

from device_adapters.mqtt.native import encode_readings, topic_for
from device_adapters.readings import Reading


class ReadingPublisher:
    """An async context manager around one MQTT connection that publishes readings."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        protocol: Literal["5", "3.1.1"] = "3.1.1",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
        self._client = aiomqtt.Client(host, port, identifier=client_id, protocol=version, username=username, password=password)
        # Publishers run many publishes at once; aiomqtt warns (costly) past this many.
        self._client.pending_calls_threshold = 10_000

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        await self._client.__aexit__(exc_type, exc, traceback)

    async def publish(self, device_id: str, readings: Sequence[Reading]) -> None:
        """Publish one message (waits for the broker's PUBACK)."""
        await self._client.publish(topic_for(device_id), encode_readings(readings), qos=1)

    async def publish_raw(self, topic: str, payload: bytes) -> None:
        await self._client.publish(topic, payload, qos=1)
