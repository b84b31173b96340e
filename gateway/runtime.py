"""What the app lifespan owns and the routes use: store, pipeline, MQTT source, event bus, settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from device_adapters.mqtt.source import MqttSource
from edge_config import GatewaySettings
from gateway.alerts.service import AlertService
from gateway.auth.service import Authenticator
from gateway.events import EventBus
from gateway.pipeline import IngestPipeline
from gateway.storage import ObservationStore


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: GatewaySettings
    store: ObservationStore
    pipeline: IngestPipeline
    source: MqttSource
    auth: Authenticator
    events: EventBus
    alerts: AlertService
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def stopped_tasks(self) -> list[str]:
        """Background tasks that ended: ingest has stopped, which health must report."""
        return [task.get_name() for task in self.tasks if task.done()]
