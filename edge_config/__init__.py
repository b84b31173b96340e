"""Typed configuration: the schema, its loader and the bundled defaults."""

from edge_config.destinations import DestinationSettings
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
    "EventSettings",
    "GatewaySettings",
    "HttpSettings",
    "IngestSettings",
    "MaintenanceSettings",
    "MqttSettings",
    "load_settings",
]
