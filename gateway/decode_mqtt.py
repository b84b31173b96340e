"""``pulsebridge decode mqtt``: the mapping debugger — payload -> readings -> FHIR Observations.

Formats: ``native``, ``senml``, ``theengs`` (an OpenMQTTGateway/Theengs document) or the name of a
mapping template. Like ``decode gatt`` it reports what the payload says: no plausibility ranges,
placeholder patient and device unless given.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from device_adapters.errors import InputRejectedError
from device_adapters.jsonwire import dumps, loads_strict
from device_adapters.mqtt.native import decode_payload
from device_adapters.mqtt.senml import decode_senml
from device_adapters.mqtt.templates import decode_with_template
from device_adapters.readings import FrameDecode
from device_adapters.theengs import readings_from_theengs
from edge_config.mapping_templates import TemplateSet, load_templates
from gateway.decode_cli import PLACEHOLDER_DEVICE, PLACEHOLDER_PATIENT, DecodeInputError, GattDecoder, answer_lines

BUILT_IN = ("native", "senml", "theengs")


class MqttDecoder:
    def __init__(self, patient_id: str, device_id: str, templates: TemplateSet | None) -> None:
        self._device_id = device_id
        self._fhir = GattDecoder(patient_id, device_id)
        self._templates = {template.name: template for template in templates.templates} if templates else {}

    def decode(self, payload_format: str, payload: bytes, topic: str | None = None) -> dict[str, Any]:
        received = datetime.now(UTC)
        decoded = self._readings(payload_format, payload, topic, received)
        observations, refused = self._fhir.map(list(decoded.readings), received)
        result: dict[str, Any] = {"observations": observations}
        rejections = [*decoded.rejections, *((decoded.readings[position].index, error) for position, error in refused)]
        if rejections:
            result["rejected"] = [
                {"index": index, "reason": error.reason.value, "detail": error.detail} for index, error in rejections
            ]
        return result

    def _readings(self, payload_format: str, payload: bytes, topic: str | None, received: datetime) -> FrameDecode:
        match payload_format:
            case "native":
                return decode_payload(payload, self._device_id)
            case "senml":
                return decode_senml(payload, self._device_id, received_at=received)
            case "theengs":
                document = loads_strict(payload)
                if not isinstance(document, dict):
                    raise DecodeInputError("a Theengs document is a JSON object")
                return readings_from_theengs(document, self._device_id, received)
        template = self._templates.get(payload_format)
        if template is None:
            known = ", ".join([*BUILT_IN, *self._templates]) or "none"
            raise DecodeInputError(f"no format {payload_format!r} (formats: {known}; templates come from --templates FILE)")
        return decode_with_template(
            template, topic or _topic_for(template.topic, template.device_from_topic, self._device_id), payload
        )

    def jsonl(self, lines: Iterable[str]) -> Iterator[bytes]:
        """``{"id", "format", "payload", "topic"?}`` lines -> one answer line each, in order."""

        def answer(request: dict[str, Any], number: int) -> dict[str, Any]:
            payload_format, payload, topic = request.get("format"), request.get("payload"), request.get("topic")
            if not isinstance(payload_format, str) or payload is None:
                raise DecodeInputError(f"line {number} needs 'format' and 'payload'")
            raw = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
            return self.decode(payload_format, raw, topic if isinstance(topic, str) else None)

        return answer_lines(lines, answer)


def _topic_for(topic_filter: str, device_level: int, device_id: str) -> str:
    levels = topic_filter.split("/")
    filled = [
        device_id if index == device_level else ("x" if level in {"+", "#"} else level) for index, level in enumerate(levels)
    ]
    return "/".join(filled)


def run_decode_mqtt(
    payload_format: str | None,
    payload: str | None,
    *,
    jsonl: bool,
    topic: str | None,
    templates: Path | None,
    patient: str | None,
    device: str | None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> None:
    decoder = MqttDecoder(
        patient or PLACEHOLDER_PATIENT, device or PLACEHOLDER_DEVICE, load_templates(templates) if templates else None
    )
    if jsonl:
        for line in decoder.jsonl(stdin):
            stdout.write(line.decode() + "\n")
            stdout.flush()
        return
    if payload_format is None or payload is None:
        raise DecodeInputError("give --format NAME and PAYLOAD, or --jsonl to read requests from standard input")
    try:
        result = decoder.decode(payload_format, payload.encode(), topic)
    except InputRejectedError as exc:
        raise DecodeInputError(str(exc)) from exc
    stdout.write(dumps(result).decode() + "\n")
