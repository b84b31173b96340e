"""Settings of the edge hub (``pulsebridge edge``) and of the gateway's side of its hubs.

A hub keeps what it took from devices in a local SQLite outbox and forwards it upstream over
MQTT; the gateway sends each hub its paired devices on a retained configuration topic and
watches the hub's presence and heartbeat.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

HUB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamSettings(_Section):
    """The central gateway's broker, as the hub reaches it."""

    host: str = "127.0.0.1"
    port: int = Field(default=8883, ge=1, le=65535)
    username: str | None = Field(default=None, description="the hub's broker user (default: the hub id)")
    password: SecretStr | None = None
    tls: bool = Field(default=True, description="TLS to the upstream broker; false only on a trusted network or in tests")
    ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the broker's certificate (default: the system's)"
    )
    cert_file: Path | None = Field(
        default=None, description="client certificate, when the broker authenticates hubs by certificate"
    )
    key_file: Path | None = None
    keepalive_seconds: int = Field(default=30, ge=5, le=3600)
    reconnect_max_seconds: float = Field(default=30.0, gt=0, le=600)
    publish_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="a pack not acknowledged by then is sent again on a new connection"
    )

    @model_validator(mode="after")
    def _key_with_certificate(self) -> UpstreamSettings:
        if (self.cert_file is None) != (self.key_file is None):
            msg = "cert_file and key_file go together"
            raise ValueError(msg)
        return self


class EdgeSettings(_Section):
    """``pulsebridge edge``: the hub next to the patient; and the gateway's view of its hubs."""

    hub_id: str = Field(default="hub-1", pattern=HUB_ID_PATTERN, description="this hub's id: its topics are hubs/<hub_id>/...")
    outbox_path: Path = Field(default=Path("/var/lib/pulsebridge/edge-outbox.db"), description="the local SQLite (WAL) outbox")
    upstream: UpstreamSettings = UpstreamSettings()
    pack_readings: int = Field(default=50, ge=1, le=1000, description="most readings in one upstream message")
    packs_in_flight: int = Field(default=4, ge=1, le=100, description="packs awaiting the broker's PUBACK at once")
    outbox_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=16 * 1024,
        le=1 << 40,
        description="disk budget of the outbox's readings; when reached new data is refused at the source (see README)",
    )
    min_free_disk_bytes: int = Field(
        default=64 * 1024 * 1024, ge=0, le=1 << 40, description="also refuse new data when the file system has less free"
    )
    local_mqtt: bool = Field(
        default=False, description="also take readings from Wi-Fi devices on the local broker (mqtt: section)"
    )
    heartbeat_seconds: float = Field(default=30.0, gt=0, le=3600)
    clock_check_seconds: float = Field(default=600.0, gt=0, le=86_400, description="how often the hub measures its clock skew")
    clock_skew_alarm_seconds: float = Field(default=5.0, gt=0, le=86_400, description="a larger skew raises the clock alarm")
    ble_backend: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="bleak client backend class as module:Class (default: the platform's own)",
    )
    # The gateway's side (pulsebridge serve)
    config_publish_seconds: float = Field(
        default=5.0, gt=0, le=60, description="how often the gateway looks for pairing changes to send to hubs"
    )
    silent_after_seconds: float = Field(
        default=180.0, gt=0, le=86_400, description="a hub (or a device) not heard from for this long is silent"
    )
