"""What the pipeline makes of a batch, item by item: for sources that answer per item (HTTP).

MQTT and Bluetooth only need to know that a frame is safely stored (the ack); an HTTP client
is told, per Observation, whether it was created, already there, or rejected and why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from device_adapters.errors import InputRejectedError
from device_adapters.readings import Delivery, FrameDecode, RawFrame
from fhir_mapper.observation import MappedObservation
from gateway.storage import QuarantineEntry, WriteResult


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    frame: RawFrame
    device_id: str
    decoded: FrameDecode
    position: int
    """Where its delivery is in the batch."""


class ItemStatus(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    """Its reading key was already stored: the same reading sent again."""
    REJECTED = "rejected"
    """Quarantined: ``rejection`` says why."""
    NOT_STORED = "not-stored"
    """Acceptable, but another item of its all-or-nothing frame was rejected."""


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What became of one item of a frame, after the transaction committed."""

    index: int | None
    """The item's position in its frame; None for the whole frame."""
    status: ItemStatus
    observation: MappedObservation | None = None
    rejection: QuarantineEntry | None = None


def _by_index(outcome: ItemOutcome) -> int:
    return -1 if outcome.index is None else outcome.index


@dataclass(frozen=True, slots=True)
class FrameReport:
    """Every item of one frame, in frame order (one item with index None when the whole frame was refused)."""

    items: tuple[ItemOutcome, ...]
    atomic: bool = False
    """The frame was all or nothing (a FHIR transaction)."""


def _no_report(_: FrameReport) -> None:
    """Sources that only need the ack (MQTT, Bluetooth) are told nothing more."""


@dataclass(frozen=True, slots=True)
class ReportingDelivery(Delivery):
    """A delivery whose source answers per item (HTTP): ``report`` runs after the commit, just before ``ack``."""

    report: Callable[[FrameReport], None] = _no_report


@dataclass(slots=True)
class PreparedBatch:
    observations: list[MappedObservation] = field(default_factory=list)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    items: dict[int, list[ItemOutcome]] = field(default_factory=dict)
    """Per delivery position; the status of accepted items is settled once the store says which keys were new."""
    held: dict[int, list[tuple[int, MappedObservation]]] = field(default_factory=dict)
    """Accepted items of all-or-nothing frames, stored only if no item of their frame was rejected."""
    atomic: set[int] = field(default_factory=set)
    """Positions of the all-or-nothing frames."""
    device_ids: dict[str, str] = field(default_factory=dict)
    """Each accepted reading key's device, for the live events of what the batch stored."""
    reporting: bool = True
    """Whether a source is told per item (HTTP); MQTT and Bluetooth are not, and skip an outcome per stored reading."""

    def reject(self, position: int, entry: QuarantineEntry) -> None:
        self.quarantine.append(entry)
        self.items.setdefault(position, []).append(ItemOutcome(entry.item_index, ItemStatus.REJECTED, rejection=entry))

    def accept(self, item: DecodedFrame, index: int, observation: MappedObservation) -> None:
        self.device_ids[observation.key] = item.device_id
        if item.decoded.atomic:
            self.held.setdefault(item.position, []).append((index, observation))
        else:
            self._store(item.position, index, observation)

    def _store(self, position: int, index: int, observation: MappedObservation) -> None:
        self.observations.append(observation)
        if self.reporting:
            self.items.setdefault(position, []).append(ItemOutcome(index, ItemStatus.CREATED, observation))

    def release_held(self) -> None:
        """Store the all-or-nothing frames none of whose items was rejected; the others store nothing."""
        for position, held in self.held.items():
            failed = any(outcome.status is ItemStatus.REJECTED for outcome in self.items.get(position, []))
            for index, observation in held:
                if failed:
                    self.items.setdefault(position, []).append(ItemOutcome(index, ItemStatus.NOT_STORED, observation))
                else:
                    self._store(position, index, observation)
        self.held.clear()

    def reports(self, result: WriteResult) -> dict[int, FrameReport]:
        """Per delivery position, once the store said which reading keys were new.

        A key new to the store but sent twice in the batch was created by its first sender only.
        """
        created: set[str] = set()
        settled: dict[int, FrameReport] = {}
        for position in sorted(self.items):
            final = []
            for outcome in sorted(self.items[position], key=_by_index):
                key = outcome.observation.key if outcome.observation is not None else None
                if outcome.status is ItemStatus.CREATED and key is not None:
                    new = key in result.inserted_keys and key not in created
                    created.add(key)
                    final.append(outcome if new else dataclasses.replace(outcome, status=ItemStatus.EXISTS))
                else:
                    final.append(outcome)
            settled[position] = FrameReport(tuple(final), atomic=position in self.atomic)
        return settled


QUARANTINED_PAYLOAD_LIMIT = 1024 * 1024
"""An oversize payload is kept up to this many octets: enough to see what it was, not 10 MB per row."""


def quarantine_entry(frame: RawFrame, device_id: str | None, error: InputRejectedError, index: int | None) -> QuarantineEntry:
    payload, detail = frame.payload, error.detail
    if len(payload) > QUARANTINED_PAYLOAD_LIMIT:
        payload = payload[:QUARANTINED_PAYLOAD_LIMIT]
        detail += f" (payload kept: the first {QUARANTINED_PAYLOAD_LIMIT} of {len(frame.payload)} octets)"
    return QuarantineEntry(
        received_at=frame.received_at,
        source=frame.source,
        channel=frame.channel,
        device_id=device_id,
        stage=error.stage.value,
        reason=error.reason.value,
        detail=detail,
        payload=payload,
        item_index=index,
    )
