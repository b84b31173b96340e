"""The deterministic reading key (``Observation.identifier`` and ``Observation.id``).

Built the way the HL7 PHD IG builds its Observation identifier: device + patient + type + the
device's own timestamp, plus the duration and the supplemental site where present. The same
reading arriving twice (broker redelivery, a device's stored-records download, two edge hubs)
gets the same key, so it is stored and pushed once.

The key text is ``v1|<device>|<patient>|<kind>|<time>[|duration=<µs>us][|site=<site>]`` where the
time is the device time in UTC (ISO 8601), or ``device:<text>`` for a zone-less device clock
(Bluetooth), so re-anchoring a stored record on a later connection keeps its identity;
the key is its UUIDv5 in a fixed namespace. ``Observation.id`` is the key, and
``Observation.identifier`` is ``{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:<key>"}``.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

# Fixed forever: changing it would give every reading a new identity.
READING_KEY_NAMESPACE = uuid.UUID("5b0f4f3e-8a53-4d5c-9a0e-2f1c7c6d9e10")
KEY_VERSION = "v1"
IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"
_NAMESPACE_BYTES = READING_KEY_NAMESPACE.bytes
_MICROSECOND = timedelta(microseconds=1)
_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


def utc_text(time: datetime) -> str:
    """The instant in UTC, ISO 8601: the same text whatever offset the device reported."""
    return (time if not time.utcoffset() else time.astimezone(UTC)).isoformat()


def device_stamp(device_time: str) -> str:
    """The key's time part for a device clock without zone (Bluetooth): the device's own text."""
    return f"device:{device_time}"


def key_text(
    device_id: str, patient_id: str, kind: str, utc: str, *, duration: timedelta | None = None, site: str | None = None
) -> str:
    """The key's readable form from the device time already written by :func:`utc_text`."""
    text = f"{KEY_VERSION}|{device_id}|{patient_id}|{kind}|{utc}"
    if duration is not None:
        text += f"|duration={duration // _MICROSECOND}us"
    if site is not None:
        text += f"|site={site}"
    return text


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
    return key_text(device_id, patient_id, kind, utc_text(time), duration=duration, site=site)


def uuid5_text(text: str) -> str:
    """``str(uuid.uuid5(READING_KEY_NAMESPACE, text))`` without building UUID objects (hot path)."""
    hexed = hashlib.sha1(_NAMESPACE_BYTES + text.encode(), usedforsecurity=False).hexdigest()
    # Version 5 in the 13th digit; RFC 4122 variant (10xx) in the 17th.
    return f"{hexed[:8]}-{hexed[8:12]}-5{hexed[13:16]}-{_VARIANT[hexed[16]]}{hexed[17:20]}-{hexed[20:32]}"


def reading_key(
    device_id: str,
    patient_id: str,
    kind: str,
    time: datetime,
    *,
    duration: timedelta | None = None,
    site: str | None = None,
) -> uuid.UUID:
    return uuid.UUID(uuid5_text(reading_key_text(device_id, patient_id, kind, time, duration=duration, site=site)))


def identifier_value(key: uuid.UUID | str) -> str:
    return f"urn:uuid:{key}"
