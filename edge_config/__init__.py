"""Typed configuration: the schema, its loader and the bundled defaults."""

from edge_config.destinations import DestinationSettings
from edge_config.edge import EdgeSettings, UpstreamSettings
from edge_config.settings import (
    DEFAULT_CONFIG_PATH,
    ApiSettings,
    AuthSettings,
    DashboardSettings,
    DatabaseSettings,
    EventSettings,
    GatewaySettings,
    HttpSettings,
    IngestSettings,
    MaintenanceSettings,
    MqttSettings,
    load_settings,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ApiSettings",
    "AuthSettings",
    "DashboardSettings",
    "DatabaseSettings",
    "DestinationSettings",
    "EdgeSettings",
    "EventSettings",
    "GatewaySettings",
    "HttpSettings",
    "IngestSettings",
    "MaintenanceSettings",
    "MqttSettings",
    "UpstreamSettings",
    "load_settings",
]
