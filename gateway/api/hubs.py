"""``GET /api/v1/hubs``: each edge hub online, silent or offline, its queue, alarms and clock, its devices' last readings.

The data for no-data alerts: a hub is ``silent`` when no heartbeat came for ``edge.silent_after_seconds``
(``offline`` once its Last Will said so); a device is ``silent`` when the hub has not reported a
reading from it for as long.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from device_adapters.jsonwire import dumps
from gateway.api.access import CallerDep, require_admin
from gateway.api.errors import ERROR_RESPONSES
from gateway.api.fhir import RuntimeDep
from gateway.hub_link import hub_state
from gateway.storage.hubs import HubDevice, HubRecord

router = APIRouter(prefix="/api/v1", tags=["operations"], responses=ERROR_RESPONSES)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _hub_json(hub: HubRecord, devices: list[HubDevice], now: datetime, silent_after: timedelta) -> dict[str, object]:
    return {
        "hub_id": hub.hub_id, "state": hub_state(hub, now, silent_after), "version": hub.version,
        "queue_depth": hub.queue_depth, "alarms": list(hub.alarms), "clock_skew_seconds": hub.clock_skew_seconds,
        "last_heartbeat_at": _iso(hub.last_heartbeat_at), "presence_at": _iso(hub.presence_at),
        "devices": [
            {
                "device_id": device.device_id, "address": device.address, "connected": device.connected,
                "battery_percent": device.battery_percent, "rssi": device.rssi, "last_seen_at": _iso(device.last_seen_at),
                "state": "online" if device.last_seen_at and now - device.last_seen_at <= silent_after else "silent",
            }
            for device in devices
            if device.hub_id == hub.hub_id
        ],
    }  # fmt: skip


@router.get("/hubs")
async def list_hubs(rt: RuntimeDep, principal: CallerDep) -> Response:
    require_admin(principal)
    now = datetime.now(UTC)
    silent_after = timedelta(seconds=rt.settings.edge.silent_after_seconds)
    devices = await rt.store.hub_devices()
    body = [_hub_json(hub, devices, now, silent_after) for hub in await rt.store.list_hubs()]
    return Response(dumps(body), media_type="application/json")
