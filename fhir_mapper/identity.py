"""The deterministic reading key (``Observation.identifier`` and ``Observation.id``).

Built the way the HL7 PHD IG builds its Observation identifier: device + patient + type + the
device's own timestamp, plus the duration and the supplemental site where present. The same
reading arriving twice (broker redelivery, a device's stored-records download, two edge hubs)
gets the same key, so it is stored and pushed once.

``Observation.identifier`` is ``{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:<key>"}`` and
``Observation.id`` is the key itself: a UUIDv5 of the key text in a fixed namespace.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

# Fixed forever: changing it would give every reading a new identity.
READING_KEY_NAMESPACE = uuid.UUID("5b0f4f3e-8a53-4d5c-9a0e-2f1c7c6d9e10")
KEY_VERSION = "v1"
IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"
_MICROSECOND = timedelta(microseconds=1)


def reading_key_text(
    device_id: str,
    patient_id: str,
    kind: str,
    time: datetime,
    *,
    duration: timedelta | None = None,
    site: str | None = None,
) -> str:
    """The key's readable form; ``time`` is the device-reported instant (any offset)."""
    text = f"{KEY_VERSION}|{device_id}|{patient_id}|{kind}|{time.astimezone(UTC).isoformat(timespec='microseconds')}"
    if duration is not None:
        text += f"|duration={duration // _MICROSECOND}us"
    if site is not None:
        text += f"|site={site}"
    return text


def reading_key(
    device_id: str,
    patient_id: str,
    kind: str,
    time: datetime,
    *,
    duration: timedelta | None = None,
    site: str | None = None,
) -> uuid.UUID:
    return uuid.uuid5(READING_KEY_NAMESPACE, reading_key_text(device_id, patient_id, kind, time, duration=duration, site=site))


def identifier_value(key: uuid.UUID) -> str:
    return key.urn
