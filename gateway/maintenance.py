"""Raw retention and hourly rollups, scheduled by the gateway itself.

The TimescaleDB edition here has no policy jobs or continuous aggregates, so the app lifespan
owns one task that runs a pass every ``maintenance.interval_seconds`` (and ``pulsebridge
maintenance run`` runs one by hand). A pass refreshes the rollups before it drops raw rows.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from device_adapters.errors import ConfigError, StorageError
from edge_config import MaintenanceSettings
from fhir_mapper.catalogue import CATALOGUE
from gateway.storage import MaintenancePass, MaintenanceReport, ObservationStore, RetentionPlan

logger = logging.getLogger(__name__)


def _cutoff(now: datetime, days: int | None) -> datetime | None:
    """``days`` before ``now``, down to the whole hour (a rollup bucket is kept or dropped whole)."""
    if days is None:
        return None
    return (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


def check_retention(settings: MaintenanceSettings) -> None:
    """Fail fast on retention overrides that name no catalogue kind (a typo would keep data forever)."""
    unknown = sorted(set(settings.retention_days_by_kind) - set(CATALOGUE))
    if unknown:
        raise ConfigError(f"maintenance.retention_days_by_kind: unknown kinds {', '.join(unknown)} (see the catalogue)")


def maintenance_pass(settings: MaintenanceSettings, now: datetime) -> MaintenancePass:
    check_retention(settings)
    utc_now = now.astimezone(UTC)
    plan = RetentionPlan(
        default_before=_cutoff(utc_now, settings.raw_retention_days),
        kind_before={kind: _cutoff(utc_now, days) for kind, days in settings.retention_days_by_kind.items()},
    )
    return MaintenancePass(
        now=utc_now,
        retention=plan,
        lookback=timedelta(seconds=settings.rollup_lookback_seconds),
        delete_batch_rows=settings.delete_batch_rows,
    )


async def run_once(store: ObservationStore, settings: MaintenanceSettings, now: datetime | None = None) -> MaintenanceReport:
    report = await store.run_maintenance(maintenance_pass(settings, now or datetime.now(UTC)))
    logger.info("maintenance: %s", report)
    return report


async def maintenance_loop(store: ObservationStore, settings: MaintenanceSettings) -> None:
    """One pass per interval, forever; a failed pass is logged and tried again at the next interval."""
    while True:
        await asyncio.sleep(settings.interval_seconds)
        try:
            await run_once(store, settings)
        except StorageError as exc:
            logger.warning("maintenance pass failed (%s); next try in %d s", exc, settings.interval_seconds)
