"""The push outbox's vocabulary: one row per (new reading, EHR destination), claimed by push workers.

Rows are written in the transaction that stores the reading, and only for readings the batch
stored for the first time, so a reading redelivered or re-sent is never pushed twice. A worker
claims due rows (TimescaleDB: ``FOR UPDATE SKIP LOCKED``, so workers in several processes never
hold the same row) and leases them until ``next_attempt_at``: a worker that dies leaves its rows
to be claimed again once the lease runs out. The ledger: stored = pushed (done) + dead-lettered
(dead) + pending.

A row is a ``create`` (a newly stored reading: at most one per reading and destination) or an
``update`` (a correction of a reading the destination already had a row for: one per correction).
Either way the worker sends the stored Observation as it is when the row is claimed, so the
order in which rows are sent does not matter. Consent (:mod:`gateway.storage.consent`) is checked
when a row is queued and again when it is claimed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from device_adapters.readings import require_aware
from gateway.storage.consent import ConsentMode

OutboxStatus = Literal["pending", "done", "dead"]
GONE_ERROR = "gone: the reading is no longer stored (raw retention removed it before it was pushed)"
"""``last_error`` of a row whose reading was deleted before a worker claimed it (it ends dead)."""
OutboxAction = Literal["create", "update"]
"""create: send the reading as a conditional create; update: send it again as a conditional update (a correction)."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A reading to push to one destination.

    Written only if the batch stores the reading for the first time and the patient's consent
    for the destination allows it (``consent``: the destination's rule while the patient has
    decided nothing).
    """

    reading_key: str
    time: datetime
    destination: str
    patient_id: str
    consent: ConsentMode = "implied"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed row, with the stored Observation to push."""

    id: int
    destination: str
    reading_key: uuid.UUID
    time: datetime
    attempts: int
    """Claims so far, this one included."""
    resource: str
    """The stored Observation as it is now (a corrected reading's latest version)."""
    action: OutboxAction


@dataclass(frozen=True, slots=True)
class OutboxOutcome:
    """What a push attempt decided: done, dead (terminal, with the reason) or pending again at ``retry_at``."""

    status: OutboxStatus
    error: str | None = None
    retry_at: datetime | None = None
    http_status: int | None = None
    """The EHR's answer for this entry, when there was one."""
    operation_outcome: str | None = None
    """The EHR's OperationOutcome as JSON text, kept with a dead letter."""

    def __post_init__(self) -> None:
        if (self.status == "pending") != (self.retry_at is not None):
            msg = "a retry needs retry_at, and only a retry has one"
            raise ValueError(msg)
        if self.retry_at is not None:
            require_aware("retry_at", self.retry_at)


@dataclass(frozen=True, slots=True)
class OutboxCount:
    destination: str
    status: OutboxStatus
    count: int
    oldest_due: datetime | None
    """For pending rows: the earliest next attempt."""
    oldest_created: datetime | None = None
    """For pending rows: when the oldest was queued (the age of the backlog)."""


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """Pending rows of one destination: what the depth and age metrics show."""

    destination: str
    pending: int
    oldest_created: datetime | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A reading an EHR refused for good (or that could not be addressed), kept for an operator to replay."""

    id: int
    destination: str
    reading_key: uuid.UUID
    time: datetime
    attempts: int
    error: str | None
    http_status: int | None
    operation_outcome: str | None
    updated_at: datetime
