"""Gateway settings: one YAML file plus ``PULSEBRIDGE_*`` environment overrides.

Validated once at start; a mistake fails fast with its location (``mqtt.port``) and where the
value came from. Nested keys are overridden with ``__``:
``PULSEBRIDGE_DATABASE__URL=postgresql://gw@db/pulsebridge``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from device_adapters.errors import ConfigError
from edge_config.alert_settings import AlertSettings
from edge_config.destinations import DestinationSettings
from edge_config.edge import EdgeSettings

DEFAULT_CONFIG_PATH = Path(__file__).parent / "defaults" / "gateway.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = Field(
        default="postgresql:///pulsebridge?host=/var/run/postgresql",
        description="postgresql://… for TimescaleDB, sqlite:///path.db for the embedded store",
    )
    pool_min: int = Field(default=1, ge=1, le=100)
    pool_max: int = Field(default=10, ge=1, le=100)
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _known_scheme(self) -> DatabaseSettings:
        if not self.url.startswith(("postgresql://", "postgres://", "sqlite://")):
            msg = "url must start with postgresql:// (TimescaleDB) or sqlite:// (embedded store)"
            raise ValueError(msg)
        if self.pool_min > self.pool_max:
            msg = "pool_min must not exceed pool_max"
            raise ValueError(msg)
        return self


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(
        default="pulsebridge-gateway",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="fixed, so the broker keeps this gateway's session (and its unacknowledged messages); null = random",
    )
    protocol: Literal["5", "3.1.1"] = "5"
    qos: Literal[0, 1, 2] = Field(default=1, description="subscription QoS; 0 loses messages on any disconnect")
    clean_start: bool = Field(default=False, description="true discards the session, and with it unacknowledged messages")
    allow_data_loss: bool = Field(
        default=False,
        description="start even with settings that lose messages (QoS 0, clean start, random client id): tests and demos only",
    )
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="subscribe as $share/<group>/… so several gateway processes split the stream",
    )
    session_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=0xFFFFFFFF)
    receive_maximum: int = Field(
        default=1000,
        ge=1,
        le=65535,
        description="MQTT 5: most unacknowledged messages the broker may send at once (the ingest back-pressure)",
    )
    keepalive_seconds: int = Field(default=30, ge=5, le=3600)
    reconnect_max_seconds: float = Field(default=30.0, gt=0, le=600)
    templates_file: Path | None = Field(
        default=None,
        description="declarative payload mappings (see edge_config/defaults/templates.example.yaml); reloaded on change",
    )
    managed_password_file: Path | None = Field(
        default=None,
        description="the broker's password_file, rewritten by the gateway when a device is paired with an MQTT "
        "password or unpaired (then the broker is told to reload: revoked devices are cut off at once)",
    )
    static_password_file: Path | None = Field(
        default=None,
        description="password lines copied first into managed_password_file: the gateway's own users "
        "(from `pulsebridge mqtt credentials`)",
    )
    broker_pid_file: Path | None = Field(
        default=None, description="the broker's pid_file: it gets SIGHUP (reload) after each rewrite"
    )
    theengs_base_topic: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="also read OpenMQTTGateway / Theengs Gateway documents on <base>/+/BTtoMQTT/+ (usually 'home')",
    )

    @model_validator(mode="after")
    def _refuse_data_loss(self) -> MqttSettings:
        unsafe = [
            reason
            for reason, present in (
                ("qos 0 (a message is gone if the gateway stops before storing it)", self.qos == 0),
                ("clean_start (the broker forgets unacknowledged messages at every reconnect)", self.clean_start),
                ("no fixed client_id (each start is a new session; the old one's messages are stranded)", self.client_id is None),
            )
            if present
        ]
        if unsafe and not self.allow_data_loss:
            msg = f"these settings lose data: {'; '.join(unsafe)}; set allow_data_loss: true only if that is intended"
            raise ValueError(msg)
        return self


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = Field(default=None, description="base URL clients see, for Bundle links")


class IngestSettings(_Section):
    batch_size: int = Field(default=500, ge=1, le=10_000)
    batch_wait_ms: int = Field(default=50, ge=0, le=10_000)
    queue_size: int = Field(default=2_000, ge=1, le=100_000)
    writes_in_flight: int = Field(default=2, ge=1, le=8, description="batch transactions at once; acks still go in arrival order")
    max_payload_bytes: int = Field(default=65_536, ge=256, le=16 * 1024 * 1024)
    max_readings_per_message: int = Field(default=1_000, ge=1, le=100_000)
    future_tolerance_seconds: int = Field(default=300, ge=0, le=86_400)
    retry_max_seconds: float = Field(default=10.0, gt=0, le=300)
    http_rate_per_second: float = Field(default=20.0, gt=0, le=10_000, description="HTTP ingest requests per device per second")
    http_burst: int = Field(default=40, ge=1, le=100_000, description="HTTP ingest requests a device may send at once")
    http_commit_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="how long an HTTP post waits for its commit before answering 503"
    )


class PairedDeviceSettings(_Section):
    device_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    address: str = Field(min_length=1, max_length=64, description="Bluetooth address (a UUID on macOS)")
    connect: bool = Field(default=True, description="keep a GATT connection (false for devices that only advertise)")
    advertisements: bool = Field(default=False, description="read its advertisements (BTHome, vendor formats)")
    bind_key: SecretStr | None = Field(default=None, description="BTHome bind key (32 hex digits) of an encrypting device")
    body_thermometer: bool = Field(default=False, description="its advertised temperature is a body temperature")

    @model_validator(mode="after")
    def _bind_key_is_hex(self) -> PairedDeviceSettings:
        if self.bind_key is not None and not re.fullmatch(r"[0-9A-Fa-f]{32}", self.bind_key.get_secret_value()):
            msg = "bind_key must be 32 hex digits (a 16-octet BTHome key)"
            raise ValueError(msg)
        return self


class BleSettings(_Section):
    devices: list[PairedDeviceSettings] = Field(default_factory=list, description="paired devices this host keeps connected")
    set_clock: bool = Field(default=False, description="write the gateway's time to devices with a writable Current Time")
    zone: str = Field(default="UTC", description="IANA zone of the devices' clocks when they do not report one")
    transfer_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _known_zone(self) -> BleSettings:
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"zone {self.zone!r} is not an IANA time zone (Europe/Paris, UTC…)"
            raise ValueError(msg) from exc
        return self


class ApiSettings(_Section):
    default_count: int = Field(default=50, ge=1, le=1000)
    max_count: int = Field(default=1000, ge=1, le=10_000)
    max_vitals_buckets: int = Field(default=2000, ge=10, le=100_000, description="most buckets one vitals series may ask for")
    export_page_rows: int = Field(default=1000, ge=10, le=50_000, description="rows per keyset page while an export streams")


RetentionDays = Annotated[int, Field(ge=1, le=36_500)]


class MaintenanceSettings(_Section):
    """Raw retention and hourly rollups, run by the gateway's own scheduler (no TimescaleDB policy jobs here)."""

    enabled: bool = Field(default=True, description="run the maintenance pass every interval_seconds inside `serve`")
    interval_seconds: int = Field(default=3600, ge=1, le=7 * 86_400)
    raw_retention_days: int | None = Field(
        default=None, ge=1, le=36_500, description="keep raw observations this long; null keeps them (rollups stay either way)"
    )
    retention_days_by_kind: dict[str, RetentionDays | None] = Field(
        default_factory=dict, description="per-kind override of raw_retention_days (heart_rate: 90); null keeps that kind"
    )
    rollup_lookback_seconds: int = Field(
        default=3600,
        ge=0,
        le=30 * 86_400,
        description="rows received this long before the last pass are looked at again: batches that commit late are not missed",
    )
    delete_batch_rows: int = Field(
        default=50_000, ge=100, le=1_000_000, description="rows per DELETE, to keep transactions short"
    )


class EventSettings(_Section):
    """The live event bus (dashboard, alert engine): each subscriber has its own bounded queue."""

    subscriber_queue_size: int = Field(
        default=1000, ge=1, le=100_000, description="events a subscriber may fall behind by before it loses its oldest"
    )


class TrustedIssuerSettings(_Section):
    """An OpenID Connect issuer whose bearer tokens the API accepts (Keycloak, Entra ID, an EHR's)."""

    issuer: str = Field(min_length=1, description="the tokens' iss, exactly")
    audience: str = Field(min_length=1, description="the aud the issuer puts in tokens meant for this gateway")
    jwks_url: str = Field(pattern=r"^https?://", description="the issuer's JSON Web Key Set (jwks_uri of its discovery document)")
    role_claim: str = Field(default="pulsebridge_role", min_length=1, description="claim naming the PulseBridge role")
    patient_claim: str = Field(default="patient", min_length=1, description="claim naming the patient in context")


class AuthSettings(_Section):
    """Bearer tokens: the gateway's own (ES256) and those of trusted OpenID Connect issuers."""

    issuer: str = Field(default="urn:pulsebridge:gateway", min_length=1, description="iss of the tokens this gateway issues")
    audience: str = Field(default="urn:pulsebridge:api", min_length=1, description="aud of the tokens this API accepts")
    signing_key_file: Path | None = Field(
        default=None,
        description="the gateway's ES256 key (PEM), created there (mode 0600) on first start; "
        "null: a key in memory, so tokens die with the process",
    )
    trusted_issuers: list[TrustedIssuerSettings] = Field(default_factory=list)


class DashboardSettings(_Section):
    """The web dashboard: password sign-in to a cookie session, and its live stream."""

    enabled: bool = Field(default=True, description="serve the dashboard at /dashboard/ and its sign-in")
    session_idle_minutes: int = Field(
        default=15, ge=1, le=15, description="a session ends after this long without a request (HIPAA automatic logoff)"
    )
    login_attempts: int = Field(default=5, ge=1, le=100, description="failed sign-ins per account in 10 minutes")
    login_attempts_per_address: int = Field(
        default=20, ge=1, le=10_000, description="failed sign-ins per source address in 10 minutes (a clinic shares one)"
    )
    stream_seconds: int = Field(
        default=300,
        ge=5,
        le=3600,
        description="a live stream closes after this long; the browser reconnects, access checked anew",
    )
    stream_heartbeat_seconds: float = Field(default=15, gt=0, le=300, description="a comment line this often keeps proxies open")
    adherence_days: int = Field(default=30, ge=1, le=365, description="the window of the days-with-data adherence measure")


class PlausibleRangeSettings(_Section):
    low: Decimal
    high: Decimal
    unit: str | None = Field(default=None, description="canonical unit of the bounds, for kinds stored in several (glucose)")


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PULSEBRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    http: HttpSettings = HttpSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    ble: BleSettings = BleSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    auth: AuthSettings = AuthSettings()
    events: EventSettings = EventSettings()
    dashboard: DashboardSettings = DashboardSettings()
    alerts: AlertSettings = AlertSettings()
    edge: EdgeSettings = EdgeSettings()
    destinations: list[DestinationSettings] = Field(
        default_factory=list, description="EHRs to push to: each new reading is queued once per destination that accepts it"
    )
    plausibility: dict[str, PlausibleRangeSettings] = Field(
        default_factory=dict,
        description="override a kind's plausible range: heart_rate, blood_pressure.systolic, blood_glucose (with unit)…",
    )
    gateway_name: str = Field(
        default="pulsebridge",
        min_length=1,
        max_length=64,
        description="names this gateway's own FHIR Device (every Observation's gatewayDevice)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _distinct_destinations(self) -> GatewaySettings:
        names = [destination.name for destination in self.destinations]
        if len(set(names)) != len(names):
            msg = f"destinations: each name may appear once (outbox rows are keyed by it): {names}"
            raise ValueError(msg)
        return self


def load_settings(path: Path | None = None) -> GatewaySettings:
    """Read ``path`` (default: the bundled defaults) and the environment; validate once.

    Raises :class:`ConfigError` naming the file and the location of the first mistakes.
    """
    config_path = path or DEFAULT_CONFIG_PATH
    if not config_path.is_file():
        msg = f"{config_path}: configuration file not found"
        raise ConfigError(msg)
    try:
        with config_path.open(encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        msg = f"{config_path}: not valid YAML: {exc}".replace("\n", " ")
        raise ConfigError(msg) from exc
    if document is not None and not isinstance(document, dict):
        msg = f"{config_path}: the top level must be a mapping of sections (database, mqtt, http, ingest, api)"
        raise ConfigError(msg)

    class _FromFile(GatewaySettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files: config is explicit
            file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no secrets directory either
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=config_path))

    try:
        loaded = _FromFile()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}" for error in exc.errors()[:5]
        )
        msg = f"{config_path} (or PULSEBRIDGE_* environment): {problems}"
        raise ConfigError(msg) from exc
    return GatewaySettings.model_validate(loaded.model_dump())
