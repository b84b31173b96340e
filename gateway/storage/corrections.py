"""Corrections of stored readings: what the store hands the reviser and what it writes back.

A correction is one transaction: the reading's row is locked, :class:`Revision` is worked out
from the row as it is then (so two corrections at once apply one after the other), the row and
its resource are rewritten, the resource as it was is kept in ``observation_corrections``
(append-only) and an ``update`` outbox row is queued for every destination that already had a row
for the reading and still has the patient's consent. ``received_at`` becomes the correction's
time: it is the served ``meta.lastUpdated``, so ``_lastUpdated``, ``_since`` exports and the
rollups' watermark all see the change (``Observation.issued`` keeps the arrival).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

ObservationStatus = Literal["final", "amended", "entered-in-error"]
CorrectionAction = Literal["entered-in-error", "amend"]
ENTERED_IN_ERROR = "entered-in-error"


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One stored row, locked for the correction."""

    reading_key: uuid.UUID
    time: datetime
    patient_id: str
    kind: str
    unit: str
    value: Decimal | None
    status: ObservationStatus
    resource: str
    """The stored Observation JSON, as stored (no served ``meta.lastUpdated`` added)."""


@dataclass(frozen=True, slots=True)
class Revision:
    """What a correction writes: the new resource and the row's columns that follow it."""

    action: CorrectionAction
    reason: str
    corrected_by: str
    status: ObservationStatus
    value: Decimal | None
    resource: bytes


Reviser = Callable[[StoredReading], Revision]
"""Works out the revision from the locked row; raising aborts the correction (nothing is written)."""


@dataclass(frozen=True, slots=True)
class CorrectionOutcome:
    revision: Revision
    queued: tuple[str, ...]
    """The destinations an ``update`` row was queued for."""
