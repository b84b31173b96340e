"""Observation search and ``$lastn`` parameters -> store queries (pure, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from edge_config import ApiSettings
from fhir_mapper.catalogue import CATALOGUE, kinds_for_category, kinds_for_token
from fhir_mapper.identity import IDENTIFIER_SYSTEM
from fhir_mapper.resources import Issue
from gateway.api.search.common import (
    COMMON_PARAMETERS,
    TOTAL_PARAMETERS,
    Applied,
    Parameter,
    Parsed,
    SearchError,
    SearchState,
    TotalMode,
    apply_parameters,
    choice,
    decode_cursor,
    encode_cursor,
    ignore_param,
    intersect,
    reference_id,
    single_reference,
    tokens,
    uuids,
)
from gateway.api.search.dates import InstantFilter, instant_filter
from gateway.storage import LastNQuery, ObservationQuery, TimeCondition, TimeSpan

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_URN_UUID = "urn:uuid:"


@dataclass(slots=True)
class ObservationState(SearchState):
    patient: str | None = None
    kinds: frozenset[str] | None = None
    devices: frozenset[uuid.UUID] | None = None
    keys: frozenset[uuid.UUID] | None = None
    time: list[InstantFilter] = field(default_factory=list)
    received: list[InstantFilter] = field(default_factory=list)
    newest_first: bool = True
    max_per_kind: int = 1


@dataclass(frozen=True, slots=True)
class ObservationSearch:
    query: ObservationQuery
    summary_count: bool
    total: TotalMode
    applied: Applied


LastNSearch = Parsed[LastNQuery]


def _patient(state: ObservationState, value: str) -> None:
    state.patient = single_reference(state.patient, "patient", value, "Patient")


def _code(state: ObservationState, value: str) -> None:
    matched = frozenset().union(*(kinds_for_token(t.system, t.code) for t in tokens(value)))
    state.kinds = intersect(state.kinds, matched)


def _category(state: ObservationState, value: str) -> None:
    matched = frozenset().union(*(kinds_for_category(t.system, t.code) for t in tokens(value)))
    state.kinds = intersect(state.kinds, matched)


def _device(state: ObservationState, value: str) -> None:
    state.devices = intersect(state.devices, uuids(reference_id("device", part, "Device") for part in value.split(",")))


def _identifier(state: ObservationState, value: str) -> None:
    values = [
        t.code.removeprefix(_URN_UUID) for t in tokens(value) if t.in_system(IDENTIFIER_SYSTEM) and t.code.startswith(_URN_UUID)
    ]
    state.keys = intersect(state.keys, uuids(values))


def _date(state: ObservationState, value: str) -> None:
    state.time.append(instant_filter("date", value, state.now))


def _last_updated(state: ObservationState, value: str) -> None:
    state.received.append(instant_filter("_lastUpdated", value, state.now))


_NEWEST_FIRST: Mapping[str, bool] = MappingProxyType({"-date": True, "date": False})


def _sort(state: ObservationState, value: str) -> None:
    state.newest_first = choice("_sort", value, _NEWEST_FIRST)


def _max(state: ObservationState, value: str) -> None:
    if not value.isdigit() or int(value) == 0:
        raise SearchError(f"max: {value!r} is not a positive whole number")
    wanted, ceiling = int(value), state.settings.max_count
    if wanted > ceiling:
        state.notes.append(Issue("information", "informational", f"max {wanted} reduced to the maximum of {ceiling}"))
    state.max_per_kind = min(wanted, ceiling)


_FILTERS: Mapping[str, Parameter[ObservationState]] = {
    "patient": Parameter(_patient, frozenset({"Patient"})),
    "subject": Parameter(_patient, frozenset({"Patient"})),
    "code": Parameter(_code),
    "category": Parameter(_category),
    "date": Parameter(_date),
}
SEARCH_PARAMETERS: Mapping[str, Parameter[ObservationState]] = MappingProxyType({
    **COMMON_PARAMETERS,
    **TOTAL_PARAMETERS,
    **_FILTERS,
    "device": Parameter(_device, frozenset({"Device"})),
    "identifier": Parameter(_identifier),
    "_lastUpdated": Parameter(_last_updated),
    "_sort": Parameter(_sort),
})  # fmt: skip
LASTN_PARAMETERS: Mapping[str, Parameter[ObservationState]] = MappingProxyType({
    **_FILTERS,
    "max": Parameter(_max),
    "_format": Parameter(ignore_param),
    "_pretty": Parameter(ignore_param),
})  # fmt: skip


def parse_observation_search(
    params: Sequence[tuple[str, str]], settings: ApiSettings, *, strict: bool, now: datetime | None = None
) -> ObservationSearch:
    """Query parameters -> the store query; unknown ones are ignored with a warning, or refused under strict handling."""
    state = ObservationState(settings, now or datetime.now(UTC))
    applied = apply_parameters(params, SEARCH_PARAMETERS, state, strict=strict)
    time, received = _merged(state.time), _merged(state.received)
    query = ObservationQuery(
        patient_id=state.patient,
        kinds=state.kinds,
        time=time.conditions,
        count=state.count,
        newest_first=state.newest_first,
        after=None if state.cursor is None else decode_observation_cursor(state.cursor),
        time_excluded=time.excluded,
        received=received.conditions,
        received_excluded=received.excluded,
        device_ids=state.devices,
        reading_keys=state.keys,
    )
    return ObservationSearch(query, state.summary_count, state.total, applied)


def parse_last_n(
    params: Sequence[tuple[str, str]], settings: ApiSettings, *, strict: bool, now: datetime | None = None
) -> LastNSearch:
    """``$lastn`` parameters: one patient, optional category, code and date, ``max`` per code (default 1)."""
    state = ObservationState(settings, now or datetime.now(UTC))
    applied = apply_parameters(params, LASTN_PARAMETERS, state, strict=strict)
    if state.patient is None:
        raise SearchError("$lastn needs a patient (patient=… or subject=Patient/…)")
    time = _merged(state.time)
    kinds = frozenset(CATALOGUE) if state.kinds is None else state.kinds
    return Parsed(LastNQuery(state.patient, kinds, state.max_per_kind, time.conditions, time.excluded), applied)


def _merged(filters: Sequence[InstantFilter]) -> InstantFilter:
    conditions: tuple[TimeCondition, ...] = ()
    excluded: tuple[TimeSpan, ...] = ()
    for item in filters:
        conditions += item.conditions
        excluded += item.excluded
    return InstantFilter(conditions, excluded)


def encode_observation_cursor(instant: datetime, reading_key: uuid.UUID) -> str:
    micros = (instant - _EPOCH) // timedelta(microseconds=1)
    return encode_cursor(f"{micros}:{reading_key}")


def decode_observation_cursor(token: str) -> tuple[datetime, uuid.UUID]:
    micros, _, key = decode_cursor(token).partition(":")
    try:
        return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(key)
    except (ValueError, OverflowError) as exc:
        raise SearchError("_cursor: not a cursor this server issued") from exc
