"""The topics between an edge hub and the central gateway (pure: no I/O).

Everything a hub says is under ``hubs/<hub>/``; the broker's ACL lets a hub's user write only
there, so the hub in the topic is the authenticated one (as a device's topic is for a device):

* ``hubs/<hub>/devices/<device>/readings`` and ``.../senml`` -- packs of a device's readings (QoS 1)
* ``hubs/<hub>/presence`` -- retained ``{"state": "online"|"offline"}``; the offline one is the Last Will
* ``hubs/<hub>/heartbeat`` -- version, outbox depth, alarms, clock skew, each device's battery and link
* ``hubs/<hub>/clock/request`` -> ``hubs/<hub>/clock/reply`` -- the gateway's time, for the hub's skew
* ``hubs/<hub>/config`` -- retained, written by the gateway: the paired devices and their patients
"""

from __future__ import annotations

from dataclasses import dataclass

from device_adapters.errors import DecodeError, ReasonCode
from device_adapters.mqtt.native import SENML_SUFFIX, TOPIC_SUFFIX
from device_adapters.readings import DEVICE_ID_PATTERN

HUB_ROOT = "hubs"
HUB_READINGS_SUBSCRIPTION = "hubs/+/devices/+/readings"
HUB_SENML_SUBSCRIPTION = "hubs/+/devices/+/senml"
HUB_STATUS_SUBSCRIPTIONS = ("hubs/+/presence", "hubs/+/heartbeat", "hubs/+/clock/request")
_DEVICE_LEVELS = 5  # hubs / <hub> / devices / <device> / readings|senml


@dataclass(frozen=True, slots=True)
class HubTopics:
    hub_id: str

    @property
    def presence(self) -> str:
        return f"{HUB_ROOT}/{self.hub_id}/presence"

    @property
    def heartbeat(self) -> str:
        return f"{HUB_ROOT}/{self.hub_id}/heartbeat"

    @property
    def config(self) -> str:
        return f"{HUB_ROOT}/{self.hub_id}/config"

    @property
    def clock_request(self) -> str:
        return f"{HUB_ROOT}/{self.hub_id}/clock/request"

    @property
    def clock_reply(self) -> str:
        return f"{HUB_ROOT}/{self.hub_id}/clock/reply"

    def readings(self, device_id: str) -> str:
        """Where a hub forwards native v1 packs (the gateway also reads SenML packs on ``.../senml``)."""
        return f"{HUB_ROOT}/{self.hub_id}/devices/{device_id}{TOPIC_SUFFIX}"


def is_hub_topic(topic: str) -> bool:
    return topic.startswith(f"{HUB_ROOT}/")


def hub_and_device(topic: str) -> tuple[str, str] | None:
    """(hub, device) of a hub's readings topic; None for a topic that is not one."""
    levels = topic.split("/")
    if len(levels) != _DEVICE_LEVELS or levels[0] != HUB_ROOT or levels[2] != "devices":
        return None
    if f"/{levels[4]}" not in {TOPIC_SUFFIX, SENML_SUFFIX}:
        return None
    hub_id, device_id = levels[1], levels[3]
    for what, value in (("hub", hub_id), ("device", device_id)):
        if not DEVICE_ID_PATTERN.fullmatch(value):
            raise DecodeError(ReasonCode.MALFORMED_FRAME, f"{what} id {value!r} in topic {topic!r} is not a valid id")
    return hub_id, device_id


def hub_status_topic(topic: str) -> tuple[str, str] | None:
    """(hub, what) for ``presence``, ``heartbeat`` and ``clock/request``; None otherwise."""
    levels = topic.split("/", 2)
    if len(levels) != 3 or levels[0] != HUB_ROOT or not DEVICE_ID_PATTERN.fullmatch(levels[1]):  # noqa: PLR2004 - root, hub, rest
        return None
    if levels[2] in {"presence", "heartbeat", "clock/request"}:
        return levels[1], levels[2]
    return None
