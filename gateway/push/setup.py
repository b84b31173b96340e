"""Destination settings as push-client configuration: secrets read from their files once, at start."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from device_adapters.errors import ConfigError
from edge_config.destinations import (
    BearerAuthSettings,
    ClientCredentialsSettings,
    DestinationSettings,
    NoAuthSettings,
    SmartBackendSettings,
)
from gateway.push.auth import AuthConfig, ClientCredentials, NoAuth, SmartBackendServices, StaticBearer
from gateway.push.client import Destination
from gateway.push.policy import BreakerSettings


def client_destination(settings: DestinationSettings) -> Destination:
    """The client's view of a destination; raises ConfigError naming the destination and the file."""
    return Destination(
        name=settings.name,
        base_url=settings.base_url,
        auth=_auth(settings),
        timeout=timedelta(seconds=settings.timeout_seconds),
        breaker=BreakerSettings(settings.breaker_failures, timedelta(seconds=settings.breaker_cool_down_seconds)),
    )


def _auth(settings: DestinationSettings) -> AuthConfig:
    auth = settings.auth
    where = f"destinations[{settings.name}].auth"
    match auth:
        case NoAuthSettings():
            return NoAuth()
        case BearerAuthSettings():
            return StaticBearer(_secret(auth.token_file, where).decode().strip())
        case ClientCredentialsSettings():
            secret = _secret(auth.client_secret_file, where).decode().strip()
            return ClientCredentials(auth.token_url, auth.client_id, secret, auth.scope)
        case SmartBackendSettings():
            key = _secret(auth.private_key_file, where)
            try:
                return SmartBackendServices(auth.token_url, auth.client_id, key, auth.kid, auth.algorithm, auth.scope)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}.private_key_file {auth.private_key_file}: {exc}") from exc


def _secret(path: Path, where: str) -> bytes:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    if not content.strip():
        raise ConfigError(f"{where}: {path} is empty")
    return content
