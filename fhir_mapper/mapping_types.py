"""What goes into the mapper and what comes out: shared by the hot path and the general path."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from device_adapters.readings import Reading


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a reading belongs to: resolved from the registry by the device's time."""

    patient_id: str
    device_resource_id: uuid.UUID
    device_id: str
    """The device's own id (MQTT topic segment, serial)."""


@dataclass(frozen=True, slots=True)
class MappingInput:
    reading: Reading
    attribution: Attribution
    received_at: datetime
    source: str


class MappedObservation(NamedTuple):
    """A normalized reading and its FHIR Observation: one row of the observations table.

    Immutable like the frozen dataclasses between the other stages, but a NamedTuple: one is
    built per reading on the hot path, and a frozen dataclass costs several times more to build.
    """

    key: str
    """The reading key as text (the Observation's id); see :attr:`reading_key`."""
    time: datetime
    patient_id: str
    device_resource_id: uuid.UUID
    kind: str
    code: str
    value: Decimal | None
    unit: str
    resource: bytes
    received_at: datetime
    source: str

    @property
    def reading_key(self) -> uuid.UUID:
        return uuid.UUID(self.key)
