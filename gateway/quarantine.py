"""Replaying quarantined inputs once the cause is fixed (a device registered, a mapping corrected)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from device_adapters.readings import Delivery, RawFrame
from gateway.pipeline import IngestPipeline
from gateway.storage import ObservationStore, QuarantineRow


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    row_id: int
    stored: int
    duplicates: int
    still_quarantined: tuple[str, ...]
    """Reasons the input (or part of it) is still refused; empty when it all went through."""
    resolved: bool
    """The row is gone: the input no longer fails the way it did."""


def _unused_ack() -> None:
    """A replay has no source to acknowledge: the quarantine row was its record."""


async def replay(store: ObservationStore, pipeline: IngestPipeline, row: QuarantineRow) -> ReplayOutcome:
    """Run the row's raw payload through the pipeline again, as if it arrived now.

    The row is deleted unless the input fails again in the same way (then that row counts one more
    attempt). A frame with several readings is replayed whole: readings already stored are
    duplicates, nothing is stored twice.
    """
    frame = RawFrame(row.source, row.channel, row.payload, datetime.now(UTC))
    observations, quarantine = await pipeline.prepare([Delivery(frame, _unused_ack)])
    result = await store.write_batch(observations, quarantine)
    same_failure = any(entry.fingerprint == row.fingerprint for entry in quarantine)
    if not same_failure:
        await store.delete_quarantine(row.id)
    return ReplayOutcome(
        row.id, result.inserted, result.duplicates, tuple(entry.reason for entry in quarantine), not same_failure
    )
