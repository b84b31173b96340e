"""The native PulseBridge MQTT reading format, version 1 (pure: no I/O).

Topic ``pulsebridge/v1/devices/{device_id}/readings``; the payload is one reading object or a
JSON array of them::

    {"type": "heart_rate", "value": 72, "unit": "/min", "time": "2026-11-22T10:00:00+01:00"}
    {"type": "blood_pressure", "components": {"systolic": 120, "diastolic": 80},
     "unit": "mm[Hg]", "time": "2026-11-22T10:00:00+01:00"}

The device is the one named in the topic (which the broker authenticates); a ``device_id``
inside the payload is only a claim, checked against the topic. See README "MQTT format".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from device_adapters.errors import DecodeError, IdentityError, InputRejectedError, ReasonCode
from device_adapters.jsonwire import dumps, json_number, json_time, json_type, loads_strict
from device_adapters.readings import DEVICE_ID_PATTERN, AbsentReason, FrameDecode, Quantity, Reading, ReadingFlag

FORMAT_VERSION = "v1"
TOPIC_PREFIX = "pulsebridge/v1/devices/"
TOPIC_SUFFIX = "/readings"
SENML_SUFFIX = "/senml"
SUBSCRIPTION = "pulsebridge/v1/devices/+/readings"
SENML_SUBSCRIPTION = "pulsebridge/v1/devices/+/senml"

DEFAULT_MAX_PAYLOAD_BYTES = 65_536
DEFAULT_MAX_READINGS = 1_000

_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_COMPONENT = re.compile(r"[a-z][a-z0-9_]{0,31}")
_FIELDS = frozenset(
    {"type", "value", "components", "absent", "unit", "time", "duration", "site", "status", "device_id", "device_time", "user",
     "device_status"}
)  # fmt: skip
# A zone-less device clock as the device reported it (Bluetooth): what the reading key is made of.
_DEVICE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_MAX_USER = 255
_STATUS_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_STATUS_DISPLAY = 128
_MAX_DURATION = Decimal(31 * 24 * 3600)
_MAX_UNIT_CHARS = 32
_MAX_COMPONENTS = 8


def device_from_topic(topic: str, suffix: str = TOPIC_SUFFIX) -> str:
    """The device id a PulseBridge device topic names; the broker's ACL makes it the authenticated one."""
    if not (topic.startswith(TOPIC_PREFIX) and topic.endswith(suffix)):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"topic {topic!r} is not {TOPIC_PREFIX}{{device_id}}{suffix}")
    device_id = topic[len(TOPIC_PREFIX) : -len(suffix)]
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"device id {device_id!r} in topic is not a valid device id")
    return device_id


def topic_for(device_id: str) -> str:
    """The topic a device publishes its readings to."""
    return f"{TOPIC_PREFIX}{device_id}{TOPIC_SUFFIX}"


def decode_payload(
    payload: bytes,
    device_id: str,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_readings: int = DEFAULT_MAX_READINGS,
) -> FrameDecode:
    """Decode one native v1 payload published by ``device_id``.

    A frame-level problem (not JSON, too big, not an object or array) raises
    :class:`DecodeError`; a problem with one reading of a list rejects that reading only, so
    its good neighbours are still stored.
    """
    if len(payload) > max_payload_bytes:
        raise DecodeError(ReasonCode.OVERSIZE, f"payload is {len(payload)} bytes, the limit is {max_payload_bytes}")
    document = loads_strict(payload)
    if isinstance(document, dict):
        items: list[Any] = [document]
    elif isinstance(document, list):
        items = document
        if not items:
            raise DecodeError(ReasonCode.MALFORMED_FRAME, "payload is an empty list")
        if len(items) > max_readings:
            raise DecodeError(ReasonCode.OVERSIZE, f"payload has {len(items)} readings, the limit is {max_readings}")
    else:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"payload must be a JSON object or array, got {json_type(document)}")

    readings: list[Reading] = []
    rejections: list[tuple[int, InputRejectedError]] = []
    for index, item in enumerate(items):
        try:
            readings.append(_reading(item, device_id, index))
        except InputRejectedError as exc:
            rejections.append((index, exc))
    return FrameDecode(tuple(readings), tuple(rejections))


def encode_readings(readings: Sequence[Reading]) -> bytes:
    """Encode readings as a native v1 payload (a single object when there is one)."""
    objects = [reading_object(reading) for reading in readings]
    return dumps(objects[0] if len(objects) == 1 else objects)


def encode_reading(reading: Reading) -> bytes:
    """One reading object: an edge hub keeps each so, and joins them into packs as JSON arrays."""
    return dumps(reading_object(reading))


def reading_object(reading: Reading) -> dict[str, object]:
    obj: dict[str, object] = {"type": reading.kind}
    if reading.quantity is not None:
        obj["value"] = reading.quantity.value
        obj["unit"] = reading.quantity.unit
    elif reading.components:
        obj["components"] = {name: quantity.value for name, quantity in reading.components}
        obj["unit"] = reading.components[0][1].unit
    else:
        obj["absent"] = str(reading.absent)
    obj["time"] = reading.time.isoformat()
    if reading.duration is not None:
        obj["duration"] = Decimal(reading.duration // timedelta(microseconds=1)).scaleb(-6).normalize()
    if reading.site is not None:
        obj["site"] = reading.site
    if reading.flags:
        obj["status"] = sorted(flag.value for flag in reading.flags)
    # Edge hubs forward Bluetooth readings: without these the gateway would key and attribute them differently.
    if reading.device_time is not None:
        obj["device_time"] = reading.device_time
    if reading.user is not None:
        obj["user"] = reading.user
    if reading.status_codes:
        obj["device_status"] = [{"code": code, "display": display} for code, display in reading.status_codes]
    return obj


def _reading(item: object, device_id: str, index: int) -> Reading:
    where = f"reading {index}"
    if not isinstance(item, dict):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where} must be an object, got {json_type(item)}")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    claimed = item.get("device_id")
    if claimed is not None and claimed != device_id:
        raise IdentityError(
            ReasonCode.IDENTITY_MISMATCH, f"{where} claims device_id {claimed!r} but was published by {device_id!r}"
        )

    kind = item.get("type")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'type' must be a lower-case name such as 'heart_rate'")
    if "time" not in item:
        raise DecodeError(ReasonCode.TIMESTAMP_MISSING, f"{where}: 'time' is missing")
    time = json_time(item["time"], where)
    site = _name(item.get("site"), f"{where}: 'site'")
    duration = _duration(item.get("duration"), where)
    flags = _flags(item.get("status"), where)
    device_time, user, status_codes = _device_fields(item, where)
    shapes = [name for name in ("value", "components", "absent") if name in item]
    if len(shapes) != 1:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: give exactly one of 'value', 'components' or 'absent'")
    quantity: Quantity | None = None
    components: tuple[tuple[str, Quantity], ...] = ()
    absent: AbsentReason | None = None
    if shapes == ["absent"]:
        absent = _absent(item["absent"], where)
    else:
        unit = item.get("unit")
        if not isinstance(unit, str) or not 0 < len(unit) <= _MAX_UNIT_CHARS:
            raise DecodeError(
                ReasonCode.MALFORMED_FRAME, f"{where}: 'unit' must be a string of 1 to {_MAX_UNIT_CHARS} characters"
            )
        if shapes == ["value"]:
            quantity = Quantity(json_number(item["value"], f"{where}: 'value'"), unit)
        else:
            components = _components(item["components"], unit, where)
    return Reading(
        device_id, kind, time, quantity, components, index=index, absent=absent, site=site, duration=duration, flags=flags,
        device_time=device_time, user=user, status_codes=status_codes,
    )  # fmt: skip


def _device_fields(item: dict[str, Any], where: str) -> tuple[str | None, int | None, tuple[tuple[str, str], ...]]:
    """The device's own clock text, user slot and status bits (sent by edge hubs for Bluetooth readings)."""
    device_time = item.get("device_time")
    if device_time is not None and not (isinstance(device_time, str) and _DEVICE_TIME.fullmatch(device_time)):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'device_time' must be YYYY-MM-DDThh:mm:ss (no zone)")
    user = item.get("user")
    if user is not None and not (isinstance(user, Decimal) and user == user.to_integral_value() and 0 <= user <= _MAX_USER):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'user' must be an integer from 0 to {_MAX_USER}")
    raw_status = item.get("device_status", [])
    status: list[tuple[str, str]] = []
    if not isinstance(raw_status, list):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'device_status' must be a list of {{code, display}}")
    for entry in raw_status:
        code = entry.get("code") if isinstance(entry, dict) else None
        display = entry.get("display") if isinstance(entry, dict) else None
        if (
            not (isinstance(code, str) and _STATUS_CODE.fullmatch(code) and isinstance(display, str))
            or len(display) > _MAX_STATUS_DISPLAY
        ):
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'device_status' must be a list of {{code, display}}")
        status.append((code, display))
    return device_time, None if user is None else int(user), tuple(status)


def _name(raw: object, what: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not _COMPONENT.fullmatch(raw):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{what} must be a lower-case name such as 'oral'")
    return raw


def _duration(raw: object, where: str) -> timedelta | None:
    if raw is None:
        return None
    seconds = json_number(raw, f"{where}: 'duration'")
    if not 0 <= seconds <= _MAX_DURATION:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'duration' must be 0 to {_MAX_DURATION} seconds, got {seconds}")
    return timedelta(microseconds=int(seconds * 1_000_000))


def _flags(raw: object, where: str) -> frozenset[ReadingFlag]:
    if raw is None:
        return frozenset()
    known = {flag.value: flag for flag in ReadingFlag}
    if not isinstance(raw, list) or not all(isinstance(flag, str) and flag in known for flag in raw):
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'status' must be a list of {', '.join(sorted(known))}")
    return frozenset(known[flag] for flag in raw)


def _absent(raw: object, where: str) -> AbsentReason:
    known = {reason.value: reason for reason in AbsentReason}
    if not isinstance(raw, str) or raw not in known:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: 'absent' must be one of {', '.join(sorted(known))}")
    return known[raw]


def _components(raw: object, unit: str, where: str) -> tuple[tuple[str, Quantity], ...]:
    if not isinstance(raw, dict) or not 0 < len(raw) <= _MAX_COMPONENTS:
        raise DecodeError(
            ReasonCode.MALFORMED_FRAME, f"{where}: 'components' must be an object of 1 to {_MAX_COMPONENTS} numbers"
        )
    components: list[tuple[str, Quantity]] = []
    for name, value in raw.items():
        if not _COMPONENT.fullmatch(name):
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{where}: component name {name!r} is not a lower-case name")
        components.append((name, Quantity(json_number(value, f"{where}: component {name!r}"), unit)))
    return tuple(components)
