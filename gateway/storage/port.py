"""The storage port: what the pipeline, the API and the CLI need from a store.

Two adapters implement it (TimescaleDB for production, SQLite for the embedded demo) and pass
one set of contract tests (``tests/test_store_contract.py``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol

from device_adapters.readings import require_aware
from gateway.storage.alerts import AlertStore
from gateway.storage.consent import ConsentMode, ConsentRecord, ConsentStatus
from gateway.storage.corrections import CorrectionOutcome, ObservationStatus, Reviser
from gateway.storage.dashboard_port import DashboardStore
from gateway.storage.hubs import HubDevice, HubHeartbeat, HubRecord
from gateway.storage.outbox import DeadLetter, OutboxBacklog, OutboxCount, OutboxEntry, OutboxItem, OutboxOutcome

if TYPE_CHECKING:
    from edge_config import DatabaseSettings
    from fhir_mapper.observation import MappedObservation
    from gateway.auth.audit import AuditRecord, ChainedRecord
    from gateway.auth.pairing import PairingGrant
    from gateway.auth.policy import Relationships


@dataclass(frozen=True, slots=True)
class PatientRecord:
    id: str
    name: str | None
    mrn: str | None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    resource_id: uuid.UUID
    device_id: str
    kind: str | None
    display_name: str | None


DEVICE_INFORMATION_FIELDS = ("manufacturer", "model", "serial_number", "firmware")


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """Device lent to a patient from ``valid_from`` (None: always) until ``valid_to`` (None: open)."""

    device_id: str
    patient_id: str
    valid_from: datetime | None
    valid_to: datetime | None

    def covers(self, instant: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= instant) and (self.valid_to is None or instant < self.valid_to)


@dataclass(frozen=True, slots=True)
class UserSlotRecord:
    """User ``user_slot`` of a shared device (a family's BP cuff or scale) lent to a patient, like an assignment."""

    user_slot: int
    patient_id: str
    valid_from: datetime | None
    valid_to: datetime | None

    def covers(self, instant: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= instant) and (self.valid_to is None or instant < self.valid_to)


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    device: DeviceRecord
    assignments: tuple[AssignmentRecord, ...]
    slots: tuple[UserSlotRecord, ...] = ()

    def patient_at(self, instant: datetime, user: int | None = None) -> str | None:
        """The patient the device (or, on a device with user slots, its ``user``) had at the device-reported ``instant``.

        A reading from a user slot that nobody holds at that instant has no patient: guessing
        the device's owner would file one family member's blood pressure under another.
        """
        if user is not None and self.slots:
            return next((s.patient_id for s in self.slots if s.user_slot == user and s.covers(instant)), None)
        # Called once per reading: a plain loop costs half what a generator does.
        for assignment in self.assignments:
            if assignment.covers(instant):
                return assignment.patient_id
        return None


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """An input that could not become a stored reading, kept with its raw payload."""

    received_at: datetime
    source: str
    channel: str
    device_id: str | None
    stage: str
    reason: str
    detail: str
    payload: bytes
    item_index: int | None = None

    def __post_init__(self) -> None:
        require_aware("received_at", self.received_at)

    @property
    def fingerprint(self) -> bytes:
        """Same input, same problem: counted on one row when it comes back (redelivery)."""
        digest = hashlib.sha256()
        for part in (self.source, self.channel, str(self.item_index), self.reason):
            digest.update(part.encode())
            digest.update(b"\x00")
        digest.update(self.payload)
        return digest.digest()


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """A stored quarantine entry; ``seen_count`` counts how often the same input failed the same way."""

    id: int
    first_seen: datetime
    last_seen: datetime
    seen_count: int
    source: str
    channel: str
    device_id: str | None
    stage: str
    reason: str
    detail: str
    item_index: int | None
    payload: bytes

    @property
    def fingerprint(self) -> bytes:
        entry = QuarantineEntry(self.last_seen, self.source, self.channel, self.device_id, self.stage, self.reason, self.detail,
                                self.payload, self.item_index)  # fmt: skip
        return entry.fingerprint


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int
    quarantined: int
    inserted_keys: frozenset[str] = frozenset()
    """The reading keys this batch stored for the first time (the rest of its keys were already there)."""

    @classmethod
    def of(cls, observations: int, inserted_keys: frozenset[str], quarantined: int) -> WriteResult:
        inserted = len(inserted_keys)
        return cls(inserted, observations - inserted, quarantined, inserted_keys)


@dataclass(frozen=True, slots=True)
class TimeCondition:
    """``time <op> instant``; a FHIR date search is a conjunction of these."""

    op: Literal[">=", ">", "<", "<="]
    instant: datetime

    def __post_init__(self) -> None:
        require_aware("instant", self.instant)


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """``[start, end)``: a search value's whole precision (``2026-11`` is the month)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        require_aware("start", self.start)
        require_aware("end", self.end)


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    patient_id: str | None = None
    kinds: frozenset[str] | None = None
    """None: any kind; an empty set matches nothing (a code no kind carries)."""
    time: tuple[TimeCondition, ...] = field(default=())
    count: int = 50
    newest_first: bool = True
    after: tuple[datetime, uuid.UUID] | None = None
    """Keyset cursor: continue after this (time, reading key) in the chosen order."""
    # -- FHIR search (issue 6): the filters below are all ANDed with the ones above.
    time_excluded: tuple[TimeSpan, ...] = ()
    """Effective time outside each span (the ``ne`` date prefix)."""
    received: tuple[TimeCondition, ...] = ()
    """Conditions on ``received_at``, the Observation's ``meta.lastUpdated`` (``_lastUpdated``)."""
    received_excluded: tuple[TimeSpan, ...] = ()
    device_ids: frozenset[uuid.UUID] | None = None
    """Device resource ids; None: any device, an empty set matches nothing."""
    reading_keys: frozenset[uuid.UUID] | None = None
    """Reading keys (``Observation.identifier``); None: any, an empty set matches nothing."""


@dataclass(frozen=True, slots=True)
class StoredObservation:
    reading_key: uuid.UUID
    time: datetime
    resource: str
    """The stored Observation JSON with ``meta.lastUpdated`` set to its ``received_at`` (UTC)."""


@dataclass(frozen=True, slots=True)
class LastNQuery:
    """``$lastn``: the ``max_per_kind`` latest Observations by effective time, per kind, of one patient."""

    patient_id: str
    kinds: frozenset[str]
    """The kinds to look at, named by the caller: one index probe each on (patient_id, kind, time DESC)."""
    max_per_kind: int = 1
    time: tuple[TimeCondition, ...] = ()
    time_excluded: tuple[TimeSpan, ...] = ()


@dataclass(frozen=True, slots=True)
class PatientQuery:
    """Patient search: every given filter must match; ordered by id."""

    ids: frozenset[str] | None = None
    mrns: frozenset[str] | None = None
    name: str | None = None
    """Case-insensitive prefix of the name or of any word in it (FHIR string search)."""
    count: int = 50
    after: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Device search: every given filter must match; ordered by device id."""

    resource_ids: frozenset[uuid.UUID] | None = None
    device_ids: frozenset[str] | None = None
    patient_id: str | None = None
    """Devices assigned to this patient now (their open assignment)."""
    count: int = 50
    after: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A registered device with what it told about itself and the patient it is assigned to now."""

    device: DeviceRecord
    information: Mapping[str, str]
    patient_id: str | None


@dataclass(frozen=True, slots=True)
class VitalsQuery:
    """``[start, end)`` of one kind for one patient, in buckets of ``bucket`` aligned to the Unix epoch."""

    patient_id: str
    kind: str
    start: datetime
    end: datetime
    bucket: timedelta

    def __post_init__(self) -> None:
        require_aware("start", self.start)
        require_aware("end", self.end)
        if self.start >= self.end or self.bucket < timedelta(seconds=1):
            msg = f"a vitals query needs start < end and a bucket of 1 s or more, not {self.start}..{self.end} by {self.bucket}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class VitalsBucket:
    """One bucket of one unit: readings without a number (special values, blood pressure panels) are not counted."""

    start: datetime
    unit: str
    count: int
    min: float
    max: float
    mean: float
    last: float
    last_time: datetime


@dataclass(frozen=True, slots=True)
class ExportQuery:
    patient_id: str
    start: datetime | None = None
    end: datetime | None = None
    since: datetime | None = None
    """Only rows received at or after this instant (Bulk Data ``_since``)."""
    after: tuple[datetime, uuid.UUID] | None = None
    """Keyset cursor: continue after this (time, reading key)."""
    count: int = 1000


@dataclass(frozen=True, slots=True)
class ExportRow:
    reading_key: uuid.UUID
    time: datetime
    kind: str
    code: str
    value: Decimal | None
    unit: str
    device_resource_id: uuid.UUID
    resource: str
    status: ObservationStatus = "final"
    """The reading's FHIR status: ``amended`` or ``entered-in-error`` after a correction."""


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """When raw rows expire, per kind; hourly rollups are kept.

    Cutoffs are whole hours, so an hourly rollup bucket's raw rows are all kept or all gone and a
    bucket is never recomputed from half its rows. None keeps that kind's raw rows.
    """

    default_before: datetime | None
    kind_before: Mapping[str, datetime | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for cutoff in (self.default_before, *self.kind_before.values()):
            if cutoff is not None and (cutoff.tzinfo is None or cutoff != cutoff.replace(minute=0, second=0, microsecond=0)):
                msg = f"retention cutoff {cutoff} must be a timezone-aware whole hour"
                raise ValueError(msg)

    def before(self, kind: str) -> datetime | None:
        return self.kind_before.get(kind, self.default_before)

    @property
    def all_kinds_before(self) -> datetime | None:
        """Rows of every kind older than this go (TimescaleDB drops whole chunks up to it)."""
        cutoffs = [self.default_before, *self.kind_before.values()]
        return None if any(cutoff is None for cutoff in cutoffs) else min(c for c in cutoffs if c is not None)

    @property
    def deletes(self) -> tuple[tuple[frozenset[str] | None, datetime], ...]:
        """(kinds, cutoff) row deletions; None stands for every kind without an override."""
        planned: list[tuple[frozenset[str] | None, datetime]] = [
            (frozenset({kind}), cutoff) for kind, cutoff in sorted(self.kind_before.items()) if cutoff is not None
        ]
        if self.default_before is not None:
            planned.append((None, self.default_before))
        return tuple(planned)


@dataclass(frozen=True, slots=True)
class MaintenancePass:
    """One maintenance pass: rollups of rows received since the watermark (minus ``lookback``), then retention."""

    now: datetime
    retention: RetentionPlan
    lookback: timedelta = timedelta(hours=1)
    """Rows received this long before the watermark are looked at again (batches that committed late)."""
    delete_batch_rows: int = 50_000

    def __post_init__(self) -> None:
        require_aware("now", self.now)


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    role: str
    """One of ``ACCOUNT_ROLES``; a patient account names its own Patient in ``patient_id``."""
    display_name: str | None
    patient_id: str | None
    disabled: bool


ACCOUNT_ROLES = frozenset({"patient", "caregiver", "practitioner", "admin", "system"})
DEVICE_CREDENTIAL_KINDS = frozenset({"mqtt-password", "api-token"})


@dataclass(frozen=True, slots=True)
class DeviceCredentialRecord:
    """A device's secret, as its hash only."""

    id: int
    kind: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    ran: bool
    """False when another gateway process held the maintenance lock."""
    buckets_refreshed: int = 0
    rows_deleted: int = 0
    chunks_dropped: int = 0


class ObservationStore(DashboardStore, Protocol):
    """Registry, observations and quarantine; every write is one transaction."""

    async def migrate(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def add_patient(self, patient_id: str, name: str | None, mrn: str | None) -> PatientRecord: ...

    async def list_patients(self) -> list[PatientRecord]: ...

    async def add_device(self, device_id: str, kind: str | None, display_name: str | None) -> DeviceRecord: ...

    async def list_devices(self) -> list[DeviceRecord]: ...

    async def update_device_information(self, device_id: str, information: Mapping[str, str]) -> None:
        """Record what the device reported about itself (manufacturer, model, serial_number, firmware)."""
        ...

    async def device_information(self, device_id: str) -> dict[str, str]: ...

    async def assign_device(self, device_id: str, patient_id: str, valid_from: datetime | None) -> AssignmentRecord: ...

    async def end_assignment(self, device_id: str, at: datetime) -> bool:
        """Close the device's open assignment at ``at`` (unpairing): later readings belong to nobody."""
        ...

    async def registrations(self, device_ids: Collection[str]) -> dict[str, DeviceRegistration]: ...

    async def write_batch(
        self,
        observations: Sequence[MappedObservation],
        quarantine: Sequence[QuarantineEntry],
        outbox: Sequence[OutboxEntry] = (),
    ) -> WriteResult:
        """One transaction; ``outbox`` rows are written only for readings stored for the first time."""
        ...

    async def search_observations(self, query: ObservationQuery) -> list[StoredObservation]: ...

    async def count_observations(self, query: ObservationQuery) -> int:
        """How many Observations match ``query`` (its ``count`` and ``after`` are ignored)."""
        ...

    async def last_observations(self, query: LastNQuery) -> list[StoredObservation]: ...

    async def search_patients(self, query: PatientQuery) -> list[PatientRecord]: ...

    async def search_devices(self, query: DeviceQuery) -> list[DeviceEntry]: ...

    async def get_observation(self, reading_key: uuid.UUID) -> str | None: ...

    # -- vitals, export, retention and rollups (issue 6) ---------------------------------------

    async def vitals_series(self, query: VitalsQuery) -> list[VitalsBucket]:
        """Buckets of one kind's values for a patient, from the raw rows (per unit: glucose keeps the device's)."""
        ...

    async def export_page(self, query: ExportQuery) -> list[ExportRow]:
        """One keyset page of a patient's observations, oldest first."""
        ...

    async def run_maintenance(self, work: MaintenancePass) -> MaintenanceReport:
        """Refresh the hourly rollups of buckets touched since the last pass, then apply raw retention."""
        ...

    async def hourly_rollups(self, patient_id: str, kind: str, start: datetime, end: datetime) -> list[VitalsBucket]: ...

    async def list_quarantine(self, limit: int, reason: str | None = None) -> list[QuarantineRow]: ...

    async def get_quarantine(self, row_id: int) -> QuarantineRow | None: ...

    async def delete_quarantine(self, row_id: int) -> None: ...

    # -- patients, devices and access (issue 7) ------------------------------------------------

    async def add_account(
        self, account_id: str, role: str, display_name: str | None, patient_id: str | None
    ) -> AccountRecord: ...

    async def get_account(self, account_id: str) -> AccountRecord | None: ...

    async def add_care_team(self, team_id: str, name: str) -> None: ...

    async def add_care_team_member(self, team_id: str, account_id: str) -> None: ...

    async def add_care_team_patient(self, team_id: str, patient_id: str) -> None: ...

    async def remove_care_team_patient(self, team_id: str, patient_id: str) -> None: ...

    async def delegate(self, patient_id: str, account_id: str) -> None: ...

    async def revoke_delegation(self, patient_id: str, account_id: str) -> None: ...

    async def relationships(self, account_id: str) -> Relationships:
        """Patients with an unrevoked delegation to the account, and the patients of its care teams."""
        ...

    async def add_patient_identifier(self, patient_id: str, system: str, value: str) -> None: ...

    async def patient_by_identifier(self, system: str, value: str) -> str | None: ...

    async def identifiers_of(self, patient_ids: Collection[str]) -> dict[str, list[tuple[str, str]]]:
        """Each patient's (system, value) identifiers (an MRN per EHR), in a stable order."""
        ...

    async def assign_user_slot(self, device_id: str, user_slot: int, patient_id: str, valid_from: datetime | None) -> None: ...

    async def add_pairing_code(self, digest: bytes, grant: PairingGrant) -> None: ...

    async def redeem_pairing_code(self, digest: bytes, device_id: str, now: datetime) -> PairingGrant | None:
        """The code's grant, once: None if unknown, expired or already redeemed (one atomic UPDATE)."""
        ...

    async def add_device_credential(self, device_id: str, kind: str, secret_hash: str) -> int: ...

    async def device_credentials(self, device_id: str) -> list[DeviceCredentialRecord]: ...

    async def revoke_device_credentials(self, device_id: str, now: datetime) -> int: ...

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append in order, each row chained to the one before (concurrent appenders are serialized)."""
        ...

    async def audit_chain(self, after_id: int = 0, limit: int = 1000) -> list[tuple[int, ChainedRecord]]: ...

    async def search_audit(self, patient_id: str | None, limit: int) -> list[AuditRecord]: ...

    # -- the push outbox (gateway/storage/outbox.py) ---------------------------------------------

    async def claim_outbox(
        self, destination: str, limit: int, now: datetime, lease: timedelta, *, consent: ConsentMode
    ) -> list[OutboxItem]:
        """Due rows of ``destination``, leased until ``now + lease`` (no two workers hold one row).

        ``consent`` is the destination's rule (``DestinationSettings.consent``). A due row whose
        patient's consent no longer allows the destination, or whose reading is gone, is not
        returned: it ends ``dead`` with ``last_error`` saying why (``consent: …``, ``gone: …``).
        """
        ...

    async def finish_outbox(self, outcomes: Sequence[tuple[int, OutboxOutcome]], now: datetime) -> None:
        """Record each claimed row's outcome (row id, outcome), in one round trip."""
        ...

    async def outbox_status(self) -> list[OutboxCount]: ...

    async def outbox_backlog(self) -> list[OutboxBacklog]:
        """Pending rows per destination, cheap enough for a metrics scrape (done rows are not read)."""
        ...

    async def dead_letters(self, destination: str | None, after_id: int, limit: int) -> list[DeadLetter]: ...

    async def replay_dead_letters(self, ids: Sequence[int] | None, destination: str | None, now: datetime) -> int:
        """Dead letters back to pending and due at ``now``; ``ids`` None: all of them (of ``destination``)."""
        ...

    @property
    def alerts(self) -> AlertStore:
        """Alerts and per-patient alert rules (gateway/storage/alerts.py)."""
        ...

    # -- consent and corrections (gateway/storage/consent.py, corrections.py) --------------------

    async def set_consent(
        self, patient_id: str, destination: str, status: ConsentStatus, recorded_by: str, now: datetime
    ) -> ConsentRecord:
        """Record a patient's decision for a destination, with a history row; the decision in force is kept as is.

        Raises :class:`NotFoundError` for an unknown patient.
        """
        ...

    async def consents(self, patient_id: str) -> list[ConsentRecord]:
        """The decisions in force for the patient, by destination (destinations nobody decided for are absent)."""
        ...

    async def consent_history(self, patient_id: str) -> list[ConsentRecord]:
        """Every change of the patient's decisions, oldest first."""
        ...

    async def correct_observation(
        self, reading_key: uuid.UUID, revise: Reviser, destinations: Mapping[str, ConsentMode], now: datetime
    ) -> CorrectionOutcome | None:
        """Correct a stored reading in one transaction (None: no such reading); see :mod:`gateway.storage.corrections`.

        ``destinations`` are the configured ones with their consent rule: each that already has an
        outbox row for the reading, and whose consent allows it now, gets an ``update`` row.
        """
        ...

    # -- edge hubs (gateway/storage/hubs.py) -----------------------------------------------------

    async def pair_hub_device(self, hub_id: str, device_id: str, address: str, now: datetime) -> None:
        """Pair a registered device with a hub (moving it from another hub); RegistryError when unknown."""
        ...

    async def unpair_hub_device(self, hub_id: str, device_id: str) -> bool: ...

    async def hub_devices(self, hub_ids: Collection[str] | None = None) -> list[HubDevice]:
        """Devices paired with these hubs (every hub's when None)."""
        ...

    async def record_hub_presence(self, hub_id: str, online: bool, at: datetime) -> None: ...  # noqa: FBT001 - the state itself

    async def record_hub_heartbeat(self, beat: HubHeartbeat) -> None: ...

    async def list_hubs(self) -> list[HubRecord]: ...


async def open_store(settings: DatabaseSettings) -> ObservationStore:
    """Connect the adapter the URL names; the caller owns it and must ``close()`` it."""
    if settings.url.startswith("sqlite://"):
        from gateway.storage.sqlite import SqliteStore  # noqa: PLC0415 - adapters load on demand

        return await SqliteStore.open(settings)
    from gateway.storage.timescale import TimescaleStore  # noqa: PLC0415 - asyncpg loads only for TimescaleDB

    return await TimescaleStore.open(settings)
