"""Consent per patient and EHR destination: whether a patient's readings may be pushed there.

A destination's ``consent`` setting says what holds before anyone decided: ``implied`` pushes
unless the patient revoked, ``required`` pushes only after an explicit grant. The store keeps the
current decision per patient and destination (``consents``) and every change to it, with who
made it and when (``consent_events``, append-only).

The decision is checked twice, so a revocation takes effect however it races with ingest: when a
reading is queued (a forbidden row is never written) and when a worker claims a row (a row queued
before the revocation ends ``dead`` with ``last_error`` starting ``consent:``, and is not handed
to the worker). A push already in flight when the revocation commits still completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from device_adapters.readings import require_aware

ConsentMode = Literal["implied", "required"]
"""A destination's rule before any decision (``DestinationSettings.consent``)."""
ConsentStatus = Literal["granted", "revoked"]
CONSENT_STATUSES: frozenset[str] = frozenset({"granted", "revoked"})

CONSENT_ERROR_PREFIX = "consent:"
"""How ``last_error`` of a row dead-lettered for consent begins."""
REVOKED_ERROR = "consent: the patient revoked consent for this destination"
NOT_GRANTED_ERROR = "consent: the destination requires consent and the patient has not granted it"


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A decision: the current one (``consents``) or one change in the history (``consent_events``)."""

    patient_id: str
    destination: str
    status: ConsentStatus
    recorded_by: str
    """Who decided, as the audit trail names agents (``Patient/ada``, ``RelatedPerson/son``, ``cli/root``)."""
    recorded_at: datetime

    def __post_init__(self) -> None:
        require_aware("recorded_at", self.recorded_at)


def allows(status: ConsentStatus | None, mode: ConsentMode) -> bool:
    """Whether readings go to the destination: the recorded decision, else the destination's rule."""
    return status == "granted" if status is not None else mode == "implied"


def effective_sql(status: str, mode: str) -> str:
    """The SQL of :func:`allows` (both dialects): ``status`` is the recorded decision (NULL: none), ``mode`` the rule."""
    return f"COALESCE({status}, CASE WHEN {mode} = 'required' THEN 'revoked' ELSE 'granted' END) = 'granted'"
