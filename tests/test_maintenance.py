"""The gateway's own scheduler: rollups kept before per-kind raw retention drops rows; late arrivals redo their hour."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from device_adapters.readings import Quantity, Reading
from edge_config import DatabaseSettings, GatewaySettings, MaintenanceSettings, MqttSettings
from fhir_mapper.observation import Attribution, MappedObservation, map_reading
from gateway.storage import ExportQuery, ObservationStore, open_store
from tests.conftest import truncate
from tests.gateway_support import running_gateway
from tests.services import cli


def _heart(at: datetime, value: int, received: datetime, kind: str = "heart_rate") -> MappedObservation:
    unit = "%" if kind == "spo2" else "/min"
    reading = Reading("watch-m", kind, at, quantity=Quantity(Decimal(value), unit))
    return map_reading(reading, Attribution("pat-m", uuid.UUID(int=7), "watch-m"), received, source="mqtt")


async def _kinds_left(store: ObservationStore) -> list[tuple[str, datetime]]:
    return sorted((row.kind, row.time) for row in await store.export_page(ExportQuery("pat-m")))


async def test_scheduler_keeps_rollups_drops_raw_per_kind_and_redoes_late_hours(timescale_url: str, broker_port: int) -> None:
    await truncate(timescale_url)
    now = datetime.now(UTC)
    hour = now.replace(minute=10, second=0, microsecond=0)
    old, recent = hour - timedelta(days=120), hour - timedelta(hours=5)
    store = await open_store(DatabaseSettings(url=timescale_url))
    try:
        await store.write_batch(
            [_heart(old, 60, now), _heart(old, 97, now, "spo2"), _heart(recent, 70, now)],
            [],
        )
        settings = GatewaySettings(
            database=DatabaseSettings(url=timescale_url),
            mqtt=MqttSettings(port=broker_port, client_id="maintenance-test"),
            maintenance=MaintenanceSettings(
                interval_seconds=1, raw_retention_days=365, retention_days_by_kind={"heart_rate": 90}
            ),
        )
        async with running_gateway(settings):
            async with asyncio.timeout(15):
                while len(await _kinds_left(store)) == 3:
                    await asyncio.sleep(0.1)
            assert await _kinds_left(store) == [("heart_rate", recent), ("spo2", old)]
            hours = await store.hourly_rollups("pat-m", "heart_rate", old - timedelta(hours=1), now)
            assert [(b.start, b.count, b.last) for b in hours] == [
                (old.replace(minute=0), 1, 60.0),
                (recent.replace(minute=0), 1, 70.0),
            ]

            # A reading for that recent hour arrives late (received now, measured earlier in the hour).
            await store.write_batch([_heart(recent - timedelta(minutes=5), 90, datetime.now(UTC))], [])
            async with asyncio.timeout(15):
                while (await store.hourly_rollups("pat-m", "heart_rate", recent.replace(minute=0), now))[0].count == 1:
                    await asyncio.sleep(0.1)
            bucket = (await store.hourly_rollups("pat-m", "heart_rate", recent.replace(minute=0), now))[0]
            assert (bucket.count, bucket.min, bucket.max, bucket.mean, bucket.last) == (2, 70.0, 90.0, 80.0, 70.0)
    finally:
        await store.close()


def test_maintenance_run_command_and_retention_kinds_checked(tmp_path: Path) -> None:
    env = {
        "PULSEBRIDGE_DATABASE__URL": f"sqlite:///{tmp_path / 'm.db'}",
        "PULSEBRIDGE_MAINTENANCE__RETENTION_DAYS_BY_KIND": '{"heart_rate": 90}',
    }
    ran = cli(env, "maintenance", "run")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("rollup buckets refreshed 0, raw rows deleted 0")
    bad = cli({**env, "PULSEBRIDGE_MAINTENANCE__RETENTION_DAYS_BY_KIND": '{"heart_rat": 90}'}, "check-config")
    assert bad.returncode == 2
    assert "heart_rat" in bad.stderr
