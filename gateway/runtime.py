"""What the app lifespan owns and the routes use: store, pipeline, MQTT source, settings."""

from __future__ import annotations

from dataclasses import dataclass

from device_adapters.mqtt.source import MqttSource
from edge_config import GatewaySettings
from gateway.pipeline import IngestPipeline
from gateway.storage import ObservationStore


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: GatewaySettings
    store: ObservationStore
    pipeline: IngestPipeline
    source: MqttSource
