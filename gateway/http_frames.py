"""Frames posted over HTTP by devices: one FHIR Observation, a batch or transaction Bundle, a SenML pack.

The HTTP route authenticates the device and writes its id into the frame's channel
(``devices/{device_id}/{format}``), as the broker's ACL does for an MQTT topic: the device a
reading belongs to is never read from the payload. Untrusted FHIR is validated with the
``fhir.resources`` models before anything is read from it; a posted Observation is then turned
back into a reading (:mod:`fhir_mapper.inbound`) and goes through the pipeline like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from device_adapters.errors import DecodeError, InputRejectedError, ReasonCode
from device_adapters.jsonwire import json_type, loads_strict
from device_adapters.mqtt.senml import decode_senml
from device_adapters.readings import DEVICE_ID_PATTERN, FrameDecode, RawFrame, Reading
from edge_config import IngestSettings
from fhir_mapper.inbound import reading_from_observation
from fhir_mapper.validation import FhirValidationError, validate_resource

SOURCE = "http"
_PREFIX = "devices/"
_DIAGNOSTICS_LIMIT = 1000
"""Enough of a validation report to find the mistake; a pydantic report can run to many kilobytes."""


class HttpFormat(StrEnum):
    """What was posted, named as the last part of the frame's channel."""

    OBSERVATION = "fhir/Observation"
    BUNDLE = "fhir"
    SENML = "senml"


_FORMATS = frozenset(posted.value for posted in HttpFormat)


def http_channel(device_id: str, posted: HttpFormat) -> str:
    return f"{_PREFIX}{device_id}/{posted.value}"


def _parse_channel(channel: str) -> tuple[str, HttpFormat]:
    device_id, _, rest = channel.removeprefix(_PREFIX).partition("/")
    if not channel.startswith(_PREFIX) or not DEVICE_ID_PATTERN.fullmatch(device_id) or rest not in _FORMATS:
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"channel {channel!r} is not {_PREFIX}{{device_id}}/{{format}}")
    return device_id, HttpFormat(rest)


class HttpFrameDecoder:
    def __init__(self, settings: IngestSettings) -> None:
        self._max_payload_bytes = settings.max_payload_bytes
        self._max_items = settings.max_readings_per_message

    def device_id(self, frame: RawFrame) -> str:
        return _parse_channel(frame.channel)[0]

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        posted = _parse_channel(frame.channel)[1]
        if posted is HttpFormat.SENML:
            return decode_senml(
                frame.payload, device_id, received_at=frame.received_at, max_payload_bytes=self._max_payload_bytes,
                max_records=self._max_items,
            )  # fmt: skip
        if len(frame.payload) > self._max_payload_bytes:
            raise DecodeError(
                ReasonCode.OVERSIZE, f"payload is {len(frame.payload)} bytes, the limit is {self._max_payload_bytes}"
            )
        document = loads_strict(frame.payload)
        if posted is HttpFormat.OBSERVATION:
            reading, subject = _observation(document, device_id, 0)
            return FrameDecode((reading,), claimed_patients=((0, subject),) if subject else ())
        return self._bundle(document, device_id)

    def _bundle(self, document: object, device_id: str) -> FrameDecode:
        bundle = _resource(document, "Bundle", "POST /fhir")
        if bundle.get("type") not in {"batch", "transaction"}:
            raise DecodeError(
                ReasonCode.FHIR_VALIDATION, f"POST /fhir takes a batch or transaction Bundle, got type {bundle.get('type')!r}"
            )
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise DecodeError(ReasonCode.FHIR_VALIDATION, f"Bundle.entry must be an array, got {json_type(entries)}")
        if len(entries) > self._max_items:
            raise DecodeError(ReasonCode.OVERSIZE, f"the Bundle has {len(entries)} entries, the limit is {self._max_items}")
        # The shell is validated without the resources, so one invalid entry of a batch fails alone.
        _validate({**bundle, "entry": [_without_resource(entry) for entry in entries]})
        readings: list[Reading] = []
        rejections: list[tuple[int, InputRejectedError]] = []
        claimed: list[tuple[int, str]] = []
        for index, entry in enumerate(entries):
            try:
                reading, subject = _entry(entry, device_id, index)
            except InputRejectedError as exc:
                rejections.append((index, exc))
                continue
            readings.append(reading)
            if subject is not None:
                claimed.append((index, subject))
        return FrameDecode(tuple(readings), tuple(rejections), tuple(claimed), atomic=bundle["type"] == "transaction")


def _entry(entry: Mapping[str, Any], device_id: str, index: int) -> tuple[Reading, str | None]:
    request = entry.get("request")
    method = request.get("method") if isinstance(request, Mapping) else None
    url = request.get("url") if isinstance(request, Mapping) else None
    if method != "POST" or url != "Observation":
        raise DecodeError(ReasonCode.MALFORMED_FRAME, f"entry {index}: only POST Observation is supported, got {method} {url}")
    return _observation(entry.get("resource"), device_id, index)


def _observation(document: object, device_id: str, index: int) -> tuple[Reading, str | None]:
    where = f"entry {index}" if index else "the request"
    resource = _resource(document, "Observation", where)
    _validate(resource)
    inbound = reading_from_observation(resource, device_id, index=index)
    return inbound.reading, inbound.subject


def _resource(document: object, expected: str, where: str) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("resourceType") != expected:
        found = document.get("resourceType") if isinstance(document, dict) else json_type(document)
        raise DecodeError(ReasonCode.FHIR_VALIDATION, f"{where} must be a FHIR {expected}, got {found!r}")
    return document


def _without_resource(entry: object) -> object:
    return {key: value for key, value in entry.items() if key != "resource"} if isinstance(entry, dict) else entry


def _validate(resource: dict[str, Any]) -> None:
    try:
        validate_resource(resource)
    except FhirValidationError as exc:
        # Posted input is the sender's mistake, not PulseBridge's: a decode-stage rejection.
        raise DecodeError(ReasonCode.FHIR_VALIDATION, exc.detail[:_DIAGNOSTICS_LIMIT]) from exc
