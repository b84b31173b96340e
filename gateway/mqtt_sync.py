"""Broker passwords of paired devices: the gateway rewrites Mosquitto's password file and has it reload.

A device paired with an MQTT password gets a line (its user is its device id, the password is
kept only as Mosquitto's ``$7$`` hash); an unpaired device loses its line. After each rewrite
the broker gets SIGHUP: Mosquitto 2 then disconnects clients whose password is gone and
refuses their reconnection (measured here: within a second of the signal).
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

from edge_config import MqttSettings
from gateway.mqtt_credentials import CredentialsError, password_line
from gateway.storage import ObservationStore

BROKER_CREDENTIAL_KIND = "mqtt-password"


def password_hash(device_id: str, password: str) -> str:
    """What the store keeps of an MQTT password: the ``$7$`` hash of the password file's line."""
    return password_line(device_id, password).split(":", 1)[1]


async def sync_broker_passwords(store: ObservationStore, settings: MqttSettings) -> int:
    """Rewrite the managed password file from the live MQTT credentials; returns the device lines written."""
    if settings.managed_password_file is None:
        raise CredentialsError("mqtt.managed_password_file is not set: this gateway does not manage broker passwords")
    lines: list[str] = []
    for device in await store.list_devices():
        lines += [
            f"{device.device_id}:{credential.secret_hash}"
            for credential in await store.device_credentials(device.device_id)
            if credential.kind == BROKER_CREDENTIAL_KIND and credential.revoked_at is None
        ]
    try:
        static = settings.static_password_file.read_text(encoding="utf-8") if settings.static_password_file else ""
        _replace(settings.managed_password_file, static + "".join(f"{line}\n" for line in lines))
        if settings.broker_pid_file is not None:
            os.kill(int(settings.broker_pid_file.read_text(encoding="ascii").strip()), signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"the broker's passwords could not be updated: {exc}") from exc
    return len(lines)


def _replace(path: Path, text: str) -> None:
    """Write beside the file and rename over it: the broker never reads half a file."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # owner-only, as a password file must be
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
