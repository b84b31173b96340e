"""High-frequency streams as SampledData: one Observation per kind per window (default a minute).

A watch reporting heart rate every second makes 1,440 Observations a day per patient; an EHR
usually wants one per minute. Windows are built from already-mapped readings (values in the
canonical unit), so they carry the same codes, profile and categories as single readings.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from device_adapters.jsonwire import dumps
from fhir_mapper.catalogue import CATALOGUE, UCUM
from fhir_mapper.hot_path import fhir_datetime
from fhir_mapper.identity import IDENTIFIER_SYSTEM, identifier_value, reading_key
from fhir_mapper.observation import MappedObservation
from fhir_mapper.templates import static_parts

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WindowKey:
    patient_id: str
    device_resource_id: uuid.UUID
    device_id: str
    kind: str
    unit: str
    start: datetime


def window_start(instant: datetime, window: timedelta) -> datetime:
    """The start of the window holding ``instant`` (windows are aligned to the Unix epoch, in UTC)."""
    offset = (instant - _EPOCH) % window
    return (instant - offset).astimezone(UTC)


def group_into_windows(
    observations: Sequence[MappedObservation], device_ids: dict[uuid.UUID, str], window: timedelta
) -> dict[WindowKey, list[tuple[datetime, Decimal]]]:
    """Samples per (patient, device, kind, unit, window); readings without a single value are left out."""
    groups: dict[WindowKey, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for observation in observations:
        if observation.value is None:
            continue
        key = WindowKey(
            observation.patient_id,
            observation.device_resource_id,
            device_ids[observation.device_resource_id],
            observation.kind,
            observation.unit,
            window_start(observation.time, window),
        )
        groups[key].append((observation.time, observation.value))
    return dict(groups)


def sampled_observation(
    key: WindowKey, samples: Sequence[tuple[datetime, Decimal]], window: timedelta, period: timedelta, issued: datetime
) -> dict[str, object]:
    """One Observation whose ``valueSampledData`` holds the window's samples on a ``period`` grid.

    A slot with no sample is ``E`` (no valid value, as SampledData spells it); two samples in one
    slot keep the later.
    """
    if window % period:
        msg = f"window {window} is not a whole number of periods of {period}"
        raise ValueError(msg)
    kind = CATALOGUE[key.kind]
    slots: list[Decimal | None] = [None] * (window // period)
    for instant, value in sorted(samples):
        slot = (instant - key.start) // period
        if 0 <= slot < len(slots):
            slots[slot] = value
    choice = kind.unit_choice(key.unit) or kind.canonical_unit
    static = static_parts(kind.name, None, choice.ucum)
    identity = reading_key(key.device_id, key.patient_id, kind.name, key.start, duration=window)
    resource: dict[str, object] = {
        "resourceType": "Observation",
        "id": str(identity),
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": identifier_value(identity)}],
        "status": "final",
        "category": static.category,
        "code": static.code,
        "subject": {"reference": f"Patient/{key.patient_id}"},
        "effectivePeriod": {"start": fhir_datetime(key.start), "end": fhir_datetime(key.start + window)},
        "issued": issued.astimezone(UTC).isoformat(),
        "device": {"reference": f"Device/{key.device_resource_id}", "display": key.device_id},
        "valueSampledData": {
            "origin": {"value": 0, "unit": choice.display, "system": UCUM, "code": choice.ucum},
            "period": Decimal(period // timedelta(microseconds=1)) / 1000,
            "dimensions": 1,
            "data": " ".join("E" if value is None else format(value, "f") for value in slots),
        },
    }
    return resource


def sampled_resource(
    key: WindowKey, samples: Sequence[tuple[datetime, Decimal]], window: timedelta, period: timedelta, issued: datetime
) -> bytes:
    return dumps(sampled_observation(key, samples, window, period, issued))
