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

import numpy as np
import orjson

# Fixed forever: changing it would give every reading a new identity.
READING_KEY_NAMESPACE = uuid.UUID("5b0f4f3e-8a53-4d5c-9a0e-2f1c7c6d9e10")
KEY_VERSION = "v1"
IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"
_NAMESPACE_BYTES = READING_KEY_NAMESPACE.bytes
_MICROSECOND = timedelta(microseconds=1)
_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}
# SHA-1 with the namespace already absorbed: copying it is cheaper than hashing the namespace again.
_SEEDED = hashlib.sha1(_NAMESPACE_BYTES, usedforsecurity=False)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_TEXT_WIDTH = 36
# Where the 32 hex digits go in the 36 characters of a UUID's text (the rest are dashes).
_HEX_SLOTS = np.array([i for i in range(_UUID_TEXT_WIDTH) if i not in {8, 13, 18, 23}])


def utc_text(time: datetime) -> str:
    """The instant in UTC, ISO 8601: the same text whatever offset the device reported."""
    instant = time if time.tzinfo is UTC else time.astimezone(UTC)
    try:
        # orjson writes what isoformat writes for UTC, several times faster (the hot path keys with it).
        return orjson.dumps(instant)[1:-1].decode()
    except orjson.JSONEncodeError:  # a datetime subclass orjson does not know
        return instant.isoformat()


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
    digest = _SEEDED.copy()
    digest.update(text.encode())
    hexed = digest.hexdigest()
    # Version 5 in the 13th digit; RFC 4122 variant (10xx) in the 17th.
    return f"{hexed[:8]}-{hexed[8:12]}-5{hexed[13:16]}-{_VARIANT[hexed[16]]}{hexed[17:20]}-{hexed[20:32]}"


def uuid5_seed() -> hashlib._Hash:
    """SHA-1 with the namespace absorbed, for the hot path to hash key texts inline.

    ``copy()`` it and ``update`` the copy with a key text: its digest is what :func:`uuid5_text`
    formats, and :func:`uuid5_texts` formats many at once.
    """
    return _SEEDED.copy()


def uuid5_texts(digests: list[bytes]) -> list[str]:
    """UUIDv5 texts of many :func:`uuid5_seed` digests, formatted all at once with numpy."""
    if not digests:
        return []
    octets = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 20)[:, :16].copy()
    octets[:, 6] = (octets[:, 6] & 0x0F) | 0x50  # version 5
    octets[:, 8] = (octets[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    nibbles = np.empty((len(octets), 32), dtype=np.uint8)
    nibbles[:, 0::2] = octets >> 4
    nibbles[:, 1::2] = octets & 0x0F
    characters = np.full((len(octets), _UUID_TEXT_WIDTH), ord("-"), dtype=np.uint8)
    characters[:, _HEX_SLOTS] = _HEX_DIGITS[nibbles]
    joined = characters.tobytes().decode("ascii")
    return [joined[start : start + _UUID_TEXT_WIDTH] for start in range(0, len(joined), _UUID_TEXT_WIDTH)]


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
