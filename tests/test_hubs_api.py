"""``GET /api/v1/hubs``: hubs online, silent or offline and their devices, for administrators only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from gateway.auth.tokens import Role
from gateway.storage import open_store
from gateway.storage.hubs import DeviceReport, HubHeartbeat
from tests.conftest import truncate
from tests.gateway_support import app_of, bearer, running_gateway


async def test_hubs_are_online_silent_or_offline_and_devices_silent_without_readings(
    timescale_url: str, broker_port: int
) -> None:
    await truncate(timescale_url)
    now = datetime.now(UTC)
    store = await open_store(DatabaseSettings(url=timescale_url))
    try:
        for hub_id, device_id in (("hub-on", "cuff-on"), ("hub-quiet", "cuff-quiet"), ("hub-gone", "cuff-gone")):
            await store.add_device(device_id, None, None)
            await store.pair_hub_device(hub_id, device_id, "AA:BB", now)
        report = DeviceReport("cuff-on", connected=True, battery_percent=64, rssi=None, last_seen_at=now)
        await store.record_hub_heartbeat(HubHeartbeat("hub-on", now, "0.1.0", 3, -0.5, ("outbox_full",), (report,)))
        await store.record_hub_heartbeat(HubHeartbeat("hub-quiet", now - timedelta(hours=1), "0.1.0", 0, None, (), ()))
        await store.record_hub_presence("hub-gone", online=False, at=now)
    finally:
        await store.close()
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url), mqtt=MqttSettings(port=broker_port, client_id="hubs-api")
    )
    async with running_gateway(settings) as http:
        app = app_of(http)
        assert (await http.get("/api/v1/hubs", headers=bearer(app, Role.PATIENT, "patient/*.rs", "p1"))).status_code == 403
        hubs = {hub["hub_id"]: hub for hub in (await http.get("/api/v1/hubs", headers=bearer(app))).json()}
    assert {hub_id: hub["state"] for hub_id, hub in hubs.items()} == {
        "hub-on": "online",
        "hub-quiet": "silent",
        "hub-gone": "offline",
    }
    assert (hubs["hub-on"]["queue_depth"], hubs["hub-on"]["alarms"], hubs["hub-on"]["clock_skew_seconds"]) == (
        3,
        ["outbox_full"],
        -0.5,
    )
    ((on,), (quiet,)) = hubs["hub-on"]["devices"], hubs["hub-quiet"]["devices"]
    assert (on["state"], on["battery_percent"], on["connected"]) == ("online", 64, True)
    assert (quiet["state"], quiet["last_seen_at"]) == ("silent", None)
