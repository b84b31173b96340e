"""OpenMQTTGateway / Theengs Gateway documents on ``<base>/<gateway>/BTtoMQTT/<MAC>``.

These gateways decode BLE advertisements themselves and publish one JSON document per
advertisement, many times over. The device is the MAC in the topic (12 hex digits, as the
gateways write it): register health devices under that id. The deduplicator drops the copies.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import datetime

from device_adapters.errors import DecodeError, ReasonCode
from device_adapters.jsonwire import loads_strict
from device_adapters.readings import FrameDecode, RawFrame
from device_adapters.theengs import AdvertisementDeduplicator, readings_from_theengs

_MAC = re.compile(r"[0-9A-Fa-f]{12}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
RECENT_FRAMES = 4096


def theengs_subscription(base_topic: str) -> str:
    return f"{base_topic}/+/BTtoMQTT/+"


def is_theengs_topic(base_topic: str, topic: str) -> bool:
    levels = topic.split("/")
    return len(levels) == 4 and levels[0] == base_topic and levels[2] == "BTtoMQTT"  # noqa: PLR2004 - base/gateway/BTtoMQTT/MAC


class TheengsMqttDecoder:
    """Decodes the documents; remembers recent answers so a retried batch gets the same ones."""

    def __init__(self, max_payload_bytes: int = 65_536) -> None:
        self._max_payload_bytes = max_payload_bytes
        self._dedup = AdvertisementDeduplicator()
        self._recent: OrderedDict[tuple[str, datetime, bytes], FrameDecode] = OrderedDict()

    def device_id(self, frame: RawFrame) -> str:
        mac = frame.channel.rsplit("/", 1)[-1]
        if not _MAC.fullmatch(mac):
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"topic {frame.channel!r} does not end with a MAC address")
        return mac.replace(":", "").upper()

    def decode(self, frame: RawFrame, device_id: str) -> FrameDecode:
        key = (device_id, frame.received_at, frame.payload)
        recent = self._recent.get(key)
        if recent is not None:
            return recent
        if len(frame.payload) > self._max_payload_bytes:
            raise DecodeError(
                ReasonCode.OVERSIZE, f"payload is {len(frame.payload)} bytes, the limit is {self._max_payload_bytes}"
            )
        document = loads_strict(frame.payload)
        if not isinstance(document, dict):
            raise DecodeError(ReasonCode.MALFORMED_FRAME, "a Theengs document is a JSON object")
        decoded = readings_from_theengs(document, device_id, frame.received_at)
        decoded = FrameDecode(self._dedup.filter(device_id, decoded.readings, frame.received_at), decoded.rejections)
        self._recent[key] = decoded
        if len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return decoded
