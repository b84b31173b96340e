"""The deterministic reading key (``Observation.identifier`` and ``Observation.id``).

Built the way the HL7 PHD IG builds its Observation identifier: device + patient + type + the
device's own timestamp. The same reading arriving twice (broker redelivery, a device's
stored-records download, two edge hubs) gets the same key, so it is stored and pushed once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

# Fixed forever: changing it would give every reading a new identity.
READING_KEY_NAMESPACE = uuid.UUID("5b0f4f3e-8a53-4d5c-9a0e-2f1c7c6d9e10")
KEY_VERSION = "v1"
IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"


def reading_key(device_id: str, patient_id: str, kind: str, time: datetime) -> uuid.UUID:
    """The key of one reading; ``time`` is the device-reported instant (any offset)."""
    instant = time.astimezone(UTC).isoformat(timespec="microseconds")
    return uuid.uuid5(READING_KEY_NAMESPACE, f"{KEY_VERSION}|{device_id}|{patient_id}|{kind}|{instant}")


def identifier_value(key: uuid.UUID) -> str:
    return key.urn
