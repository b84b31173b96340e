"""The push outbox's vocabulary: one row per (new reading, EHR destination), claimed by push workers.

Rows are written in the transaction that stores the reading, and only for readings the batch
stored for the first time, so a reading redelivered or re-sent is never pushed twice. A worker
claims due rows (TimescaleDB: ``FOR UPDATE SKIP LOCKED``, so workers in several processes never
hold the same row) and leases them until ``next_attempt_at``: a worker that dies leaves its rows
to be claimed again once the lease runs out. The ledger: stored = pushed (done) + dead-lettered
(dead) + pending.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from device_adapters.readings import require_aware

OutboxStatus = Literal["pending", "done", "dead"]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A reading to push to one destination; written only if the batch stores the reading for the first time."""

    reading_key: str
    time: datetime
    destination: str


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
